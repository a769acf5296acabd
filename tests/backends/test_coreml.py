"""Core ML export on a small lifter: converted and spec-checked everywhere, executed only on macOS."""

import platform
import re

import coremltools as ct
import numpy as np
import pytest
import torch

from edgecap import EdgecapError
from edgecap.backends.coreml.export import NOT_EXECUTED_NOTE, export_coreml
from edgecap.backends.coreml.runner import CoreMLRunner
from edgecap.core.runner import RunnerUnavailable
from edgecap.data.synthetic_motion import generate_motion
from edgecap.data.windows import PoseWindows
from edgecap.models.lifting.app import INPUT, OUTPUT
from tests.small_lifter import FAM, RUN
from tests.small_lifter import request as small_request

CFG = RUN.model
ON_MAC = platform.system() == "Darwin"


@pytest.fixture(scope="module")
def lifter():
    """(export-form model, eval windows (B,T,J,3), eager outputs); weights untrained, stats real."""
    seqs = generate_motion(4, frames=60, seed=1)
    windows = PoseWindows.from_sequences(list(seqs.keypoints_2d), list(seqs.joints_3d_mm), CFG.window, CFG.target)
    torch.manual_seed(0)
    model = FAM.build(CFG)
    model.set_pose_statistics(torch.from_numpy(windows.target_poses()))
    model = FAM.export_form(model)
    kp = windows.windows(np.arange(0, len(windows), 12))[0]
    with torch.no_grad():
        eager = model(torch.from_numpy(kp)).numpy()
    return model, kp, eager


def request(lifter, precision, **overrides):
    model, kp, _ = lifter
    return small_request(model, kp, precision, **overrides)


@pytest.fixture(scope="module")
def artifacts(lifter, tmp_path_factory):
    folder = tmp_path_factory.mktemp("coreml")
    out = {}
    for precision in ("fp32", "int8"):
        path = folder / f"lift_{precision}.mlpackage.tmp"  # the stage's temp name: no .mlpackage suffix
        out[precision] = (path, export_coreml(request(lifter, precision), path))
    return out


def features(described):
    return [(f.name, list(f.type.multiArrayType.shape), f.type.multiArrayType.dataType) for f in described]


def mil_ops(spec):
    """(op type, output dtype name) of every non-const op of the saved ML Program."""
    (block,) = spec.mlProgram.functions["main"].block_specializations.values()
    dtype = ct.proto.MIL_pb2.DataType.Name
    return [(op.type, dtype(op.outputs[0].type.tensorType.dataType)) for op in block.operations if op.type != "const"]


def test_fp32_converts_with_request_names_shapes_and_metadata(artifacts):
    path, record = artifacts["fp32"]
    assert path.is_dir() and (path / "Manifest.json").is_file()
    assert record.format == "coreml" and record.runnable_here == ON_MAC
    assert (NOT_EXECUTED_NOTE in record.notes) != ON_MAC
    spec = ct.utils.load_spec(str(path))
    f32 = ct.proto.FeatureTypes_pb2.ArrayFeatureType.FLOAT32
    assert features(spec.description.input) == [(INPUT, [1, CFG.window, 17, 3], f32)]
    assert features(spec.description.output) == [(OUTPUT, [1, 17, 3], f32)]
    stored = dict(spec.description.metadata.userDefined)
    assert FAM.metadata(CFG).items() <= stored.items()
    assert stored["input_names"] == INPUT and stored["output_names"] == OUTPUT
    assert spec.description.metadata.author.startswith("edgecap")
    assert {dt for _, dt in mil_ops(spec)} == {"FLOAT32"}
    assert record.details["ops"]["linear"] == 4 and record.details["int8_weights"] == 0


def test_int8_is_weight_only_int8_with_fp32_normalization(artifacts):
    path, record = artifacts["int8"]
    assert "weight-only int8" in record.scheme and "W8A16" in record.scheme
    ops = mil_ops(ct.utils.load_spec(str(path)))
    assert sum(t == "constexpr_affine_dequantize" for t, _ in ops) == record.details["int8_weights"] == 4
    assert {dt for t, dt in ops if t == "linear"} == {"FLOAT16"}
    # Pixel-space sums of squares overflow fp16, so normalize/denormalize must compute in fp32.
    assert {dt for t, dt in ops if t in ("reduce_sum", "sqrt", "real_div")} == {"FLOAT32"}
    size = lambda p: sum(f.stat().st_size for f in p.rglob("*") if f.is_file())  # noqa: E731
    assert size(path) < 0.5 * size(artifacts["fp32"][0])


def test_float_modules_keep_float_weights(lifter, tmp_path):
    req = request(lifter, "int8", float_modules=FAM.float_modules(CFG) + ["core.head"])
    record = export_coreml(req, tmp_path / "m.mlpackage")
    ops = mil_ops(ct.utils.load_spec(str(tmp_path / "m.mlpackage")))
    assert record.details["int8_weights"] == 3
    assert [dt for t, dt in ops if t == "linear"] == ["FLOAT16"] * 3 + ["FLOAT32"]  # the head is last


def test_unknown_float_module_fails_clearly(lifter, tmp_path):
    with pytest.raises(EdgecapError, match="not submodules"):
        export_coreml(request(lifter, "int8", float_modules=["normalise"]), tmp_path / "m.mlpackage")


@pytest.mark.skipif(ON_MAC, reason="off macOS the Core ML runner must refuse to run")
def test_runner_is_unavailable_off_macos(artifacts):
    path = artifacts["fp32"][0]
    message = f"Core ML runs only on macOS; this host is {platform.system()}: artifact {path} was converted"
    with pytest.raises(RunnerUnavailable, match=re.escape(message)):
        CoreMLRunner(path)


@pytest.mark.skipif(not ON_MAC, reason="Core ML executes only on macOS")
def test_runner_matches_eager_on_macos(lifter, artifacts):
    _, kp, eager = lifter
    for precision, tol in (("fp32", 1e-4), ("int8", 0.05)):
        runner = CoreMLRunner(artifacts[precision][0])
        got = np.concatenate([runner.run({INPUT: w[None]})[OUTPUT] for w in kp])
        assert np.abs(got - eager).max() <= tol * np.abs(eager).max(), precision


def test_cluster_nms_masks_are_computed_not_stored(tmp_path):
    """Core ML folds constant subgraphs: the (k, k) rank masks of Cluster-NMS must stay in
    the graph (2 x 2 MB in fp16 at k = 1000 otherwise)."""
    from edgecap.models.ops import ClusterNMS

    nms = ClusterNMS(0.7, 1000, 100, tie_exact=False).eval()
    boxes, scores = torch.rand(3000, 4) * 100, torch.rand(3000)
    boxes[:, 2:] += boxes[:, :2]
    program = torch.export.export(nms, (boxes, scores)).run_decompositions({})
    model = ct.convert(program, convert_to="mlprogram", minimum_deployment_target=ct.target.iOS17)
    big = [op.name for f in model._mil_program.functions.values() for op in f.operations
           if op.op_type == "const" and getattr(op.outputs[0].val, "size", 0) > 10_000]
    assert not big, f"constant (k, k) tensors in the Core ML program: {big}"


def test_anchor_selection_converts():
    """The RPN's anchor arithmetic (AnchorGenerator.select) is inside every detector graph."""
    from edgecap.models.ops import AnchorGenerator

    class Select(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.gen = AnchorGenerator((8, 16), ((32.0,), (64.0,)), (0.5, 1.0, 2.0), image_size=(64, 64))

        def forward(self, scores):
            return self.gen.select(scores.topk(20).indices)

    program = torch.export.export(Select().eval(), (torch.rand(240),)).run_decompositions({})
    model = ct.convert(program, convert_to="mlprogram", minimum_deployment_target=ct.target.iOS17)
    # Only the small per-level and per-shape tables are constants, not a table of every anchor.
    sizes = [getattr(op.outputs[0].val, "size", 0) for f in model._mil_program.functions.values()
             for op in f.operations if op.op_type == "const"]
    assert sizes and max(sizes) < 100
