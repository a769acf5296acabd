"""edgecap.metrics.multiview by hand: root-relative and absolute MPJPE with invalid joints, and the
reprojection error through a simple pinhole camera."""

import numpy as np

from edgecap.metrics.multiview import multiview_metrics, reprojection_px


def camera(focal=100.0, distance=3000.0):
    """P (3, 4): camera at (0, 0, -distance) looking along +z, principal point (50, 50)."""
    K = np.array([[focal, 0, 50.0], [0, focal, 50.0], [0, 0, 1]])
    return K @ np.hstack([np.eye(3), [[0.0], [0.0], [distance]]])


def setup(n=2, j=4, v=2):
    rng = np.random.default_rng(0)
    gt = rng.uniform(-300, 300, (n, j, 3))
    P = np.broadcast_to(camera(), (n, v, 3, 4)).copy()
    xh = np.concatenate([gt, np.ones((n, j, 1))], -1)
    x = np.einsum("nvab,njb->nvja", P, xh)
    return gt, P, x[..., :2] / x[..., 2:3], np.ones((n, v, j))


def test_translation_is_root_relative_zero_and_absolute_norm():
    gt, P, uv, vis = setup()
    m = multiview_metrics(gt + [10.0, 0.0, 0.0], np.ones(gt.shape[:2]), gt, P, uv, vis)
    assert abs(m["mpjpe_mm"]) < 1e-9 and abs(m["mpjpe_abs_mm"] - 10.0) < 1e-9
    assert m["invalid_share"] == 0.0 and m["joints"] == 8


def test_invalid_joints_are_left_out_and_counted():
    gt, P, uv, vis = setup()
    pred = gt.copy()
    pred[0, 2] += [0.0, 30.0, 40.0]  # 50 mm off
    pred[1, 1] = np.nan  # non-finite: not usable, even though valid says 1
    valid = np.ones(gt.shape[:2])
    valid[0, 3] = 0.0
    pred[0, 3] = 0.0  # what an invalid joint holds: ignored
    m = multiview_metrics(pred, valid, gt, P, uv, vis)
    assert abs(m["invalid_share"] - 2 / 8) < 1e-12
    assert abs(m["mpjpe_abs_mm"] - 50.0 / 6) < 1e-9  # six usable joints, one 50 mm off
    assert abs(m["mpjpe_mm"] - 50.0 / 6) < 1e-9  # roots (joint 0) are usable in both samples


def test_root_invalid_removes_the_sample_from_root_relative_only():
    gt, P, uv, vis = setup()
    valid = np.ones(gt.shape[:2])
    valid[1, 0] = 0.0
    pred = gt + 5.0
    m = multiview_metrics(pred, valid, gt, P, uv, vis)
    assert abs(m["mpjpe_mm"]) < 1e-9 and abs(m["mpjpe_abs_mm"] - 5.0 * np.sqrt(3)) < 1e-9


def test_reprojection_by_hand():
    gt, P, uv, vis = setup(n=1, j=1, v=1)
    assert reprojection_px(gt, np.ones((1, 1)), P, uv, vis) < 1e-9
    depth = gt[0, 0, 2] + 3000.0
    shifted = gt + [depth / 100.0 * 3.0, 0.0, 0.0]  # 3 px to the right at focal 100
    assert abs(reprojection_px(shifted, np.ones((1, 1)), P, uv, vis) - 3.0) < 1e-9
    assert np.isnan(reprojection_px(shifted, np.ones((1, 1)), P, uv, np.zeros((1, 1, 1))))  # seen nowhere
