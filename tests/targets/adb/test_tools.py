"""Command lines and output parsers of the Android benchmarking tools, on transcripts in each tool's format."""

from pathlib import Path

import numpy as np
import pytest

from edgecap import EdgecapError
from edgecap.targets.adb.tools import TOOLS, ToolOutputError, ToolResult, format_edgecap_runner, merge

FIXTURES = Path(__file__).parent / "fixtures"


def fixture(name: str) -> str:
    return (FIXTURES / name).read_text()


def test_tools_table():
    assert set(TOOLS) == {"benchmark_model", "onnxruntime_perf_test", "executor_runner", "edgecap_runner"}
    assert TOOLS["benchmark_model"].formats == ("tflite",)
    assert TOOLS["onnxruntime_perf_test"].formats == ("onnx",)
    assert TOOLS["executor_runner"].formats == ("executorch",)
    assert set(TOOLS["edgecap_runner"].formats) == {"onnx", "executorch", "tflite"}
    assert [t.name for t in TOOLS.values() if t.writes_outputs] == ["edgecap_runner"]
    assert issubclass(ToolOutputError, EdgecapError)


# ---- benchmark_model ----


def test_benchmark_model_2x():
    r = TOOLS["benchmark_model"].parse(fixture("benchmark_model_2.x.txt"))
    assert r.tool == "benchmark_model"
    assert r.stats == pytest.approx({"count": 50, "mean_ms": 11.1265, "min_ms": 10.783, "max_ms": 12.098,
                                     "std_ms": 0.227, "first_ms": 13.96, "warmup_mean_ms": 11.9506})
    assert "p50_ms" not in r.stats
    assert any("no percentiles" in n for n in r.notes)
    assert r.times_ms == []
    assert r.init_ms == pytest.approx(5.235)
    assert r.peak_memory_mb == pytest.approx(17.1875)
    assert r.profile == "/data/local/tmp/edgecap/x/ops.csv"


def test_benchmark_model_litert_percentiles():
    r = TOOLS["benchmark_model"].parse(fixture("benchmark_model_litert.txt"))
    assert r.stats == pytest.approx({"count": 100, "mean_ms": 1.92908, "min_ms": 1.85, "max_ms": 2.39,
                                     "std_ms": 0.062, "p50_ms": 1.927, "p95_ms": 1.995, "first_ms": 4.21,
                                     "warmup_mean_ms": 2.875})
    assert not any("no percentiles" in n for n in r.notes)
    assert r.init_ms == pytest.approx(3.118)
    assert r.peak_memory_mb is None and r.profile is None


def test_benchmark_model_all_same():
    r = TOOLS["benchmark_model"].parse(fixture("benchmark_model_all_same.txt"))
    assert r.stats == pytest.approx({"count": 20, "mean_ms": 1.0, "min_ms": 1.0, "max_ms": 1.0, "std_ms": 0.0,
                                     "first_ms": 2.0, "warmup_mean_ms": 2.0})
    assert r.init_ms == pytest.approx(0.412)


def test_benchmark_model_without_timings_raises():
    with pytest.raises(ToolOutputError, match=r"benchmark_model.*Inference timings.*Failed to mmap"):
        TOOLS["benchmark_model"].parse(fixture("benchmark_model_failed.txt"))


def test_benchmark_model_reads_stderr_too():
    r = TOOLS["benchmark_model"].parse("", fixture("benchmark_model_2.x.txt"))
    assert r.stats["count"] == 50


def test_benchmark_model_args():
    argv = TOOLS["benchmark_model"].args("/d/m.tflite", threads=4, warmup=10, iterations=100, min_seconds=2.5,
                                         inputs=["/d/in0.npy"], output_dir="/d/out", profile="/d/ops.csv")
    assert argv[0] == "--graph=/d/m.tflite"
    for flag in ["--num_threads=4", "--warmup_runs=10", "--warmup_min_secs=0", "--num_runs=100", "--min_secs=2.5",
                 "--enable_op_profiling=true", "--op_profiling_output_mode=csv",
                 "--op_profiling_output_file=/d/ops.csv"]:
        assert flag in argv
    assert not any("/d/in0.npy" in a or "/d/out" in a for a in argv)  # random inputs, no output files
    plain = TOOLS["benchmark_model"].args("/d/m.tflite", 1, 0, 5)
    assert "--min_secs=0" in plain and not any("profiling" in a for a in plain)


# ---- onnxruntime_perf_test ----


def test_onnxruntime_perf_test():
    r = TOOLS["onnxruntime_perf_test"].parse(fixture("onnxruntime_perf_test.txt"))
    assert r.stats == pytest.approx({"count": 50, "mean_ms": 8.35566, "min_ms": 7.90414, "max_ms": 10.1523,
                                     "p50_ms": 8.34186, "p90_ms": 8.64232, "p95_ms": 8.65596, "p99_ms": 10.1523,
                                     "p999_ms": 10.1523, "first_ms": 9.0})
    assert "std_ms" not in r.stats
    assert r.times_ms == []
    assert r.init_ms == pytest.approx(41.2337)
    assert r.peak_memory_mb == pytest.approx(52162560 / 2**20)
    assert any("one warm-up" in n for n in r.notes)


def test_onnxruntime_perf_test_verbose_iterations():
    r = TOOLS["onnxruntime_perf_test"].parse(fixture("onnxruntime_perf_test_verbose.txt"))
    assert r.times_ms == pytest.approx([8.1234, 7.9876, 8.3456])
    assert r.stats["count"] == 3 and r.stats["mean_ms"] == pytest.approx(8.1522)
    assert "p50_ms" not in r.stats and any("without -s" in n for n in r.notes)


def test_onnxruntime_perf_test_missing_summary_raises():
    with pytest.raises(ToolOutputError, match="onnxruntime_perf_test.*Total inference requests"):
        TOOLS["onnxruntime_perf_test"].parse("Setting intra_op_num_threads to 2\n", "Run failed:bad model\n")


def test_onnxruntime_perf_test_args():
    argv = TOOLS["onnxruntime_perf_test"].args("/d/m.onnx", threads=2, warmup=5, iterations=50,
                                               inputs=["/d/in0.npy"], profile="/d/prof")
    assert argv[-1] == "/d/m.onnx"  # the model is the positional argument, after the options
    pairs = {argv[i]: argv[i + 1] for i in range(len(argv) - 1) if argv[i] in ("-m", "-r", "-x", "-p")}
    assert pairs == {"-m": "times", "-r": "50", "-x": "2", "-p": "/d/prof"}
    assert "-I" in argv and "-s" in argv and "/d/in0.npy" not in argv
    assert TOOLS["onnxruntime_perf_test"].profile_glob("/d/prof") == "/d/prof_*.json"


# ---- executor_runner ----


def test_executor_runner():
    r = TOOLS["executor_runner"].parse("OutputX 0: tensor(sizes=[1, 17, 3], [...])\n", fixture("executor_runner.txt"))
    assert r.times_ms == pytest.approx([11.904271, 7.412083, 7.248906, 7.367188, 7.201302])
    assert r.stats == pytest.approx({"count": 5, "mean_ms": 41.13375 / 5, "first_ms": 11.904271})
    assert r.init_ms == pytest.approx(18.377604)
    assert r.profile == "/data/local/tmp/edgecap/w/run.etdump"
    assert any("no warm-up" in n for n in r.notes)


def test_executor_runner_total_only():
    r = TOOLS["executor_runner"].parse("", fixture("executor_runner_1.2.txt"))
    assert r.times_ms == [] and r.init_ms is None
    assert r.stats == pytest.approx({"count": 10, "mean_ms": 7.7250521})
    assert any("total only" in n for n in r.notes)


def test_executor_runner_without_logs_raises():
    with pytest.raises(ToolOutputError, match="executor_runner.*EXECUTORCH_ENABLE_LOGGING"):
        TOOLS["executor_runner"].parse("OutputX 0: tensor(sizes=[1], [1.])\n", "")


def test_executor_runner_args():
    argv = TOOLS["executor_runner"].args("/d/m.pte", threads=3, warmup=5, iterations=20, inputs=["/d/in0.npy"],
                                         profile="/d/run.etdump")
    # Its warm-up runs are timed runs too: 5 + 20 executions, the first 5 dropped by the caller.
    assert argv == ["--model_path=/d/m.pte", "--num_executions=25", "--cpu_threads=3", "--etdump_path=/d/run.etdump"]
    assert TOOLS["executor_runner"].warmup_in_times and not TOOLS["edgecap_runner"].warmup_in_times
    assert not any("etdump" in a for a in TOOLS["executor_runner"].args("/d/m.pte", 1, 0, 1))


# ---- edgecap_runner ----


def test_edgecap_runner_fixture():
    r = TOOLS["edgecap_runner"].parse(fixture("edgecap_runner.txt"))
    assert r.times_ms == pytest.approx([1.234, 1.198, 1.305, 1.221])
    assert r.stats == {}
    assert r.init_ms == pytest.approx(12.345)
    assert r.peak_memory_mb == pytest.approx(123456 / 1024)
    assert r.outputs == [
        {"index": 0, "file": "/data/local/tmp/edgecap/x/out/out_0.npy", "shape": [1, 1, 17, 3], "dtype": "float32"},
        {"index": 1, "file": "/data/local/tmp/edgecap/x/out/out_1.npy", "shape": [], "dtype": "int64"},
    ]


def test_edgecap_runner_round_trip():
    times = [0.1 * i + 1 / 3 for i in range(7)]
    text = format_edgecap_runner("executorch", "/d/m.pte", 4, 7.25, [((1, 3, 8, 8), "float32"), ((), "int64")],
                                 times, [("/d/out/out_0.npy", (1, 10), "float32")], 2048)
    assert text.splitlines()[0] == "edgecap_runner version=1 runtime=executorch model=/d/m.pte threads=4"
    assert "input 0 1x3x8x8 float32" in text and "input 1 scalar int64" in text
    r = TOOLS["edgecap_runner"].parse("I some runtime log line\n" + text)
    assert r.times_ms == times  # exact: floats print in round-trip form
    assert r.init_ms == 7.25 and r.peak_memory_mb == 2.0
    assert r.outputs == [{"index": 0, "file": "/d/out/out_0.npy", "shape": [1, 10], "dtype": "float32"}]
    with pytest.raises(ValueError, match="runtime"):
        format_edgecap_runner("tvm", "/d/m", 1, 1.0, [], [1.0], [], 1)


def test_edgecap_runner_errors():
    with pytest.raises(ToolOutputError, match="edgecap_runner.*header"):
        TOOLS["edgecap_runner"].parse("iteration_ms 1.0\n")
    with pytest.raises(ToolOutputError, match="edgecap_runner.*iteration_ms"):
        TOOLS["edgecap_runner"].parse("edgecap_runner version=1 runtime=litert model=/d/m threads=1\n",
                                      "error: cannot open model\n")
    with pytest.raises(ToolOutputError, match="version '2'"):
        TOOLS["edgecap_runner"].parse("edgecap_runner version=2 runtime=litert\niteration_ms 1.0\n")


def test_edgecap_runner_args():
    argv = TOOLS["edgecap_runner"].args("/d/m.onnx", threads=2, warmup=3, iterations=40, min_seconds=1.5,
                                        inputs=["/d/a.npy", "/d/b.npy"], output_dir="/d/out", profile="/d/p")
    assert argv == ["--model", "/d/m.onnx", "--threads", "2", "--warmup", "3", "--iterations", "40",
                    "--min-seconds", "1.5", "--input", "/d/a.npy", "--input", "/d/b.npy", "--output-dir", "/d/out"]
    assert "--min-seconds" not in TOOLS["edgecap_runner"].args("/d/m.onnx", 1, 0, 1)
    with pytest.raises(ValueError, match="iterations"):
        TOOLS["edgecap_runner"].args("/d/m.onnx", 1, 0, 0)


# ---- merge ----


def _round(samples, **extra) -> ToolResult:
    a = np.asarray(samples)
    stats = {"count": float(a.size), "mean_ms": float(a.mean()), "min_ms": float(a.min()), "max_ms": float(a.max()),
             "std_ms": float(a.std()), "p50_ms": float(np.median(a))}
    return ToolResult("benchmark_model", [], stats, **extra)


def test_merge_pools_summaries():
    rng = np.random.default_rng(0)
    a, b = rng.normal(10, 1, 37), rng.normal(12, 2, 58)
    r1 = _round(a, init_ms=5.0, peak_memory_mb=30.0, notes=["x"])
    r2 = _round(b, init_ms=9.0, peak_memory_mb=42.0, notes=["x"])
    m = merge([r1, r2])
    both = np.concatenate([a, b])
    assert m.stats["count"] == 95
    assert m.stats["mean_ms"] == pytest.approx(both.mean(), rel=1e-12)
    assert m.stats["std_ms"] == pytest.approx(both.std(), rel=1e-12)
    assert m.stats["min_ms"] == both.min() and m.stats["max_ms"] == both.max()
    assert not any(k.startswith("p") for k in m.stats)  # percentiles do not pool
    assert m.notes[0] == "x" and len(m.notes) == 2 and "per round" in m.notes[1]
    assert m.init_ms == 5.0 and m.peak_memory_mb == 42.0
    assert r1.stats["p50_ms"] == pytest.approx(np.median(a))  # inputs untouched


def test_merge_concatenates_times_without_percentile_note():
    r1 = TOOLS["edgecap_runner"].parse(fixture("edgecap_runner.txt"))
    text = format_edgecap_runner("onnxruntime", "/d/m.onnx", 2, 11.0, [], [2.0, 3.0], [], 1024)
    m = merge([r1, TOOLS["edgecap_runner"].parse(text)])
    assert m.times_ms == pytest.approx([1.234, 1.198, 1.305, 1.221, 2.0, 3.0])
    assert m.init_ms == pytest.approx(12.345) and m.peak_memory_mb == pytest.approx(123456 / 1024)
    assert len(m.outputs) == 2 and m.notes == []


def test_merge_ort_rounds_drops_percentiles():
    r = TOOLS["onnxruntime_perf_test"].parse(fixture("onnxruntime_perf_test.txt"))
    m = merge([r, r])
    assert m.stats["count"] == 100 and m.stats["mean_ms"] == pytest.approx(8.35566)
    assert "p50_ms" not in m.stats and "std_ms" not in m.stats
    assert any("per round" in n for n in m.notes)
    assert merge([r]).stats == r.stats  # one round: its own percentiles stand
    with pytest.raises(ValueError, match="different tools"):
        merge([r, TOOLS["edgecap_runner"].parse(fixture("edgecap_runner.txt"))])
