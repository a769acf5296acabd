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
