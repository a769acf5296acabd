"""3D pose errors in millimetres. Inputs are numpy arrays (N, J, 3) unless noted.

- MPJPE: mean Euclidean joint error.
- N-MPJPE: after the least-squares scale that best fits the prediction to the truth.
- P-MPJPE: after Procrustes alignment (similarity: rotation, scale, translation).
- Acceleration error: mean over frames and joints of |a_pred - a_gt| with a the second
  finite difference along time (input (F, J, 3) for one sequence, in mm/frame^2).
"""

from __future__ import annotations

import numpy as np


def mpjpe(pred: np.ndarray, gt: np.ndarray) -> float:
    return float(np.linalg.norm(pred - gt, axis=-1).mean())


def per_sample_mpjpe(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    return np.linalg.norm(pred - gt, axis=-1).mean(-1)


def n_mpjpe(pred: np.ndarray, gt: np.ndarray) -> float:
    num = (pred * gt).sum(axis=(-1, -2), keepdims=True)
    den = (pred * pred).sum(axis=(-1, -2), keepdims=True)
    scale = num / np.maximum(den, 1e-12)
    return mpjpe(scale * pred, gt)


def procrustes_align(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Similarity-align each pred (N, J, 3) to gt; returns the aligned predictions."""
    mu_p = pred.mean(axis=1, keepdims=True)
    mu_g = gt.mean(axis=1, keepdims=True)
    p0, g0 = pred - mu_p, gt - mu_g
    norm_p = np.sqrt((p0**2).sum(axis=(1, 2), keepdims=True))
    norm_g = np.sqrt((g0**2).sum(axis=(1, 2), keepdims=True))
    p0 = p0 / np.maximum(norm_p, 1e-12)
    g0 = g0 / np.maximum(norm_g, 1e-12)
    h = np.matmul(p0.transpose(0, 2, 1), g0)  # (N,3,3)
    u, s, vt = np.linalg.svd(h)
    v = vt.transpose(0, 2, 1)
    r = np.matmul(v, u.transpose(0, 2, 1))
    # Avoid reflections: flip the last singular direction where det(R) < 0.
    sign = np.sign(np.linalg.det(r))
    v[:, :, -1] *= sign[:, None]
    s[:, -1] *= sign
    r = np.matmul(v, u.transpose(0, 2, 1))
    scale = (s.sum(axis=1) * norm_g[:, 0, 0] / np.maximum(norm_p[:, 0, 0], 1e-12))[:, None, None]
    return scale * np.matmul(pred - mu_p, r.transpose(0, 2, 1)) + mu_g


def p_mpjpe(pred: np.ndarray, gt: np.ndarray) -> float:
    return mpjpe(procrustes_align(pred, gt), gt)


def acceleration_error(pred: np.ndarray, gt: np.ndarray) -> float:
    """One sequence (F, J, 3) with F >= 3."""
    if len(pred) < 3:
        raise ValueError(f"acceleration error needs >= 3 frames, got {len(pred)}")
    acc_p = pred[2:] - 2 * pred[1:-1] + pred[:-2]
    acc_g = gt[2:] - 2 * gt[1:-1] + gt[:-2]
    return float(np.linalg.norm(acc_p - acc_g, axis=-1).mean())


def pose_metrics(pred: np.ndarray, gt: np.ndarray, sequence_ids: np.ndarray | None = None) -> dict:
    """All four metrics; frames of one sequence must be contiguous and in order."""
    out = {"mpjpe_mm": mpjpe(pred, gt), "p_mpjpe_mm": p_mpjpe(pred, gt), "n_mpjpe_mm": n_mpjpe(pred, gt)}
    if sequence_ids is not None:
        errs, weights = [], []
        for sid in np.unique(sequence_ids):
            sel = np.flatnonzero(sequence_ids == sid)
            if len(sel) >= 3:
                errs.append(acceleration_error(pred[sel], gt[sel]))
                weights.append(len(sel) - 2)
        if errs:
            out["accel_error_mm"] = float(np.average(errs, weights=weights))
    return out
