"""ONNX export + ORT runner on a small lifter trained for a few seconds on synthetic motion."""

from collections import Counter

import numpy as np
import onnx
import pytest
import torch

from edgecap import EdgecapError
from edgecap.backends.base import ExportRequest
from edgecap.backends.onnx.export import export_onnx
from edgecap.backends.onnx.runner import OnnxRunner
from edgecap.models.lifting.app import INPUT, OUTPUT
from tests.small_lifter import FAM, RUN, assert_int8_close, export_both


@pytest.fixture(scope="module")
def artifacts(lifter, tmp_path_factory):
    model, calib, windows, _ = lifter
    return export_both(export_onnx, model, windows, calib, tmp_path_factory.mktemp("onnx"), ".onnx")


def run_all(path, windows):
    runner = OnnxRunner(path)
    return np.concatenate([runner.run({INPUT: w[None]})[OUTPUT] for w in windows])


def test_fp32_matches_eager_and_carries_metadata(lifter, artifacts):
    _, _, windows, eager = lifter
    path, record = artifacts["fp32"]
    assert sorted(p.name for p in path.parent.iterdir()) == ["lift_fp32.onnx.tmp", "lift_int8.onnx.tmp"]  # no external .data
    runner = OnnxRunner(path, threads=2)
    assert runner.input_names == [INPUT] and runner.output_names == [OUTPUT]
    assert runner.metadata() == FAM.metadata(RUN.model)
    assert record.details["opset"] >= 17 and record.details["op_types"]["Gemm"] == 4
    err = np.abs(run_all(path, windows) - eager).max()
    assert err <= 1e-4 * np.abs(eager).max(), f"fp32 max error {err:.2e} mm"


def qdq_units(model: onnx.ModelProto) -> list[str]:
    """Op types ORT may run in int8: fed by a DequantizeLinear and feeding a QuantizeLinear."""
    producer = {o: n.op_type for n in model.graph.node for o in n.output}
    consumers = Counter((i, n.op_type) for n in model.graph.node for i in n.input)
    return [
        n.op_type
        for n in model.graph.node
        if n.op_type not in ("QuantizeLinear", "DequantizeLinear")
        and any(producer.get(i) == "DequantizeLinear" for i in n.input)
        and any(consumers[(o, "QuantizeLinear")] for o in n.output)
    ]


def test_int8_quantizes_only_the_mlp(artifacts):
    path, record = artifacts["int8"]
    model = onnx.load(path)
    producer = {o: n.op_type for n in model.graph.node for o in n.output}
    gemms = [n for n in model.graph.node if n.op_type == "Gemm"]
    # Activation, weight and bias of every Gemm come through DequantizeLinear.
    assert len(gemms) == 4 and all(producer.get(i) == "DequantizeLinear" for n in gemms for i in n.input)
    units = Counter(qdq_units(model))
    assert units["Gemm"] == 4 and set(units) <= {"Gemm", "Relu", "Add"}, units  # no Mul/Div/ReduceSum/Sqrt
    assert record.details["quantized_nodes"] == 4 and record.details["float_nodes_excluded"] > 0
    assert record.details["quantize_linear"] == Counter(n.op_type for n in model.graph.node)["QuantizeLinear"] > 0
    assert {p.key: p.value for p in model.metadata_props} == FAM.metadata(RUN.model)
    assert path.stat().st_size < 0.5 * artifacts["fp32"][0].stat().st_size


def test_int8_stays_close_to_eager(lifter, artifacts):
    _, _, windows, eager = lifter
    assert_int8_close(run_all(artifacts["int8"][0], windows), eager)


def test_int8_without_calibration_fails_clearly(lifter, tmp_path):
    model, _, windows, _ = lifter
    req = ExportRequest(model, {INPUT: windows[:1]}, [OUTPUT], "int8", {})
    with pytest.raises(EdgecapError, match="calibration"):
        export_onnx(req, tmp_path / "x.onnx")
    assert not (tmp_path / "x.onnx").exists()


def test_runner_rejects_wrong_shape(artifacts, lifter):
    windows = lifter[2]
    with pytest.raises(EdgecapError, match="shape"):
        OnnxRunner(artifacts["fp32"][0]).run({INPUT: windows[:1, :4]})


class ConvAndLinear(torch.nn.Module):
    """Covers the other op types: Conv, and a Linear on 3-D input (exported as MatMul + Add)."""

    def __init__(self):
        super().__init__()
        self.pre = torch.nn.Conv2d(3, 3, 1)  # kept float via float_modules
        self.conv = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.head = torch.nn.Linear(8, 5)

    def forward(self, image):
        return self.head(self.conv(self.pre(image)).relu().flatten(2).transpose(1, 2))


def test_int8_covers_conv_and_matmul_and_respects_float_modules(lifter, tmp_path):
    # Structure only: the "images" are keypoint windows reshaped, so calibration ranges are real.
    windows = lifter[2].reshape(-1, 3, 9, 17)
    torch.manual_seed(0)
    req = ExportRequest(ConvAndLinear().eval(), {"image": windows[:1]}, ["out"], "int8", {},
                        [{"image": w[None]} for w in windows[:16]], ["pre"])
    record = export_onnx(req, tmp_path / "m.onnx")
    model = onnx.load(tmp_path / "m.onnx")
    producer = {o: n.op_type for n in model.graph.node for o in n.output}
    weight_dq = {n.op_type: producer.get(n.input[1]) for n in model.graph.node if n.op_type in ("Conv", "MatMul")}
    convs = [n for n in model.graph.node if n.op_type == "Conv"]
    assert weight_dq == {"Conv": "DequantizeLinear", "MatMul": "DequantizeLinear"}
    assert [producer.get(n.input[1]) for n in convs] == [None, "DequantizeLinear"]  # "pre" stays fp32
    assert record.details["quantized_nodes"] == 2 and record.details["float_nodes_excluded"] >= 1


def test_int8_folds_relu_into_the_conv_output_range(lifter, tmp_path):
    """ReLU after a quantized Conv is folded into the Conv's output QuantizeLinear: no Relu
    node is left and that range starts at 0 (zero point -128), so no int8 level is spent on
    negatives. The int8 output still matches eager."""
    windows = lifter[2].reshape(-1, 3, 9, 17)
    torch.manual_seed(0)
    model = ConvAndLinear().eval()
    samples = [{"image": w[None]} for w in windows[:16]]
    req = ExportRequest(model, {"image": windows[:1]}, ["out"], "int8", {}, samples, ["pre"])
    export_onnx(req, tmp_path / "m.onnx")
    graph = onnx.load(tmp_path / "m.onnx").graph
    inits = {i.name: onnx.numpy_helper.to_array(i) for i in graph.initializer}
    conv = [n for n in graph.node if n.op_type == "Conv"][1]  # the quantized one
    q_after = [n for n in graph.node if n.op_type == "QuantizeLinear" and n.input[0] == conv.output[0]]
    assert "Relu" not in {n.op_type for n in graph.node}
    assert len(q_after) == 1 and int(inits[q_after[0].input[2]]) == -128
    with torch.no_grad():
        eager = np.concatenate([model(torch.from_numpy(s["image"])).numpy() for s in samples])
    got = np.concatenate([OnnxRunner(tmp_path / "m.onnx").run(s)["out"] for s in samples])
    assert np.abs(got - eager).max() < 0.05 * np.abs(eager).max()


def test_int8_calibration_clips_a_rare_outlier_and_reads_every_sample_once(tmp_path):
    """Percentile calibration, fed in chunks: one extreme value among ~260k must not set the
    input's int8 step (MinMax would make it 1000 / 255 ~ 3.9), and every sample is read."""
    from edgecap.backends.onnx import export as onnx_export

    rng = np.random.default_rng(0)
    samples = [{"image": rng.standard_normal((1, 1, 128, 128)).astype(np.float32)} for _ in range(16)]
    samples[-1]["image"][0, 0, 5, 7] = 1000.0  # in the last chunk: the merged histogram must widen
    reads = []
    original = onnx_export._Calibration.get_next

    def counting_get_next(self):
        got = original(self)
        if got is not None:
            reads.append(float(got["image"].sum()))
        return got

    torch.manual_seed(0)
    model = torch.nn.Conv2d(1, 4, 3, padding=1).eval()
    req = ExportRequest(model, {"image": samples[0]["image"]}, ["out"], "int8", {}, samples)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(onnx_export._Calibration, "get_next", counting_get_next)
        record = export_onnx(req, tmp_path / "m.onnx")
    assert sorted(reads) == sorted(float(s["image"].sum()) for s in samples)
    graph = onnx.load(tmp_path / "m.onnx").graph
    inits = {i.name: onnx.numpy_helper.to_array(i) for i in graph.initializer}
    q_input = next(n for n in graph.node if n.op_type == "QuantizeLinear" and n.input[0] == "image")
    scale = float(inits[q_input.input[1]])
    assert 4.0 / 255 < scale < 12.0 / 255, f"input scale {scale}: the outlier set the range"
    assert record.details["calibration"].startswith("percentile")


@pytest.mark.parametrize("n, chunk", [(64, 8), (12, 6), (7, 7), (13, 1), (3, 3)])
def test_calibration_chunks_divide_the_sample_count(n, chunk):
    from edgecap.backends.onnx.export import _chunk

    assert _chunk(n) == chunk
