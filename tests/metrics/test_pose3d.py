"""3D pose metrics on hand-computed cases."""

import numpy as np
import pytest

from edgecap.metrics.pose3d import (
    acceleration_error,
    mpjpe,
    n_mpjpe,
    p_mpjpe,
    per_sample_mpjpe,
    pose_metrics,
    procrustes_align,
)


def poses(n=6, j=17, seed=0):
    """Random non-planar, asymmetric poses (N, J, 3) in mm."""
    return np.random.default_rng(seed).normal(0, 300, (n, j, 3))


def rotation(axis, angle):
    """Rodrigues' formula, independent of the SVD inside procrustes_align."""
    k = np.asarray(axis, float) / np.linalg.norm(axis)
    kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + np.sin(angle) * kx + (1 - np.cos(angle)) * kx @ kx


def test_mpjpe_of_a_3_4_0_offset_is_5():
    gt = poses()
    assert mpjpe(gt + [3.0, 4.0, 0.0], gt) == pytest.approx(5.0)
    np.testing.assert_allclose(per_sample_mpjpe(gt + [3.0, 4.0, 0.0], gt), 5.0)


def test_mpjpe_averages_joint_errors():
    gt = np.zeros((2, 2, 3))
    pred = gt.copy()
    pred[0, 0] = [0, 0, 8]  # joint errors: 8, 0 | 0, 0
    pred[1, 1] = [6, 0, 0]  # joint errors: 0, 0 | 0, 6  -> per sample 4 and 3
    np.testing.assert_allclose(per_sample_mpjpe(pred, gt), [4.0, 3.0])
    assert mpjpe(pred, gt) == pytest.approx(3.5)


def test_p_mpjpe_removes_rotation_scale_and_translation():
    gt = poses()
    pred = 1.7 * gt @ rotation([1, 2, 3], 0.9).T + [100.0, -50.0, 2000.0]
    assert mpjpe(pred, gt) > 100
    assert p_mpjpe(pred, gt) == pytest.approx(0.0, abs=1e-6)
    np.testing.assert_allclose(procrustes_align(pred, gt), gt, atol=1e-6)


def test_p_mpjpe_does_not_undo_a_reflection():
    gt = poses()
    mirrored = gt * [-1.0, 1.0, 1.0]
    # If reflections were allowed this would be ~0; a proper rotation cannot mirror a 3D pose.
    assert p_mpjpe(mirrored, gt) > 0.2 * np.linalg.norm(gt - gt.mean(1, keepdims=True), axis=-1).mean()


def test_p_mpjpe_of_a_mirrored_pose_by_hand():
    # Centred axis points with second moments diag(2, 8, 18); the prediction mirrors x.
    gt = np.array([[1, 0, 0], [-1, 0, 0], [0, 2, 0], [0, -2, 0], [0, 0, 3], [0, 0, -3]], float)
    pred = gt * [-1, 1, 1]
    # Best proper rotation keeps the smallest direction (x) mirrored: R = I, and the scale is
    # trace/|pred|^2 = (-2 + 8 + 18) / 28 = 6/7. Errors: 13/7 (x joints), 2/7 (y), 3/7 (z).
    expected = (2 * 13 + 2 * 2 + 2 * 3) / 7 / 6
    # The answer must not depend on where the pair sits: apply one rigid motion to both.
    r0, t0 = rotation([1, -1, 2], 1.1), np.array([300.0, 20.0, -40.0])
    assert p_mpjpe((pred @ r0.T + t0)[None], (gt @ r0.T + t0)[None]) == pytest.approx(expected)


def test_p_mpjpe_is_per_sample():
    gt = poses(n=2)
    pred = gt.copy()
    pred[0] = gt[0] @ rotation([0, 0, 1], 0.5).T
    pred[1] = 3.0 * gt[1] + 7.0
    assert p_mpjpe(pred, gt) == pytest.approx(0.0, abs=1e-6)


def test_n_mpjpe_removes_scale_only():
    gt = poses()
    half = 0.5 * gt
    assert n_mpjpe(half, gt) == pytest.approx(0.0, abs=1e-9)
    assert mpjpe(half, gt) == pytest.approx(0.5 * np.linalg.norm(gt, axis=-1).mean())
    shifted = gt + [0.0, 0.0, 10.0]  # a translation is not a scale: N-MPJPE stays > 0
    assert n_mpjpe(shifted, gt) > 1
    per_sample = gt * np.array([0.5, 2.0, 3.0, 1.0, 0.1, 7.0])[:, None, None]  # one scale per sample
    assert n_mpjpe(per_sample, gt) == pytest.approx(0.0, abs=1e-9)


def test_n_mpjpe_by_hand():
    gt = np.array([[[1.0, 0, 0], [0, 1, 0]]])
    pred = np.array([[[2.0, 0, 0], [0, 0, 1]]])
    # scale = <pred, gt> / <pred, pred> = 2 / 5 -> (0.8, 0, 0), (0, 0, 0.4)
    assert n_mpjpe(pred, gt) == pytest.approx((0.2 + np.sqrt(1 + 0.4**2)) / 2)


def test_acceleration_error_constant_velocity_is_zero():
    t = np.arange(10, dtype=float)[:, None, None]
    gt = poses(n=1) + t * [5.0, 0.0, -2.0]  # (10, 17, 3) moving at constant velocity
    pred = poses(n=1, seed=1) + t * [-1.0, 3.0, 0.0] + 40.0  # other pose, other velocity
    assert mpjpe(pred, gt) > 100
    assert acceleration_error(pred, gt) == pytest.approx(0.0, abs=1e-9)


def test_acceleration_error_one_jolt():
    gt = np.zeros((5, 1, 3))
    pred = gt.copy()
    pred[2, 0] = [0, 0, 6]
    # Second differences at frames 1, 2, 3: 6, -12, 6 -> mean |.| = 8.
    assert acceleration_error(pred, gt) == pytest.approx(8.0)
    with pytest.raises(ValueError, match=">= 3 frames"):
        acceleration_error(pred[:2], gt[:2])


def test_pose_metrics_on_two_sequences():
    base = poses(n=1, j=4)[0]
    gt = np.broadcast_to(base, (9, 4, 3)).copy()  # sequence A: 5 frames, B: 4 frames
    pred = gt.copy()
    pred[2, 0] += [0, 0, 6]  # A: one joint jolts in frame 2
    pred[5:] += [3, 4, 0]  # B: constant offset of 5 mm
    ids = np.array([0] * 5 + [1] * 4)
    out = pose_metrics(pred, gt, ids)
    assert out["mpjpe_mm"] == pytest.approx((6 + 4 * 4 * 5) / 36)
    # A: accelerations 6, 12, 6 on one of 4 joints over 3 frames -> 2; B: 0; weighted by 3 and 2.
    assert out["accel_error_mm"] == pytest.approx((2 * 3 + 0 * 2) / 5)
    # Procrustes removes B's offset; only A's frame 2 is left.
    assert out["p_mpjpe_mm"] == pytest.approx(p_mpjpe(pred[2:3], gt[2:3]) / 9)
    assert 0 < out["p_mpjpe_mm"] < out["mpjpe_mm"]
    assert out["n_mpjpe_mm"] == pytest.approx(n_mpjpe(pred, gt))
    assert "accel_error_mm" not in pose_metrics(pred, gt)
