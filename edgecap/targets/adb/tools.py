"""Command lines and output parsers for the Android benchmarking tools edgecap runs over adb.

Nothing here runs a tool: `Tool.args` builds the argv after the binary (device paths) and `Tool.parse` reads what
it printed. The formats, from each tool's source:

- benchmark_model (tensorflow/tensorflow tensorflow/lite/tools/benchmark/benchmark_model.cc, google-ai-edge/LiteRT
  tflite/tools/benchmark/benchmark_model.cc): "INFO: "-prefixed lines on stdout (tools/logging.h). Each phase
  (warm-up, then timed runs) ends with a Stat line in microseconds (xla/tsl/util/stats_calculator.h,
  Stat::OutputToStream): `count=N first=F curr=C min=A max=B avg=M std=S`, or `count=N curr=V(all same)`;
  LiteRT's StatWithPercentiles appends ` p5=.. median=.. p95=..`. BenchmarkLoggingListener::OnBenchmarkEnd
  closes the run: `Inference timings in us: Init: I, First inference: F, Warmup (avg): W, Inference (avg): M`.
- onnxruntime_perf_test (microsoft/onnxruntime onnxruntime/test/perftest/performance_runner.cc): Run prints
  `Session creation time cost: X s`, `First inference time cost: N ms`, `Total inference requests: N`,
  `Average inference time cost: X ms`, `Peak working set size: N bytes`; PerformanceResult::DumpToFile (-s)
  `Min Latency: X s`, `Max ..`, `P50 ..`, `P90 ..`, `P95 ..`, `P99 ..`, `P999 ..`; -v adds
  `iteration:I,time_cost:X` (s) per run (performance_runner.h).
- executor_runner (pytorch/executorch examples/portable/executor_runner/executor_runner.cpp): ET_LOG lines on
  stderr, `I 00:00:00.123456 executorch:executor_runner.cpp:789] message` (runtime/platform/default/posix.cpp):
  `Model loaded in X ms.` and `Iteration i of N: X ms` (ExecuTorch >= 1.3), `Model executed successfully N
  time(s) in X ms.`, `ETDump written to file 'P'.`.
- edgecap_runner: edgecap's own runner, one `key value...` fact per line (see format_edgecap_runner).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field, replace

from edgecap import EdgecapError

PERCENTILE_KEYS = ("p50_ms", "p75_ms", "p90_ms", "p95_ms", "p99_ms", "p999_ms")
EDGECAP_RUNTIMES = ("onnxruntime", "executorch", "litert")
_NUM = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|[-+]?(?:nan|inf)"


class ToolOutputError(EdgecapError):
    """A tool's output lacks what edgecap reads from it; the message names the tool and what was missing."""


@dataclass
class ToolResult:
    tool: str
    times_ms: list[float]  # per-iteration times when the tool prints them; [] otherwise
    stats: dict[str, float]  # only what the tool itself printed, in ms (see module doc for each tool)
    init_ms: float | None = None
    peak_memory_mb: float | None = None
    profile: str | None = None  # on-device path of the profile the run wrote, when the output names it
    outputs: list[dict] = field(default_factory=list)  # edgecap_runner: {"index", "file", "shape", "dtype"}
    notes: list[str] = field(default_factory=list)


def _missing(tool: str, what: str, text: str) -> ToolOutputError:
    tail = [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")][-3:]
    msg = f"{tool}: no {what} in its output"
    return ToolOutputError(msg + ("; it ended with: " + " | ".join(tail) if tail else " (it printed nothing)"))


def _find(pattern: str, text: str) -> list[float] | None:
    """The numbers of the first line matching `pattern` (whose groups capture numbers), or None."""
    m = re.search(pattern, text, re.MULTILINE)
    return [float(g) for g in m.groups()] if m else None


# ---- benchmark_model ------------------------------------------------------------------------------------------

_BM_STAT = re.compile(r"^(?:INFO: )?count=(\d+)(.*)$", re.MULTILINE)  # per-phase Stat lines, not op-profile ones


def _bm_stat(rest: str) -> dict[str, float]:
    """Fields of a Stat line after count=, in us; the "(all same)" form (and count=1) has only curr."""
    f = {k: float(v) for k, v in re.findall(rf"(\w+)=({_NUM})", rest)}
    if "min" not in f and "curr" in f:
        f.update(first=f["curr"], min=f["curr"], max=f["curr"], avg=f["curr"], std=0.0)
    return f


def _parse_benchmark_model(stdout: str, stderr: str) -> ToolResult:
    text = stdout + "\n" + stderr
    timings = _find(rf"^(?:INFO: )?Inference timings in us: Init: ({_NUM}), First inference: ({_NUM}), "
                    rf"Warmup \(avg\): ({_NUM}), Inference \(avg\): ({_NUM})", text)
    phases = [(int(n), _bm_stat(rest)) for n, rest in _BM_STAT.findall(text)]
    if timings is None:
        raise _missing("benchmark_model", "'Inference timings in us' line", text)
    if not phases or phases[-1][0] == 0:
        raise _missing("benchmark_model", "timed runs (a 'count=N ...' line with N > 0)", text)
    init_us, first_us, warmup_us, _ = timings
    count, f = phases[-1]
    stats = {"count": float(count), "mean_ms": f["avg"] / 1e3, "min_ms": f["min"] / 1e3, "max_ms": f["max"] / 1e3,
             "std_ms": f["std"] / 1e3}  # population std, truncated to whole us by Stat<int64_t>
    if "median" in f:  # LiteRT's StatWithPercentiles: p5 has no key here
        stats.update(p50_ms=f["median"] / 1e3, p95_ms=f["p95"] / 1e3)
        notes = []
    else:
        notes = ["benchmark_model prints avg/min/max/std only: no percentiles"]
    if len(phases) >= 2 and phases[-2][0] > 0:  # a warm-up phase ran
        stats.update(first_ms=first_us / 1e3, warmup_mean_ms=warmup_us / 1e3)
    peak = _find(rf"^(?:INFO: )?Overall peak memory footprint \(MB\) via periodic monitoring: ({_NUM})", text)
    # LOG_TOOL_PARAM echoes the profile path: "Op profiling output file.: [P]" (older: "CSV File to export ...")
    prof = re.search(r"^(?:INFO: )?(?:Op profiling output file\.|CSV File to export profiling data to): \[(.+)\]$",
                     text, re.MULTILINE)
    return ToolResult("benchmark_model", [], stats, init_ms=init_us / 1e3, peak_memory_mb=peak[0] if peak else None,
                      profile=prof.group(1) if prof else None, notes=notes)


def _args_benchmark_model(model, threads, warmup, iterations, min_seconds, inputs, output_dir, profile):
    # Inputs are ignored: --input_layer_value_files wants raw tensor bytes by layer name, not .npy files, so it
    # times on its own random inputs. --output_filepath writes raw bytes only, so output_dir is ignored too.
    # warmup_min_secs=0 and min_secs=min_seconds make the counts exact (defaults: 0.5 s and 1 s of extra runs).
    argv = [f"--graph={model}", f"--num_threads={threads if threads > 0 else -1}", f"--warmup_runs={warmup}",
            "--warmup_min_secs=0", f"--num_runs={iterations}", f"--min_secs={min_seconds:g}"]
    if profile:  # op profiling perturbs the timings: the caller runs it apart
        argv += ["--enable_op_profiling=true", "--op_profiling_output_mode=csv",
                 f"--op_profiling_output_file={profile}"]
    return argv


# ---- onnxruntime_perf_test ------------------------------------------------------------------------------------

_ORT_PERCENTILES = {"P50": "p50_ms", "P90": "p90_ms", "P95": "p95_ms", "P99": "p99_ms", "P999": "p999_ms"}


def _parse_ort(stdout: str, stderr: str) -> ToolResult:
    text = stdout + "\n" + stderr
    count = _find(r"^Total inference requests: (\d+)", text)
    mean = _find(rf"^Average inference time cost: ({_NUM}) ms", text)
    if count is None or mean is None:
        raise _missing("onnxruntime_perf_test", "'Total inference requests' / 'Average inference time cost' lines",
                       text)
    stats = {"count": count[0], "mean_ms": mean[0]}
    for name, key in [("Min", "min_ms"), ("Max", "max_ms"), *_ORT_PERCENTILES.items()]:
        v = _find(rf"^{name} Latency: ({_NUM}) s", text)
        if v is not None:
            stats[key] = v[0] * 1e3
    first = _find(r"^First inference time cost: (\d+) ms", text)  # the one warm-up run, in whole ms
    if first is not None:
        stats["first_ms"] = first[0]
    notes = ["onnxruntime_perf_test always runs exactly one warm-up inference (first_ms)",
             "onnxruntime_perf_test prints no standard deviation"]
    if "p50_ms" not in stats:
        notes.append("onnxruntime_perf_test ran without -s: no latency percentiles")
    init = _find(rf"^Session creation time cost: ?({_NUM}) s", text)
    peak = _find(r"^Peak working set size: (\d+) bytes", text)  # getrusage ru_maxrss: the whole process
    times = [float(t) * 1e3 for t in re.findall(rf"^iteration:\d+,time_cost:({_NUM})", text, re.MULTILINE)]
    return ToolResult("onnxruntime_perf_test", times, stats, init_ms=init[0] * 1e3 if init else None,
                      peak_memory_mb=peak[0] / 2**20 if peak else None, notes=notes)


def _args_ort(model, threads, warmup, iterations, min_seconds, inputs, output_dir, profile):
    # -I binds generated inputs (the tool reads inputs only from test_data_set_*/ *.pb beside the model, so .npy
    # inputs are ignored); it always runs one warm-up inference whatever `warmup` is, and -t (duration mode)
    # replaces -r rather than adding to it, so min_seconds is ignored. Every option is its own argv word: the
    # absl-flags parser (ORT >= 1.23) recognises "-r" only so. -p is a prefix: ORT writes <prefix>_<time>.json.
    # -v prints every run's time: percentiles over all rounds come from those, not from per-round summaries.
    argv = ["-I", "-m", "times", "-r", str(iterations), "-x", str(max(threads, 0)), "-s", "-v"]
    if profile:
        argv += ["-p", profile]
    return argv + [model]


# ---- executor_runner ------------------------------------------------------------------------------------------


_ET = r"(?:^|\] )"  # an ET_LOG message starts its line (logcat) or follows the "executorch:FILE:LINE] " prefix


def _parse_executor_runner(stdout: str, stderr: str) -> ToolResult:
    text = stdout + "\n" + stderr
    total = _find(rf"{_ET}Model executed successfully (\d+) time\(s\) in ({_NUM}) ms\.", text)
    if total is None:
        raise _missing("executor_runner", "'Model executed successfully N time(s) in X ms.' log line (ET_LOG goes to "
                       "stderr only in builds with EXECUTORCH_ENABLE_LOGGING=ON and the posix PAL; the android PAL "
                       "logs to logcat)", text)
    count, total_ms = total
    if count < 1:
        raise _missing("executor_runner", "timed executions (N > 0)", text)
    stats = {"count": count, "mean_ms": total_ms / count}
    times = [float(t) for t in re.findall(rf"{_ET}Iteration \d+ of \d+: ({_NUM}) ms", text, re.MULTILINE)]
    notes = ["executor_runner has no warm-up runs: every execution is timed, the first (cold) one included"]
    if times:
        stats["first_ms"] = times[0]
    else:
        notes.append("executor_runner before ExecuTorch 1.3 logs the total only: no per-iteration times")
    load = _find(rf"{_ET}Model loaded in ({_NUM}) ms\.", text)
    prof = re.search(rf"{_ET}ETDump written to file '(.+)'\.$", text, re.MULTILINE)
    return ToolResult("executor_runner", times, stats, init_ms=load[0] if load else None,
                      profile=prof.group(1) if prof else None, notes=notes)


def _args_executor_runner(model, threads, warmup, iterations, min_seconds, inputs, output_dir, profile):
    # No warm-up or duration option: the warm-up runs are timed runs the caller drops (Tool.warmup_in_times);
    # min_seconds is ignored.
    # --inputs copies raw file bytes into the tensors, so .npy inputs are ignored: it times on all-ones inputs.
    # --cpu_threads matters in ET_USE_THREADPOOL builds; --etdump_path exists only in event-tracer builds.
    argv = [f"--model_path={model}", f"--num_executions={warmup + iterations}",
            f"--cpu_threads={threads if threads > 0 else -1}"]
    if profile:
        argv.append(f"--etdump_path={profile}")
    return argv


# ---- edgecap_runner -------------------------------------------------------------------------------------------


def _shape_str(shape) -> str:
    return "x".join(str(int(d)) for d in shape) if len(shape) else "scalar"


def _shape(text: str) -> list[int]:
    return [] if text == "scalar" else [int(d) for d in text.split("x")]


def format_edgecap_runner(runtime: str, model: str, threads: int, load_ms: float, inputs: list[tuple],
                          times_ms: list[float], outputs: list[tuple], peak_rss_kb: int) -> str:
    """What edgecap_runner prints: inputs as (shape, dtype), outputs as (file, shape, dtype)."""
    if runtime not in EDGECAP_RUNTIMES:
        raise ValueError(f"edgecap_runner runtime {runtime!r} is not one of {EDGECAP_RUNTIMES}")
    lines = [f"edgecap_runner version=1 runtime={runtime} model={model} threads={threads}",
             f"model_load_ms {float(load_ms)!r}"]
    lines += [f"input {i} {_shape_str(shape)} {dtype}" for i, (shape, dtype) in enumerate(inputs)]
    lines += [f"iteration_ms {float(t)!r}" for t in times_ms]
    lines += [f"output {i} {file} {_shape_str(shape)} {dtype}" for i, (file, shape, dtype) in enumerate(outputs)]
    lines.append(f"peak_rss_kb {int(peak_rss_kb)}")
    return "\n".join(lines) + "\n"


def _parse_edgecap_runner(stdout: str, stderr: str) -> ToolResult:
    header, times, outputs, init, peak = None, [], [], None, None
    for line in stdout.splitlines():
        words = line.split()
        try:
            if words[:1] == ["edgecap_runner"]:
                header = dict(w.split("=", 1) for w in words[1:] if "=" in w)
            elif words[:1] == ["iteration_ms"] and len(words) == 2:
                times.append(float(words[1]))
            elif words[:1] == ["model_load_ms"] and len(words) == 2:
                init = float(words[1])
            elif words[:1] == ["peak_rss_kb"] and len(words) == 2:
                peak = float(words[1]) / 1024
            elif words[:1] == ["output"] and len(words) >= 5:  # the file may hold spaces: shape, dtype come last
                outputs.append({"index": int(words[1]), "file": " ".join(words[2:-2]), "shape": _shape(words[-2]),
                                "dtype": words[-1]})
        except ValueError:  # a runtime's log line that happens to start with one of the keys
            continue
    text = stdout + "\n" + stderr
    if header is None:
        raise _missing("edgecap_runner", "'edgecap_runner version=1 ...' header line", text)
    if header.get("version") != "1":
        raise ToolOutputError(f"edgecap_runner: output format version {header.get('version')!r}, edgecap reads 1")
    if not times:
        raise _missing("edgecap_runner", "'iteration_ms' lines", text)
    return ToolResult("edgecap_runner", times, {}, init_ms=init, peak_memory_mb=peak, outputs=outputs)


def _args_edgecap_runner(model, threads, warmup, iterations, min_seconds, inputs, output_dir, profile):
    argv = ["--model", model, "--threads", str(threads), "--warmup", str(warmup), "--iterations", str(iterations)]
    if min_seconds > 0:
        argv += ["--min-seconds", f"{min_seconds:g}"]
    for path in inputs:  # in the model's input order
        argv += ["--input", path]
    if output_dir:
        argv += ["--output-dir", output_dir]
    return argv  # no profiler: profile is ignored


def edgecap_runner_samples_args(model: str, threads: int, warmup: int, samples: str) -> list[str]:
    """edgecap_runner over a folder of samples (0/in_0.npy, 1/in_0.npy ...): each runs once and its
    outputs are written beside its inputs (k/out_0.npy ...); one `output` line per output and sample."""
    return ["--model", model, "--threads", str(threads), "--warmup", str(warmup), "--iterations", "1",
            "--samples", samples]


# ---- the tools ------------------------------------------------------------------------------------------------

_ARGS = {"benchmark_model": _args_benchmark_model, "onnxruntime_perf_test": _args_ort,
         "executor_runner": _args_executor_runner, "edgecap_runner": _args_edgecap_runner}
_PARSE = {"benchmark_model": _parse_benchmark_model, "onnxruntime_perf_test": _parse_ort,
          "executor_runner": _parse_executor_runner, "edgecap_runner": _parse_edgecap_runner}


@dataclass(frozen=True)
class Tool:
    name: str  # file name of the binary
    formats: tuple[str, ...]
    runtime: str
    writes_outputs: bool
    warmup_in_times: bool = False  # its warm-up runs are printed among the timed ones: drop times_ms[:warmup]

    def args(self, model: str, threads: int, warmup: int, iterations: int, min_seconds: float = 0.0,
             inputs: list[str] = (), output_dir: str | None = None, profile: str | None = None) -> list[str]:
        """The argv after the binary; all paths are device paths."""
        if iterations < 1:
            raise ValueError(f"{self.name}: iterations must be >= 1, got {iterations}")
        return _ARGS[self.name](model, threads, warmup, iterations, min_seconds, list(inputs), output_dir, profile)

    def parse(self, stdout: str, stderr: str = "") -> ToolResult:
        return _PARSE[self.name](stdout, stderr)

    def profile_glob(self, profile: str) -> str:
        """The device path (a glob for onnxruntime_perf_test) of what a run given `profile` writes."""
        return f"{profile}_*.json" if self.name == "onnxruntime_perf_test" else profile


TOOLS: dict[str, Tool] = {t.name: t for t in (
    Tool("benchmark_model", ("tflite",), "LiteRT", False),
    Tool("onnxruntime_perf_test", ("onnx",), "ONNX Runtime", False),
    Tool("executor_runner", ("executorch",), "ExecuTorch", False, warmup_in_times=True),
    Tool("edgecap_runner", ("onnx", "executorch", "tflite"), "edgecap", True),
)}


# ---- merging rounds -------------------------------------------------------------------------------------------


def merge(results: list[ToolResult]) -> ToolResult:
    """One result from the rounds of one tool: times concatenated, summary stats pooled by count (std as the
    population std of all samples), percentiles dropped (a summary's percentiles do not pool), the first round's
    init/first/warm-up figures, the largest peak memory."""
    if not results:
        raise ValueError("merge needs at least one ToolResult")
    tools = {r.tool for r in results}
    if len(tools) > 1:
        raise ValueError(f"merge of different tools: {sorted(tools)}")
    if len(results) == 1:
        r = results[0]
        return replace(r, times_ms=list(r.times_ms), stats=dict(r.stats), outputs=list(r.outputs), notes=list(r.notes))
    all_stats = [r.stats for r in results]

    def every(*keys):
        return all(all(k in s for k in keys) for s in all_stats)

    stats: dict[str, float] = {}
    if every("count"):
        n = sum(s["count"] for s in all_stats)
        stats["count"] = n
        if every("mean_ms") and n > 0:
            mean = sum(s["count"] * s["mean_ms"] for s in all_stats) / n
            stats["mean_ms"] = mean
            if every("std_ms"):  # within-round variance plus the spread of the round means
                var = sum(s["count"] * (s["std_ms"] ** 2 + (s["mean_ms"] - mean) ** 2) for s in all_stats) / n
                stats["std_ms"] = math.sqrt(var)
    if every("min_ms"):
        stats["min_ms"] = min(s["min_ms"] for s in all_stats)
    if every("max_ms"):
        stats["max_ms"] = max(s["max_ms"] for s in all_stats)
    for key in ("first_ms", "warmup_mean_ms"):
        if key in all_stats[0]:
            stats[key] = all_stats[0][key]
    notes = [note for r in results for note in r.notes]
    if any(k in s for s in all_stats for k in PERCENTILE_KEYS) and not all(r.times_ms for r in results):
        notes.append(f"{results[0].tool} prints percentiles per round: they are not pooled over "
                     f"{len(results)} rounds (see each round's)")
    peaks = [r.peak_memory_mb for r in results if r.peak_memory_mb is not None]
    return ToolResult(
        results[0].tool, [t for r in results for t in r.times_ms], stats, init_ms=results[0].init_ms,
        peak_memory_mb=max(peaks) if peaks else None,
        profile=next((r.profile for r in results if r.profile), None),
        outputs=list(next((r.outputs for r in results if r.outputs), [])),
        notes=list(dict.fromkeys(notes)))
