"""What runs on the simulated device when edgecap starts a runner there.

- `edgecap_runner`: the real model, on the host, through edgecap's own runtimes: it reads the
  pushed .npy inputs, times each run on the host's clock, writes the outputs as .npy and prints
  edgecap_runner's output format. A throttled simulated core is slower: each run then also
  waits out the lost frequency (time x (1/speed - 1)), and the printed time is the wall time.
- The runtimes' own tools (benchmark_model, onnxruntime_perf_test, executor_runner): the
  recorded transcript of a real run of that tool, from tests/targets/adb/fixtures.
"""

from __future__ import annotations

import resource
import time
from pathlib import Path

import numpy as np

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
RECORDED = {"benchmark_model": "benchmark_model_2.x.txt", "onnxruntime_perf_test": "onnxruntime_perf_test_verbose.txt",
            "executor_runner": "executor_runner.txt"}
_models: dict = {}


def run(program: str, argv: list[str], device, cpus: list[int]) -> tuple[int, str, str]:
    if program == "edgecap_runner":
        return _edgecap_runner(argv, device, cpus)
    if program in RECORDED:
        _write_recorded_profile(program, argv, device)
        lines = (FIXTURES / {**RECORDED, **device.recorded}[program]).read_text().splitlines(keepends=True)
        return 0, "".join(ln for ln in lines if not ln.startswith("# ")), ""  # without the fixture's own notes
    return 126, "", f"/system/bin/sh: {program}: not executable: no stand-in for this program\n"


PROFILES = {"benchmark_model": ("--op_profiling_output_file=", "profile_benchmark_model.csv", ""),
            "onnxruntime_perf_test": ("-p", "profile_onnxruntime.json", "_2026-12-06_12-00-00.json"),
            "executor_runner": ("--etdump_path=", "profile_executorch_xnnpack.etdump", "")}


def _write_recorded_profile(program: str, argv: list[str], device) -> None:
    """A recorded op profile where the tool's flag asks for one (ORT appends a date to its prefix)."""
    flag, fixture, suffix = PROFILES[program]
    for i, word in enumerate(argv):
        target = (argv[i + 1] if i + 1 < len(argv) else None) if word == flag else \
            (word[len(flag):] if flag.endswith("=") and word.startswith(flag) else None)
        if target:
            local = device.local(target + suffix)
            local.parent.mkdir(parents=True, exist_ok=True)
            local.write_bytes((FIXTURES / fixture).read_bytes())


def _options(argv: list[str]) -> dict:
    options: dict = {"input": []}
    it = iter(argv)
    for word in it:
        key = word.removeprefix("--").replace("-", "_")
        value = next(it, None)
        if value is None:
            raise ValueError(f"{word} needs a value")
        if key == "input":
            options["input"].append(value)
        else:
            options[key] = value
    return options


def _edgecap_runner(argv: list[str], device, cpus: list[int]) -> tuple[int, str, str]:
    from edgecap.runs import open_artifact
    from edgecap.targets.adb.tools import format_edgecap_runner

    try:
        o = _options(argv)
        model_path = device.local(o["model"])
        threads, warmup, iterations = int(o["threads"]), int(o["warmup"]), int(o["iterations"])
        min_seconds = float(o.get("min_seconds", 0))
    except (KeyError, ValueError) as e:
        return 2, "", f"usage: edgecap_runner --model PATH ... ({e})\n"
    if model_path is None or not model_path.exists():
        return 2, "", f"cannot open model {o['model']}: No such file or directory\n"
    started = time.perf_counter()
    key = (str(model_path), model_path.stat().st_mtime_ns, threads)
    if key not in _models:
        # One model at a time, like a process per run on a phone: ExecuTorch's thread pool is
        # global, and two of its programs at different thread counts in one process crash it.
        _models.clear()
        _models[key] = open_artifact(model_path, threads=threads, trusted=True)
    runner = _models[key]
    load_ms = (time.perf_counter() - started) * 1000
    names = runner.input_names
    runtime = {".onnx": "onnxruntime", ".pte": "executorch", ".tflite": "litert"}[model_path.suffix]
    if "samples" in o:  # every sample folder once, outputs beside its inputs
        root = o["samples"].rstrip("/")
        ids = sorted(int(p.name) for p in device.local(root).iterdir() if p.name.isdigit())
        times, written = [], []
        for k in ids:
            arrays = {n: np.load(device.local(f"{root}/{k}/in_{i}.npy")) for i, n in enumerate(names)}
            t0 = time.perf_counter()
            outputs = runner.run(arrays)
            times.append((time.perf_counter() - t0) * 1000)
            for i, name in enumerate(runner.output_names):
                value = np.ascontiguousarray(outputs[name])
                np.save(device.local(f"{root}/{k}/out_{i}.npy"), value)
                written.append((f"{root}/{k}/out_{i}.npy", value.shape, str(value.dtype)))
        text = format_edgecap_runner(runtime, o["model"], threads, load_ms, [], times, [],
                                     resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
        # format_edgecap_runner numbers outputs 0..n; with samples each sample restarts at 0
        lines = [f"output {i % len(runner.output_names)} {f} {'x'.join(map(str, shape)) or 'scalar'} {dtype}"
                 for i, (f, shape, dtype) in enumerate(written)]
        return 0, text.replace("peak_rss_kb", "\n".join(lines) + "\npeak_rss_kb"), ""
    if o["input"]:
        if len(o["input"]) != len(names):
            return 2, "", f"the model takes {len(names)} inputs, got {len(o['input'])}\n"
        arrays = {n: np.load(device.local(f)) for n, f in zip(names, o["input"])}
    else:
        arrays = {n: np.zeros([d or 1 for d in runner.input_shapes.get(n, ())], np.float32) for n in names}
    for _ in range(warmup):
        outputs = runner.run(arrays)
    times, begin = [], time.perf_counter()
    while len(times) < iterations or time.perf_counter() - begin < min_seconds:
        if device.gone:
            raise ConnectionError("unplugged")
        t0 = time.perf_counter()
        outputs = runner.run(arrays)
        time.sleep((time.perf_counter() - t0) * (1 / device.speed(cpus) - 1))
        times.append((time.perf_counter() - t0) * 1000)
    written = []
    if "output_dir" in o:
        out_dir = o["output_dir"].rstrip("/")
        device.local(out_dir).mkdir(parents=True, exist_ok=True)
        for i, name in enumerate(runner.output_names):
            value = np.ascontiguousarray(outputs[name])
            np.save(device.local(f"{out_dir}/out_{i}.npy"), value)
            written.append((f"{out_dir}/out_{i}.npy", value.shape, str(value.dtype)))
    text = format_edgecap_runner(runtime, o["model"], threads, load_ms,
                                 [(a.shape, str(a.dtype)) for a in arrays.values()], times, written,
                                 resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
    return 0, text, ""
