"""Op-level profile parsers (edgecap.targets.adb.profiles) on the tools' real layouts.

Fixtures: profile_benchmark_model.csv follows LiteRT's ProfileSummaryCSVFormatter / tsl StatsCalculator layout
(an 11-node CNN, 50 runs, without XNNPACK); profile_onnxruntime.json is a real onnxruntime 1.31 profile of a small
CNN exported with torch.onnx (3 runs); profile_executorch_*.etdump are real ETDumps written by executorch 1.5.1's
pybindings (3 runs; portable kernels, and XNNPACK-lowered).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edgecap import EdgecapError
from edgecap.targets.adb.profiles import format_op_table, op_table

FIXTURES = Path(__file__).parent / "fixtures"


def _by_op(rows):
    return {r["op"]: r for r in rows}


def _check_table(rows):
    assert [r["total_ms"] for r in rows] == sorted((r["total_ms"] for r in rows), reverse=True)
    assert sum(r["percent"] for r in rows) == pytest.approx(100.0, abs=0.01)
    assert all(set(r) == {"op", "count", "total_ms", "percent"} and isinstance(r["count"], int) for r in rows)


def test_benchmark_model_csv_summary_by_node_type():
    rows = op_table(FIXTURES / "profile_benchmark_model.csv")
    _check_table(rows)
    assert [r["op"] for r in rows] == ["CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "ADD", "MEAN", "SOFTMAX"]
    ops = _by_op(rows)
    assert ops["CONV_2D"] == {"op": "CONV_2D", "count": 4, "total_ms": 1.964, "percent": 76.2127}
    assert ops["ADD"] == {"op": "ADD", "count": 2, "total_ms": 0.063, "percent": 2.4447}
    assert ops["SOFTMAX"]["percent"] == 0.310439
    # the regular runs' summary, not the initialization one (AllocateTensors ...)
    assert "AllocateTensors" not in ops


def test_benchmark_model_csv_older_layout_with_start_column(tmp_path):
    # TensorFlow before the start column was dropped (tensorflow/core/util/stats_calculator.cc)
    text = """Operator-wise Profiling Info for Regular Benchmark Runs:
============================== Run Order ==============================
node type, start, first, avg_ms, %, cdf%, mem KB, times called, name
CONV_2D, 0, 0.11, 0.0930388, 44.8994%, 44.8994%, 0, 1, [sequential_11/conv2d_33/Conv2D]:0
ELU, 0.0931277, 0.034, 0.0300884, 14.5203%, 59.4197%, 0, 1, [sequential_11/conv2d_33/Elu]:1

Number of nodes executed: 2
============================== Summary by node type ==============================
node type, count, avg_ms, avg %, cdf %, mem KB, times called
CONV_2D, 1, 0.093, 75.6098%, 75.6098%, 0, 1
ELU, 1, 0.03, 24.3902%, 100%, 0, 1

Timings (microseconds): count=50 first=151 curr=122 min=118 max=151 avg=123.1 std=5
"""
    path = tmp_path / "old.csv"
    path.write_text(text)
    assert op_table(path) == [{"op": "CONV_2D", "count": 1, "total_ms": 0.093, "percent": 75.6098},
                              {"op": "ELU", "count": 1, "total_ms": 0.03, "percent": 24.3902}]


def test_onnxruntime_json_profile():
    rows = op_table(FIXTURES / "profile_onnxruntime.json")
    _check_table(rows)
    ops = _by_op(rows)
    # 3 model_run events; Conv (NCHWc, fused with Relu): 132+11, 12+10, 6+9 us
    assert ops["Conv"]["count"] == 2
    assert ops["Conv"]["total_ms"] == pytest.approx(0.180 / 3)
    assert ops["Conv"]["percent"] == pytest.approx(100 * 180 / 261)
    assert ops["ReduceMean"]["total_ms"] == pytest.approx(0.029 / 3)
    assert ops["Softmax"]["count"] == 1
    assert rows[0]["op"] == "Conv"
    assert set(ops) == {"Conv", "ReorderOutput", "ReduceMean", "Gemm", "Softmax"}


def test_onnxruntime_provider_other_than_cpu_is_named(tmp_path):
    events = [{"cat": "Node", "name": "n_kernel_time", "dur": 500, "args": {"op_name": "Conv",
                                                                              "provider": "XnnpackExecutionProvider"}},
              {"cat": "Node", "name": "n_fence_before", "dur": 1, "args": {"op_name": "Conv"}},
              {"cat": "Node", "name": "m_kernel_time", "dur": 250, "args": {"op_name": "Relu",
                                                                              "provider": "CPUExecutionProvider"}}]
    path = tmp_path / "p.json"
    path.write_text(json.dumps(events))
    assert op_table(path) == [{"op": "Conv (Xnnpack)", "count": 1, "total_ms": 0.5, "percent": pytest.approx(200 / 3)},
                              {"op": "Relu", "count": 1, "total_ms": 0.25, "percent": pytest.approx(100 / 3)}]


def test_executorch_etdump_portable():
    rows = op_table(FIXTURES / "profile_executorch_portable.etdump")
    _check_table(rows)
    ops = _by_op(rows)
    assert [r["op"] for r in rows] == ["convolution", "relu", "mean", "addmm", "permute_copy"]
    # native_call_convolution.out, two nodes, 3 runs (ETDump ns -> ms)
    assert ops["convolution"]["count"] == 2
    assert ops["convolution"]["total_ms"] == pytest.approx((0.211324 + 0.213096 + 0.18195 + 0.470417 + 0.473923
                                                            + 0.470417) / 3)


def test_executorch_etdump_xnnpack_delegate_ops():
    ops = _by_op(op_table(FIXTURES / "profile_executorch_xnnpack.etdump"))
    assert ops["Convolution (NHWC, F32) IGEMM"]["count"] == 2
    assert ops["Convolution (NHWC, F32) IGEMM"]["total_ms"] == pytest.approx((0.007 + 0.039 + 0.033 + 0.005 + 0.038
                                                                              + 0.035) / 3)
    assert ops["mean"]["count"] == 1  # left to the portable kernels
    assert "DELEGATE_CALL" not in ops and "OPERATOR_CALL" not in ops


@pytest.mark.parametrize("name, content, message", [
    ("p.csv", "node type, first\nCONV_2D, 1\n", "no 'Summary by node type' section"),
    ("p.csv", ("============================== Summary by node type ==============================\n"
               "node type, count, avg_ms, avg %, cdf %, mem KB, times called\nCONV_2D, 4, x, 1%, 1%, 0, 4\n"),
     "not a number 'x'"),
    ("p.json", '[\n{"cat" : "Node","name" :"a_kernel_time","dur" :3,"args" : {"op_name": "Conv"}},\n', "cut short"),
    ("p.json", '[{"cat": "Session", "name": "model_run", "dur": 5}]', "no node events"),
    ("p.etdump", "not a flatbuffer", "not an ETDump"),
    ("p.txt", "x", "unknown profile suffix '.txt'"),
    ("p.csv", "", "the file is empty"),
])
def test_garbled_profile_refused(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(EdgecapError, match="op profile .*p\\.") as info:
        op_table(path)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_missing_profile_refused(tmp_path):
    with pytest.raises(EdgecapError, match=r"op profile .*gone\.json: cannot read it"):
        op_table(tmp_path / "gone.json")


def test_format_op_table():
    rows = op_table(FIXTURES / "profile_benchmark_model.csv")
    text = format_op_table(rows, top=2)
    lines = text.splitlines()
    assert lines[0].split() == ["op", "count", "total", "ms", "%"]
    assert lines[1].split() == ["CONV_2D", "4", "1.964", "76.21"]
    assert lines[2].split() == ["DEPTHWISE_CONV_2D", "2", "0.437", "16.96"]
    assert lines[3].split() == ["(4", "more)", "5", "0.176", "6.83"]
    assert len(format_op_table(rows).splitlines()) == 1 + len(rows)
