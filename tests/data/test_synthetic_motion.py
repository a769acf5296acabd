"""Properties of the built-in synthetic motion generator."""

import numpy as np
import pytest

from edgecap.data.skeletons import get_skeleton
from edgecap.data.synthetic_motion import generate_motion
from edgecap.models.lifting.real_motion import limb_poses

# COCO draws hip-shoulder lines through the flexible spine: not rigid in the kinematic model.
NON_RIGID = {("l_hip", "l_shoulder"), ("r_hip", "r_shoulder")}


@pytest.fixture(scope="module", params=["h36m", "coco"])
def motion(request):
    # The default training size (400 x 100 frames) for h36m, so a slow generator shows up here.
    count, frames = (400, 100) if request.param == "h36m" else (60, 80)
    return request.param, generate_motion(count, frames, skeleton=request.param, seed=3)


def test_shapes_and_dtypes(motion):
    name, m = motion
    s, f, j = len(m.image_size), m.keypoints_2d.shape[1], get_skeleton(name).num_joints
    assert m.keypoints_2d.shape == m.joints_3d_mm.shape == (s, f, j, 3)
    assert m.image_size.shape == (s, 2)
    assert m.keypoints_2d.dtype == m.joints_3d_mm.dtype == np.float32
    assert np.isfinite(m.keypoints_2d).all() and np.isfinite(m.joints_3d_mm).all()


def test_validity_and_zeroed_invalid_joints(motion):
    _, m = motion
    valid = m.keypoints_2d[..., 2]
    assert set(np.unique(valid)) == {0.0, 1.0}
    assert 0.8 < valid.mean() < 1.0  # drops/occlusions happen but most joints are seen
    assert np.all(m.keypoints_2d[valid == 0][:, :2] == 0)


def test_valid_joints_are_inside_the_image(motion):
    _, m = motion
    xy, valid = m.keypoints_2d[..., :2], m.keypoints_2d[..., 2] == 1
    size = np.broadcast_to(m.image_size[:, None, None, :], xy.shape)
    assert np.all((xy[valid] >= 0) & (xy[valid] < size[valid]))


def test_root_is_origin(motion):
    name, m = motion
    sk = get_skeleton(name)
    root = np.einsum("sfjc,j->sfc", m.joints_3d_mm, np.array(sk.root_weight_vector()))
    np.testing.assert_allclose(root, 0, atol=1e-3)
    if name == "h36m":
        assert np.all(m.joints_3d_mm[:, :, sk.index("pelvis")] == 0)


def test_bone_lengths_are_constant_over_time(motion):
    name, m = motion
    sk = get_skeleton(name)
    bones = [(sk.index(a), sk.index(b)) for a, b in sk.bones if (a, b) not in NON_RIGID]
    child, parent = np.array(bones).T
    length = np.linalg.norm(m.joints_3d_mm[:, :, child] - m.joints_3d_mm[:, :, parent], axis=-1)  # (S, F, B)
    assert np.abs(length - length[:, :1]).max() < 0.01  # mm; float32 rounding only
    assert 30 < length.min() and length.max() < 600  # plausible human bones in mm
    # ...but bodies differ between sequences, and the motion is not static.
    assert length[:, 0].std(axis=0).min() > 1
    assert np.abs(np.diff(m.joints_3d_mm, axis=1)).max() > 10


def test_non_rigid_pairs_do_move():
    """Guards the NON_RIGID exclusion above: those distances really do change."""
    m = generate_motion(20, 60, skeleton="coco", seed=2)
    sk = get_skeleton("coco")
    d = np.linalg.norm(m.joints_3d_mm[:, :, sk.index("l_hip")] - m.joints_3d_mm[:, :, sk.index("l_shoulder")], axis=-1)
    assert np.ptp(d, axis=1).max() > 5


def test_deterministic_from_seed():
    a = generate_motion(5, 30, seed=7)
    b = generate_motion(5, 30, seed=7)
    c = generate_motion(5, 30, seed=8)
    for field in ("keypoints_2d", "joints_3d_mm", "image_size"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    assert not np.allclose(a.joints_3d_mm, c.joints_3d_mm)
    assert not np.allclose(a.keypoints_2d, c.keypoints_2d)


def test_detection_settings_only_affect_2d():
    clean = generate_motion(10, 40, seed=1, noise_px=0.0, drop_prob=0.0, occlusion_rate=0.0)
    noisy = generate_motion(10, 40, seed=1, noise_px=5.0, drop_prob=0.2, occlusion_rate=2.0)
    np.testing.assert_array_equal(clean.joints_3d_mm, noisy.joints_3d_mm)
    assert noisy.keypoints_2d[..., 2].mean() < clean.keypoints_2d[..., 2].mean() - 0.1
    both = (clean.keypoints_2d[..., 2] == 1) & (noisy.keypoints_2d[..., 2] == 1)
    err = np.linalg.norm(clean.keypoints_2d[..., :2] - noisy.keypoints_2d[..., :2], axis=-1)[both]
    assert 0.5 < np.median(err) < 50  # pixel noise, not a different pose
    dropped = generate_motion(3, 20, seed=1, drop_prob=1.0)
    assert np.all(dropped.keypoints_2d == 0)


def test_extended_mix_reaches_a_dancers_hold():
    """The ballroom hold of the held-out isaaclab dance, as (outward, up, forward) bone directions
    in the torso's frame (limb_poses): one upper arm forward and out at shoulder height with the
    forearm across the chest (the shoulder twisted inwards by about 90 degrees), the other arm
    out to the side with the forearm raised (twisted outwards). The synthetic arms' first twist
    range (-60..80 degrees) never came within 0.3 of the first."""
    m = generate_motion(400, 100, seed=3, proportions="anthropometric", motions="extended", noise_px=0.0,
                        drop_prob=0.0, occlusion_rate=0.0)
    arms = limb_poses(m.joints_3d_mm[:, ::2].reshape(-1, 17, 3).astype(np.float64), "arm")
    holds = {"forearm across the chest": [0.52, -0.14, 0.83, -0.39, 0.19, 0.90],
             "forearm raised": [0.96, 0.23, 0.10, 0.34, 0.73, 0.59]}
    for name, hold in holds.items():
        hold = np.array(hold) / np.repeat(np.linalg.norm(np.reshape(hold, (2, 3)), axis=1), 3)
        assert np.linalg.norm(arms - hold, axis=1).min() < 0.3, name
