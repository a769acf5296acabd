"""Multi-view 3D pose errors: MPJPE (root-relative and absolute) of triangulated joints that may be
invalid, and the reprojection error of 3D joints into the views that see them. numpy, float64.

Shapes: N samples, V views, J joints. pred, gt [N, J, 3] world mm; valid [N, J] (1: the
predictor produced the joint; 0 or a non-finite prediction: it did not); projections [N, V, 3, 4]
P = K [R | t] (pixels of undistorted images); points_2d [N, V, J, 2] the true pixels;
visibility [N, V, J] (1: the joint is seen in that view).
"""

from __future__ import annotations

import numpy as np


def usable(pred: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """[N, J] bool: the joint is valid and its prediction finite."""
    return (np.asarray(valid) > 0.5) & np.isfinite(np.asarray(pred, np.float64)).all(-1)


def reprojection_px(pred: np.ndarray, valid: np.ndarray, projections: np.ndarray, points_2d: np.ndarray,
                    visibility: np.ndarray) -> float:
    """Mean pixel distance between P X_pred and the true 2D point, over (sample, view, joint)
    where the joint is usable and visible in the view and the prediction lies in front of the
    camera (depth > 0; one behind it counts as usable but is not measurable: excluded). nan if none."""
    pred = np.nan_to_num(np.asarray(pred, np.float64))
    P = np.asarray(projections, np.float64)[:, :, None]  # (N, V, 1, 3, 4)
    xh = np.concatenate([pred, np.ones(pred.shape[:-1] + (1,))], -1)[:, None, :, :, None]  # (N, 1, J, 4, 1)
    x = (P @ xh)[..., 0]  # (N, V, J, 3)
    depth = x[..., 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        uv = x[..., :2] / depth[..., None]
    err = np.linalg.norm(uv - np.asarray(points_2d, np.float64), axis=-1)
    mask = usable(pred, valid)[:, None] & (np.asarray(visibility) > 0.5) & (depth > 0) & np.isfinite(err)
    return float(err[mask].mean()) if mask.any() else float("nan")


def multiview_metrics(pred: np.ndarray, valid: np.ndarray, gt: np.ndarray, projections: np.ndarray,
                      points_2d: np.ndarray, visibility: np.ndarray, root: int = 0) -> dict:
    """{mpjpe_mm, mpjpe_abs_mm, reprojection_px, invalid_share, joints}:
    - mpjpe_mm: mean |(X_j - X_root) - (G_j - G_root)| over joints usable together with their
      sample's root joint (pelvis = 0 in h36m order); the root itself counts, with error 0;
    - mpjpe_abs_mm: mean |X_j - G_j| over usable joints;
    - reprojection_px: see `reprojection_px`;
    - invalid_share: share of all N * J joints that are not usable.
    Metrics over an empty set are nan."""
    pred, gt = np.asarray(pred, np.float64), np.asarray(gt, np.float64)
    ok = usable(pred, valid)
    safe = np.where(ok[..., None], pred, 0.0)
    abs_err = np.linalg.norm(safe - gt, axis=-1)
    rel_ok = ok & ok[:, root : root + 1]
    rel_err = np.linalg.norm((safe - safe[:, root : root + 1]) - (gt - gt[:, root : root + 1]), axis=-1)
    return {
        "mpjpe_mm": float(rel_err[rel_ok].mean()) if rel_ok.any() else float("nan"),
        "mpjpe_abs_mm": float(abs_err[ok].mean()) if ok.any() else float("nan"),
        "reprojection_px": reprojection_px(pred, valid, projections, points_2d, visibility),
        "invalid_share": float(1.0 - ok.mean()) if ok.size else float("nan"),
        "joints": int(ok.size),
    }
