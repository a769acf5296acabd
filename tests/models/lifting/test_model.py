import dataclasses

import numpy as np
import pytest
import torch

from edgecap import EdgecapError
from edgecap.data.synthetic_motion import generate_motion
from edgecap.data.windows import PoseWindows
from edgecap.models.lifting.model import KeypointNormalizer, LiftingConfig, TemporalLifter, fold_for_export


@pytest.fixture(scope="module")
def windows():
    seqs = generate_motion(4, 40, seed=5)
    return PoseWindows.from_sequences(list(seqs.keypoints_2d), list(seqs.joints_3d_mm), 9, "last").windows(np.arange(0, 160, 7))[0]


def _norm(x):
    return KeypointNormalizer([1.0] + [0.0] * 16)(torch.from_numpy(x))


def test_normalization_is_invariant_to_translation_and_scale(windows):
    moved = windows.copy()
    valid = moved[..., 2:3]
    moved[..., :2] = (moved[..., :2] * 2.5 + np.array([300.0, -120.0])) * valid
    torch.testing.assert_close(_norm(moved), _norm(windows), atol=1e-5, rtol=1e-4)


def test_invalid_joints_are_ignored(windows):
    x = windows.copy()
    x[:, :, 5, 2] = 0.0  # joint 5 invalid everywhere...
    y = x.copy()
    y[:, :, 5, :2] = 12345.0  # ...so its coordinates must not matter
    torch.testing.assert_close(_norm(y), _norm(x))
    feats = _norm(x).view(len(x), 9, 17, 3)
    assert torch.all(feats[:, :, 5] == 0)


def test_root_fallbacks_hand_computed():
    norm = KeypointNormalizer([1.0, 0.0, 0.0])
    # frame 0: root at (10, 10); frame 1: root invalid -> window root (10, 10) is used.
    x = torch.tensor([[[[10.0, 10.0, 1], [13.0, 14.0, 1], [0, 0, 0]],
                       [[0.0, 0.0, 0], [16.0, 18.0, 1], [10.0, 10.0, 1]]]])
    d = torch.tensor([[0.0, 0.0], [3, 4], [0, 0], [0, 0], [6, 8], [0, 0]])
    scale = np.sqrt((25 + 100) / 4)  # RMS over the 4 valid joints
    feats = norm(x).view(2, 3, 3)
    torch.testing.assert_close(feats[..., :2].reshape(6, 2), d / scale)
    # no valid root anywhere: centre on the centroid of valid joints
    x2 = torch.tensor([[[[0.0, 0.0, 0], [2.0, 0.0, 1], [4.0, 0.0, 1]]]])
    torch.testing.assert_close(norm(x2)[0, 3:5], torch.tensor([-1.0, 0.0]))


def test_all_invalid_window_gives_finite_output():
    model = TemporalLifter(LiftingConfig(hidden=32, blocks=1)).eval()
    assert torch.isfinite(model(torch.zeros(2, 9, 17, 3))).all()


def test_export_form_matches_training_form(windows):
    model = TemporalLifter(LiftingConfig(hidden=64, blocks=2))
    model.train()
    for _ in range(3):  # give BatchNorm non-trivial running statistics
        model(torch.from_numpy(windows))
    model.eval()
    folded = fold_for_export(model)
    assert not any(isinstance(m, torch.nn.BatchNorm1d) for m in folded.modules())
    x = torch.from_numpy(windows)
    torch.testing.assert_close(folded(x), model(x), atol=1e-4, rtol=1e-4)


def test_pose_statistics_and_root_output():
    model = TemporalLifter(LiftingConfig(hidden=32, blocks=1)).eval()
    poses = torch.randn(100, 17, 3) * 200
    poses[:, 0] = 0  # root-relative: root is always 0
    model.set_pose_statistics(poses)
    out = model(torch.rand(3, 9, 17, 3) * 500)
    assert out.shape == (3, 17, 3)
    assert out[:, 0].abs().max() < 0.05  # root std clamps to 1e-3 mm


@pytest.mark.parametrize("kwargs, message", [
    ({"skeleton": "smpl"}, "unknown skeleton"),
    ({"target": "first"}, "model.target"),
    ({"target": "centre", "window": 8}, "odd model.window"),
])
def test_bad_config(kwargs, message):
    with pytest.raises(EdgecapError, match=message):
        TemporalLifter(LiftingConfig(**kwargs))


def _mirror_h36m(x):
    """Hand-written left-right mirror of h36m (..., 17, 3) values: l_/r_ joints swapped, x negated."""
    from edgecap.data.skeletons import H36M

    names = H36M.joints
    twin = [names.index(n.replace("l_", "@").replace("r_", "l_").replace("@", "r_")) for n in names]
    out = x[..., twin, :].clone()
    out[..., 0] = -out[..., 0]
    return out


@pytest.mark.parametrize("skeleton", ["h36m", "coco"])
def test_mirror_swaps_each_left_joint_with_its_right_twin(skeleton):
    from edgecap.data.skeletons import get_skeleton
    from edgecap.models.lifting.model import Mirror

    joints = get_skeleton(skeleton).joints
    moved = Mirror(joints)(torch.arange(len(joints), dtype=torch.float32).view(1, -1, 1).repeat(1, 1, 3))
    for i, name in enumerate(joints):
        twin = name.replace("l_", "@").replace("r_", "l_").replace("@", "r_")
        assert moved[0, i].tolist() == [-joints.index(twin), joints.index(twin), joints.index(twin)]


def test_mirror_average_is_left_right_symmetric_and_averages_both_views(windows):
    model = TemporalLifter(LiftingConfig(hidden=64, blocks=1, mirror_average=True))
    model.set_pose_statistics(torch.randn(50, 17, 3) * 200)
    model.train()
    model(torch.from_numpy(windows))  # non-trivial BatchNorm statistics
    model.eval()
    x = torch.from_numpy(windows)
    mirrored_input = _mirror_h36m(x)  # pixel x negated: the normalizer is translation-invariant
    torch.testing.assert_close(model(mirrored_input), _mirror_h36m(model(x)), atol=1e-3, rtol=1e-4)
    # the prediction is the mean of the plain lift and the mirrored lift of the mirror image
    plain = TemporalLifter(LiftingConfig(hidden=64, blocks=1)).eval()  # the default: one lift
    plain.load_state_dict(model.state_dict())
    assert plain.mirror_pair is None and not torch.allclose(plain(x), model(x), atol=1e-3)
    expected = (plain(x) + _mirror_h36m(plain(mirrored_input))) / 2
    torch.testing.assert_close(model(x), expected, atol=1e-3, rtol=1e-4)
    torch.testing.assert_close(fold_for_export(model)(x), model(x), atol=1e-3, rtol=1e-4)


def test_training_mirrors_about_half_of_each_batch(windows):
    """In training, a mirrored sample's prediction is the mirror of the plain model's prediction
    for the mirrored window: compare sample by sample with dropout off and BatchNorm frozen."""
    model = TemporalLifter(LiftingConfig(hidden=64, blocks=1, dropout=0.0))
    model.set_pose_statistics(torch.randn(50, 17, 3) * 200)
    plain = TemporalLifter(LiftingConfig(hidden=64, blocks=1, dropout=0.0, mirror=False))
    plain.load_state_dict(model.state_dict())
    model.train()
    plain.eval()
    for m in model.modules():  # batch statistics would mix the samples
        if isinstance(m, torch.nn.BatchNorm1d):
            m.eval()
    x = torch.from_numpy(np.concatenate([windows] * 8))
    torch.manual_seed(0)
    out = model(x)
    as_plain = torch.isclose(out, plain(x), atol=1e-3).flatten(1).all(1)
    as_mirror = torch.isclose(out, _mirror_h36m(plain(_mirror_h36m(x))), atol=1e-3).flatten(1).all(1)
    assert bool((as_plain | as_mirror).all())
    assert 0.3 < as_mirror.float().mean() < 0.7


def test_mirror_average_exports_with_the_mirror_in_float(small_lifter, tmp_path):
    """The two-lift graph converts (LiteRT, the strictest converter here): fp32 equals eager, int8
    stays close, and both mirrors (features in, poses out) are gathers in the graph."""
    from ai_edge_litert.tools import flatbuffer_utils

    from edgecap.backends.tflite.export import export_tflite, tflite_op_stats
    from edgecap.backends.tflite.runner import TFLiteRunner
    from edgecap.models.lifting.app import INPUT, OUTPUT
    from tests.small_lifter import RUN, assert_int8_close, export_both

    model = TemporalLifter(dataclasses.replace(RUN.model, mirror_average=True))
    for part in ("normalize", "core", "denormalize"):  # the trained lifter's export form
        setattr(model, part, getattr(small_lifter.model, part))
    model.eval()
    windows = small_lifter.windows[:16]
    with torch.no_grad():
        eager = model(torch.from_numpy(windows)).numpy()
        plain = small_lifter.model(torch.from_numpy(windows)).numpy()
    assert np.abs(eager - plain).max() > 1e-3  # the mirror changes the output
    artifacts = export_both(export_tflite, model, windows, small_lifter.calibration, tmp_path, ".tflite")
    got = {p: np.concatenate([TFLiteRunner(path).run({INPUT: w[None]})[OUTPUT] for w in windows])
           for p, (path, _) in artifacts.items()}
    np.testing.assert_allclose(got["fp32"], eager, atol=1e-3 * np.abs(eager).max())
    assert_int8_close(got["int8"], eager)
    stats = tflite_op_stats(flatbuffer_utils.read_model(str(artifacts["int8"][0])))
    assert stats["int8_ops"]["FULLY_CONNECTED"] == 4
    assert stats["ops"]["GATHER_ND"] == 2


def test_export_form_never_mirrors_at_random(windows):
    """QAT exports the export form in train mode with a dynamic batch: the graph must hold no
    random flip, while the training form's does (and exports with a free batch size too)."""
    batch = ({0: torch.export.Dim("batch", min=1)},)
    x = torch.from_numpy(windows)
    model = TemporalLifter(LiftingConfig(hidden=32, blocks=1, dropout=0.0))
    training_graph = torch.export.export(model.train(), (x,), dynamic_shapes=batch).graph
    assert any("rand" in str(n.target) for n in training_graph.nodes)
    folded = fold_for_export(model.eval()).train()
    graph = torch.export.export(folded, (x,), dynamic_shapes=batch).graph
    assert not any("rand" in str(n.target) for n in graph.nodes)
    assert all(torch.equal(folded(x), folded(x)) for _ in range(3))  # no flip left in eager either
