"""LiteRT export + runner on a small lifter trained for a few seconds on synthetic motion."""

import numpy as np
import pytest
from ai_edge_litert import schema_py_generated as schema
from ai_edge_litert.tools import flatbuffer_utils

from edgecap import EdgecapError
from edgecap.backends.base import ExportRequest
from edgecap.backends.tflite.export import export_tflite, read_tflite_metadata, tflite_op_stats
from edgecap.backends.tflite.runner import TFLiteRunner
from edgecap.models.lifting.app import INPUT, OUTPUT
from tests.small_lifter import FAM, RUN, assert_int8_close, export_both
from tests.small_lifter import request as small_request

CFG = RUN.model


def request(lifter, precision, **overrides):
    model, calib, windows, _ = lifter
    return small_request(model, windows, precision, **{"calibration": calib, **overrides})


@pytest.fixture(scope="module")
def artifacts(lifter, tmp_path_factory):
    model, calib, windows, _ = lifter
    return export_both(export_tflite, model, windows, calib, tmp_path_factory.mktemp("tflite"), ".tflite")


def cosine(a, b):
    a, b = np.ravel(a), np.ravel(b)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def run_all(path, windows):
    runner = TFLiteRunner(path)
    return np.concatenate([runner.run({INPUT: w[None]})[OUTPUT] for w in windows])


def test_fp32_matches_eager_and_carries_metadata(lifter, artifacts):
    _, _, windows, eager = lifter
    path, record = artifacts["fp32"]
    assert record.format == "tflite" and record.precision == "fp32" and record.runnable_here
    assert record.details["ops"]["FULLY_CONNECTED"] == 4 and record.details["int8_op_total"] == 0
    runner = TFLiteRunner(path, threads=2)
    assert runner.input_names == [INPUT] and runner.output_names == [OUTPUT]
    stored = read_tflite_metadata(path)
    assert stored == runner.metadata()
    assert stored == {
        **FAM.metadata(CFG),
        "input_names": INPUT,
        "output_names": OUTPUT,
        "tflite_inputs": "args_0",
        "tflite_outputs": "output_0",
    }
    err = np.abs(run_all(path, windows) - eager).max()
    assert err <= 1e-5 * np.abs(eager).max(), f"fp32 max error {err:.2e} mm"


def test_rewritten_flatbuffer_keeps_weights_16_byte_aligned(artifacts):
    buf = np.fromfile(artifacts["fp32"][0], dtype=np.uint8)
    base = buf.__array_interface__["data"][0]
    model = schema.Model.GetRootAs(buf, 0)
    offsets = [
        model.Buffers(i).DataAsNumpy().__array_interface__["data"][0] - base
        for i in range(model.BuffersLength())
        if model.Buffers(i).DataLength()
    ]
    assert len(offsets) > 8 and all(o % 16 == 0 for o in offsets), offsets


def test_int8_computes_the_mlp_in_int8_and_normalization_in_float(artifacts):
    path, record = artifacts["int8"]
    stats = tflite_op_stats(flatbuffer_utils.read_model(str(path)))  # from the file, not the record
    assert stats == {k: record.details[k] for k in stats}
    assert stats["int8_ops"]["FULLY_CONNECTED"] == stats["ops"]["FULLY_CONNECTED"] == 4
    # Only the MLP input's concat/reshape join it; normalize/denormalize arithmetic stays float.
    assert set(stats["int8_ops"]) <= {"FULLY_CONNECTED", "CONCATENATION", "RESHAPE"}, stats["int8_ops"]
    assert all(stats["ops"].get(op) for op in ("SUM", "DIV", "SQRT", "MUL"))
    assert stats["ops"]["QUANTIZE"] > 0 and stats["ops"]["DEQUANTIZE"] > 0
    assert read_tflite_metadata(path)["output_names"] == OUTPUT
    assert path.stat().st_size < 0.5 * artifacts["fp32"][0].stat().st_size


def test_int8_stays_close_to_eager(lifter, artifacts):
    _, _, windows, eager = lifter
    assert_int8_close(run_all(artifacts["int8"][0], windows), eager)


def test_int8_without_calibration_fails_clearly(lifter, tmp_path):
    with pytest.raises(EdgecapError, match="calibration"):
        export_tflite(request(lifter, "int8", calibration=[]), tmp_path / "x.tflite")
    assert not (tmp_path / "x.tflite").exists()


def test_runner_rejects_wrong_shape_and_runs_files_without_edgecap_metadata(lifter, artifacts, tmp_path):
    path = artifacts["fp32"][0]
    with pytest.raises(EdgecapError, match="shape"):
        TFLiteRunner(path).run({INPUT: lifter[2][:1, :4]})
    bare = flatbuffer_utils.read_model(str(path))
    bare.metadata = [m for m in bare.metadata if m.name != b"edgecap"]
    flatbuffer_utils.write_model(bare, str(tmp_path / "bare.tflite"))
    with pytest.raises(EdgecapError, match="no 'edgecap' metadata"):
        read_tflite_metadata(tmp_path / "bare.tflite")
    # A model from elsewhere runs under its own signature's names, with the same results.
    runner = TFLiteRunner(tmp_path / "bare.tflite")
    assert runner.metadata() == {} and runner.input_names == ["args_0"] and runner.output_names == ["output_0"]
    x = lifter[2][:1]
    np.testing.assert_array_equal(runner.run({"args_0": x})["output_0"], TFLiteRunner(path).run({INPUT: x})[OUTPUT])


def test_cluster_nms_masks_are_computed_not_stored(tmp_path):
    """LiteRT folds constant subgraphs: the (k, k) rank masks of Cluster-NMS must stay in the
    graph (2 x 4 MB at k = 1000 otherwise), and the converted NMS must keep greedy NMS's result."""
    import litert_torch
    import torch

    from edgecap.models.ops import ClusterNMS

    nms = ClusterNMS(0.7, 1000, 100, tie_exact=False).eval()
    g = torch.Generator().manual_seed(0)
    xy, wh = torch.rand(3000, 2, generator=g) * 300, torch.rand(3000, 2, generator=g) * 60 + 4
    boxes, scores = torch.cat([xy, xy + wh], 1), torch.rand(3000, generator=g)
    path = tmp_path / "nms.tflite"
    converted = litert_torch.convert(nms, (boxes, scores))
    converted.export(str(path))
    assert path.stat().st_size < 200_000
    for got, want in zip(converted(boxes, scores), nms(boxes, scores)):  # runs the LiteRT interpreter
        np.testing.assert_allclose(np.asarray(got), want.numpy(), atol=1e-5)


def test_int8_feature_map_read_by_two_float_roialigns(tmp_path):
    """An int8 feature map read by two fp32 RoIAligns (the box and the DensePose pooler both
    read P2): litert-torch's layout pass once wired the second one to the NHWC buffer without
    a transpose (edgecap.backends.tflite.export._one_dequantize_per_user), so it pooled scrambled
    features (cosine 0.73 to eager here without the fix)."""
    import torch
    from torch import nn

    from edgecap.models.ops.roi_align import RoIAlign

    class TwoPoolers(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 16, 3, padding=1)
            self.first, self.second = RoIAlign(7, 1.0), RoIAlign(7, 1.0)

        def forward(self, image, boxes):
            p = torch.relu(self.conv(image))
            return self.first(p, boxes), self.second(p, boxes)

    torch.manual_seed(0)
    model = TwoPoolers().eval()
    g = np.random.default_rng(0)
    boxes = np.array([[2, 3, 20, 25], [10, 1, 30, 12]], np.float32)
    samples = [{"image": g.standard_normal((1, 3, 32, 32)).astype(np.float32), "boxes": boxes} for _ in range(8)]
    req = ExportRequest(model, samples[0], ["first", "second"], "int8", {"model": "two_poolers"},
                        calibration=samples[1:], float_modules=["first", "second"])
    path = tmp_path / "two_poolers.tflite"
    export_tflite(req, path)
    got = TFLiteRunner(path).run(samples[0])
    with torch.no_grad():
        want = model(*(torch.from_numpy(a) for a in samples[0].values()))
    for name, w in zip(["first", "second"], want):
        c = cosine(got[name], w.numpy())
        assert c > 0.99, f"{name}: cosine {c:.3f} to eager"


@pytest.mark.parametrize("channels,size", [(16, 16), (16, 24)])
def test_roialign_after_a_conv_converts_when_channels_equal_the_feature_size(channels, size):
    """litert-torch 0.10 miscompiled RoIAlign's old reshape(C, H, W).permute(1, 0, 2) after a
    conv when C == H (it folded the NHWC->NCHW transpose and the permute away): P3 of the
    64-channel detector at 512 x 512 pooled the wrong axis (max error 5.8, box AP -14 points)."""
    import litert_torch
    import torch
    from torch import nn

    from edgecap.models.ops.roi_align import RoIAlign

    class ConvPool(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv, self.pool = nn.Conv2d(3, channels, 3, padding=1), RoIAlign(7, 1.0 / 8)

        def forward(self, image, boxes):
            return self.pool(self.conv(image), boxes)

    torch.manual_seed(0)
    model = ConvPool().eval()
    image = torch.randn(1, 3, size, size)
    xy = torch.rand(12, 2) * size * 5
    boxes = torch.cat([xy, xy + 8 + torch.rand(12, 2) * size * 3], 1)
    got = np.asarray(litert_torch.convert(model, (image, boxes))(image, boxes))
    with torch.no_grad():
        np.testing.assert_allclose(got, model(image, boxes).numpy(), atol=1e-4)


def test_int8_outputs_only_where_the_request_allows_them(tmp_path):
    """A split detector hands its int8 features to the dense graph: an output listed in
    `quantized_outputs` may stay int8 and the runner dequantizes it; any other int8 output is
    refused and names the output."""
    import torch
    from torch import nn

    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU()).eval()
    g = np.random.default_rng(0)
    samples = [{"image": g.standard_normal((1, 3, 16, 16)).astype(np.float32)} for _ in range(6)]
    fields = dict(model=model, example_inputs=samples[0], output_names=["features"], precision="int8",
                  metadata={"model": "conv"}, calibration=samples[1:])
    with pytest.raises(EdgecapError, match="output 'features'.*INT8"):
        export_tflite(ExportRequest(**fields), tmp_path / "refused.tflite")
    path = tmp_path / "features.tflite"
    record = export_tflite(ExportRequest(**fields, quantized_outputs=["features"]), path)
    q = record.details["int8_outputs"]["features"]
    got = TFLiteRunner(path).run(samples[0])["features"]
    with torch.no_grad():
        want = model(torch.from_numpy(samples[0]["image"])).numpy()
    assert got.dtype == np.float32 and got.shape == want.shape
    # Dequantized in the right layout: int8 noise only (a layout or scale slip gives far less).
    c = cosine(got, want)
    assert c > 0.995 and q["scale"] > 0, c
    with pytest.raises(EdgecapError, match="quantized_outputs"):
        ExportRequest(**fields, quantized_outputs=["nope"])
