"""Confidence-weighted DLT triangulation (the algebraic triangulation of Iskakov et al., ICCV 2019)
without SVD, so that it exports to ONNX, LiteRT, ExecuTorch and Core ML; with its float64 SVD
reference and the paper's RANSAC baseline in numpy.

The problem, per joint j: views c = 1..C with pixels (u_c, v_c), confidences conf_c >= 0 and
projections P_c (3, 4). Weights w_c = conf_c / sum_c conf_c; each view gives two rows
    w_c (u_c P_c[2] - P_c[0]),   w_c (v_c P_c[2] - P_c[1])
of A (2C, 4), and the point is the homogeneous x minimising |A x| / |x|: the eigenvector of the
smallest eigenvalue of M = A^T A (4, 4), i.e. the last right singular vector of A.

Conditioning (Hartley), and what it does here:
- 3D: a fixed similarity X' = (X - centre_mm) / scale_mm (default: world origin, 1 m), so that a
  joint of a person in the capture volume has |X'| ~ 1 and the four columns of A have comparable
  size. `P @ frame` applies it to the projections. A fixed frame, not one from the data: the
  homogeneous DLT's answer depends on the frame (its |x| = 1 constraint mixes the columns), and a
  fixed frame keeps that answer a plain function of the inputs that the reference can reproduce.
  Capture rigs are calibrated with the volume around the world origin (Human3.6M, Panoptic, ...);
  set centre_mm/scale_mm for others.
- 2D: one similarity per joint shared by all its views (centroid of the joint's pixels to 0,
  mean distance sqrt(2)), with P_c' = T P_c. Its translation cancels exactly inside each row,
  u' P'[2] - P'[0] = s (u P[2] - P[0]), and its scale multiplies all of the joint's rows by one
  number, which changes neither the weighting nor the solution: per joint it only sets the size
  of the numbers. The op therefore forms the rows directly and scales each joint's system to unit
  trace (what the sqrt(2) scaling is for: O(1) entries; it also keeps fp32 far from overflow for
  any focal length or pixel scale). A per-view 2D normalisation (a different s per view) would
  silently reweight the views by s_c, against the confidences, so it is not used.

Solver (hand-written: no backend has SVD or eigh, and none has a loop, so this is a fixed number
of closed-form steps using matmul, add, mul, div, sum and compare only). Write M = [[B, b], [b^T, c]]
with B (3, 3) and x = [y, 1] (a joint is at a finite distance, so x_4 != 0). The eigenvector
equation M x = lam x is then (B - lam I) y = -b with lam = x^T M x / x^T x, the Rayleigh quotient.
1. lam = 0: y_0 = -B^-1 b, the inhomogeneous least-squares point (frame independent). The 3x3
   inverse is the adjugate over the determinant (Cramer's rule), the adjugate computed as one
   matmul of B's outer product with a constant (81, 9) map.
2. `iterations` times: lam = |A x|^2 / |x|^2 from the residuals e = A x, then the correction
   y -= (B - lam I)^-1 (A_xyz^T e - lam y), i.e. y = y(lam) = -(B - lam I)^-1 b, with
   adj(B - lam I) = adj B - lam (trace(B) I - B) + lam^2 I and det(B - lam I) in closed form.
   Correcting from the residuals is also a step of iterative refinement, which removes most of
   the error of the Cramer solve.
Why it converges to the SVD answer: the smallest eigenvalue is the root below lambda_min(B) of the
secular equation f(lam) = c - lam - b^T (B - lam I)^-1 b (Schur complement), and the Rayleigh
quotient of [y(lam), 1] is exactly lam + f(lam) / (1 + |y|^2) = a Newton step on f (f' = -1 - |y|^2):
quadratic convergence from lam = 0. f is concave, so the first step may overshoot towards the
pole lambda_min(B); lam is capped at det(B) / (2 trace(adj B)) <= lambda_min(B) / 2 so B - lam I stays
positive definite. On well-posed rigs lam / lambda_min(B) (squared residual over squared
triangulation angle) is ~1e-4 and one step is exact in fp32; the cap binds only where the
smallest eigenvalue nearly meets lambda_min(B), where the SVD answer is itself ill-determined (two
views a few degrees apart with pixel noise, ~1% of joints at 1 degree, where it often lies metres
away); the op then returns a point between the least-squares point and the SVD's. fp32 itself
bounds the error by about cond(B) * 6e-8 * |X| (the inputs' own rounding, amplified as for any
solver). Measured against the float64 SVD: `benchmarks/triangulation_op.py`.

Validity: a joint needs two views with w_c > min_view_fraction (1e-3 of its total confidence)
and a solvable system: det of the unit-trace B above min_det (1e-8: fp32 rounding leaves ~1e-9 in
the det of an exactly singular B; two views 0.05 degree apart have ~2e-8), so it catches repeated
views and exactly singular systems; a merely ill-posed joint stays valid, with the accuracy the
benchmark reports). An invalid joint gets valid = 0 and joints = 0 (the world origin), and every
number on the way stays finite.
"""

from __future__ import annotations

import itertools

import numpy as np
import torch
from torch import nn

from edgecap import EdgecapError
from edgecap.models.triangulation.geometry import project

__all__ = ["WeightedDLT", "huber_refine", "triangulate_ransac", "triangulate_svd_reference", "view_validity"]


def _adjugate_map() -> torch.Tensor:
    """(81, 9) T with adj(A).flatten() = (A.flatten() outer A.flatten()).flatten() @ T for 3x3 A:
    adj(A)_ij = 1/2 sum eps_jmn eps_ipq A_mp A_nq (Levi-Civita)."""
    eps = np.zeros((3, 3, 3))
    for i, j, k in itertools.permutations(range(3)):
        eps[i, j, k] = np.linalg.det(np.eye(3)[[i, j, k]])
    t = 0.5 * np.einsum("jmn,ipq->mpnqij", eps, eps)  # (m,p),(n,q) -> (i,j)
    return torch.tensor(t.reshape(81, 9), dtype=torch.float32)


class WeightedDLT(nn.Module):
    """points (B, C, J, 2) px, confidences (B, C, J) >= 0, projections (B, C, 3, 4)
    -> joints (B, J, 3) world units, valid (B, J) in {0., 1.}. Static C and J; any B."""

    def __init__(self, centre_mm=(0.0, 0.0, 0.0), scale_mm: float = 1000.0, iterations: int = 4,
                 min_view_fraction: float = 1e-3, min_det: float = 1e-8):
        super().__init__()
        if scale_mm <= 0 or iterations < 0 or not 0 <= min_view_fraction < 0.5:
            raise EdgecapError(f"WeightedDLT needs scale_mm > 0, iterations >= 0 and min_view_fraction in [0, 0.5), "
                               f"got {scale_mm}, {iterations}, {min_view_fraction}")
        self.iterations, self.min_view_fraction, self.min_det = iterations, min_view_fraction, min_det
        frame = torch.eye(4)
        frame[:3, :3] *= scale_mm
        frame[:3, 3] = torch.tensor(centre_mm, dtype=torch.float32)
        self.register_buffer("frame", frame, persistent=False)  # P' = P @ frame: X = scale X' + centre
        self.register_buffer("centre", torch.tensor(centre_mm, dtype=torch.float32), persistent=False)
        self.scale = float(scale_mm)
        self.register_buffer("adjugate", _adjugate_map(), persistent=False)
        self.register_buffer("eye", torch.eye(3), persistent=False)
        self.register_buffer("pair", torch.ones(2, 1), persistent=False)

    def forward(self, points: torch.Tensor, confidences: torch.Tensor,
                projections: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b, c, j, _ = points.shape
        w = confidences / confidences.sum(1, keepdim=True).clamp(min=1e-12)  # (B, C, J)
        views = (w > self.min_view_fraction).to(w.dtype).sum(1)  # (B, J)

        # Rows (B, J, 2C, 4), ordered (view 0: u, v; view 1: u, v; ...), in the conditioned frame.
        p = projections @ self.frame  # (B, C, 3, 4)
        p01 = p[:, :, 0:2, :].reshape(b, 1, 2 * c, 4)
        p2 = (p[:, :, 2:3, :] * self.pair).reshape(b, 1, 2 * c, 4)  # P[2] once per row (mul, not expand)
        uv = points.transpose(1, 2).reshape(b, j, 2 * c, 1)
        wr = (w.transpose(1, 2).unsqueeze(-1) * self.pair.reshape(2)).reshape(b, j, 2 * c, 1)
        a = (uv * p2 - p01) * wr

        # Normal equations B y = -b of x = [y, 1], scaled to trace(B) = 1 (the per-joint 2D
        # normalisation). Vectors are (..., 3, 1) columns throughout: no squeeze/unsqueeze ops.
        m = a.transpose(-1, -2) @ a  # M = A^T A, (B, J, 4, 4)
        trace = (m[..., :3, :3] * self.eye).sum((-2, -1), keepdim=True)  # (B, J, 1, 1)
        inv_trace = 1.0 / trace.clamp(min=1e-30)
        bm = m[..., :3, :3] * inv_trace
        rhs = m[..., :3, 3:4] * inv_trace  # (B, J, 3, 1)
        bf = bm.reshape(b, j, 9)
        adj = ((bf.unsqueeze(-1) * bf.unsqueeze(-2)).reshape(b, j, 81) @ self.adjugate).reshape(b, j, 3, 3)
        det = (bm * adj).sum((-2, -1), keepdim=True) / 3.0  # (B, J, 1, 1)
        valid = (views > 1.5).to(w.dtype) * (det[..., 0, 0] > self.min_det).to(w.dtype)  # (B, J)
        det = det.clamp(min=self.min_det)
        keep = valid[..., None, None]
        y = -(adj @ rhs) / det * keep  # step 1, lam = 0: the least-squares point, (B, J, 3, 1)

        tr = trace * inv_trace  # 1, or 0 for a joint without views
        adj_trace = (adj * self.eye).sum((-2, -1), keepdim=True)
        cap = 0.5 * det / adj_trace.clamp(min=1e-30)  # <= lambda_min(B) / 2
        shift = tr * self.eye - bm  # adj(B - lam I) = adj B - lam (trace(B) I - B) + lam^2 I
        a3, a4 = a[..., :3], a[..., 3:4]
        a3t = a3.transpose(-1, -2) * inv_trace
        for _ in range(self.iterations):
            e = a3 @ y + a4  # residuals A x, (B, J, 2C, 1)
            lam = (e * e).sum((-2, -1), keepdim=True) * inv_trace / (1.0 + (y * y).sum((-2, -1), keepdim=True))
            lam = torch.minimum(lam, cap)
            adj_l = (lam * self.eye - shift) * lam + adj
            det_l = (((tr - lam) * lam - adj_trace) * lam + det).clamp(min=self.min_det)
            y = (y - adj_l @ (a3t @ e - lam * y) / det_l) * keep  # a3t @ e = B y + b
        joints = (y.squeeze(-1) * self.scale + self.centre) * keep[..., 0]
        return joints, valid


def view_validity(confidences: np.ndarray, min_view_fraction: float = 1e-3) -> np.ndarray:
    """(..., J) 1.0 where at least two views have weight > min_view_fraction: confidences (..., C, J)."""
    conf = np.asarray(confidences, np.float64)
    w = conf / np.maximum(conf.sum(-2, keepdims=True), 1e-12)
    return ((w > min_view_fraction).sum(-2) >= 2).astype(np.float64)


def _dlt_rows(points: np.ndarray, weights: np.ndarray, projections: np.ndarray) -> np.ndarray:
    """Rows (..., J, 2C, 4) of the weighted DLT: points (..., C, J, 2), weights (..., C, J), P (..., C, 3, 4)."""
    p = projections[..., None, :, :, :]  # (..., 1, C, 3, 4)
    uv = np.swapaxes(points, -3, -2)[..., None]  # (..., J, C, 2, 1)
    rows = (uv * p[..., 2:3, :] - p[..., 0:2, :]) * np.swapaxes(weights, -2, -1)[..., None, None]
    return rows.reshape(rows.shape[:-3] + (-1, 4))


def _solve_svd(rows: np.ndarray, centre: np.ndarray, scale: float) -> np.ndarray:
    """(..., 3) world points of the last right singular vectors of rows (..., R, 4) in the frame
    X = scale X' + centre; a vector at infinity gives nan."""
    v = np.linalg.svd(rows)[2][..., -1, :]
    with np.errstate(divide="ignore", invalid="ignore"):
        return v[..., :3] / v[..., 3:4] * scale + centre


def _frame(centre_mm, scale_mm: float) -> np.ndarray:
    frame = np.eye(4)
    frame[:3, :3] *= scale_mm
    frame[:3, 3] = centre_mm
    return frame


def triangulate_svd_reference(points, confidences, projections, centre_mm=(0.0, 0.0, 0.0), scale_mm: float = 1000.0,
                              min_view_fraction: float = 1e-3) -> np.ndarray:
    """The float64 SVD solution of exactly the problem WeightedDLT solves (same weights, same 3D
    frame; the per-joint 2D normalisation only scales each joint's rows): points (B, C, J, 2),
    confidences (B, C, J), projections (B, C, 3, 4) -> joints (B, J, 3); joints with fewer than
    two views above min_view_fraction are 0, like the op's."""
    points, conf, proj = (np.asarray(v, np.float64) for v in (points, confidences, projections))
    w = conf / np.maximum(conf.sum(1, keepdims=True), 1e-12)
    rows = _dlt_rows(points, w, proj @ _frame(centre_mm, scale_mm))
    valid = view_validity(conf, min_view_fraction)
    joints = _solve_svd(rows, np.asarray(centre_mm, np.float64), scale_mm)
    return np.where(valid[..., None] > 0, np.nan_to_num(joints), 0.0)


def _weighted_dlt64(points, weights, projections) -> np.ndarray:
    """Float64 SVD DLT in the default frame with given per-view weights (no normalisation)."""
    rows = _dlt_rows(points, weights, projections @ _frame((0.0, 0.0, 0.0), 1000.0))
    return _solve_svd(rows, np.zeros(3), 1000.0)


def _reprojection_px(projections, joints) -> tuple[np.ndarray, np.ndarray]:
    """(reprojection of joints (..., J, 3) in every view (..., C, J, 2), depth (..., C, J))."""
    P = projections[..., :, None, :, :]  # (..., C, 1, 3, 4)
    X = joints[..., None, :, :]  # (..., 1, J, 3)
    depth = (P[..., 2, :3] * X).sum(-1) + P[..., 2, 3]
    return project(P, X), depth


def triangulate_ransac(points, projections, threshold_px: float = 15.0, iterations: int = 10, huber_px: float = 1.0,
                       seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The paper's RANSAC baseline (Iskakov et al.'s RANSACTriangulationNet), per joint:
    `iterations` times, a pair of views drawn at random, its two-view DLT point, and its inliers:
    the pair plus every view that reprojects the point within threshold_px; the largest inlier
    set wins (ties: the smaller sum of inlier errors, so the result does not depend on draw
    order). With no more pairs than iterations, every pair is tried instead (same winner, no
    draws). The inliers' DLT point is then refined by minimising sum_c huber(|reprojection error_c|)
    with scale huber_px (`huber_refine`): the reference's scipy least_squares(loss="huber"),
    whose default f_scale is 1 px. Deterministic for a given seed.
    points (B, C, J, 2), projections (B, C, 3, 4) -> joints (B, J, 3), inliers (B, C, J) bool."""
    points, proj = np.asarray(points, np.float64), np.asarray(projections, np.float64)
    bsz, c, j, _ = points.shape
    if c < 2:
        raise EdgecapError(f"triangulate_ransac needs at least two views, got {c}")
    pairs = np.array(list(itertools.combinations(range(c), 2)))
    hyp = []
    for p, q in pairs:
        w = np.zeros((bsz, c, j))
        w[:, [p, q]] = 1.0
        hyp.append(_weighted_dlt64(points, w, proj))
    hyp = np.nan_to_num(np.stack(hyp, 1), nan=0.0, posinf=0.0, neginf=0.0)  # (B, pairs, J, 3)
    reproj, depth = _reprojection_px(proj[:, None], hyp)  # (B, pairs, C, J, 2)
    err = np.linalg.norm(reproj - points[:, None], axis=-1)
    err = np.where((depth > 0) & np.isfinite(err), err, np.inf)
    inlier = err < threshold_px
    inlier |= (np.arange(c)[None, None, :, None] == pairs[None, :, 0, None, None])
    inlier |= (np.arange(c)[None, None, :, None] == pairs[None, :, 1, None, None])  # the pair itself
    tie = np.where(inlier, np.minimum(err, threshold_px), 0.0).sum(2) / (threshold_px * (c + 1))  # < 1
    score = inlier.sum(2) - tie
    if len(pairs) > iterations:  # draw `iterations` pairs per joint; pairs never drawn cannot win
        drawn = np.random.default_rng(seed).integers(0, len(pairs), (bsz, iterations, j))
        tried = np.zeros((bsz, len(pairs), j), bool)
        np.put_along_axis(tried, drawn, True, axis=1)
        score = np.where(tried, score, -np.inf)
    best = score.argmax(1)  # (B, J)
    inliers = np.take_along_axis(inlier, best[:, None, None, :], 1)[:, 0]  # (B, C, J)
    joints = np.nan_to_num(_weighted_dlt64(points, inliers.astype(np.float64), proj))
    return huber_refine(joints, points, proj, inliers, huber_px), inliers


def huber_refine(joints, points, projections, use, huber_px: float = 1.0, steps: int = 200) -> np.ndarray:
    """Gauss-Newton with iteratively reweighted residuals for min over X of sum_c huber(|pi_c(X) - p_c|)
    over the views where `use`: the objective of scipy.optimize.least_squares(residuals = per-view
    reprojection distances, loss="huber", f_scale=huber_px), started from `joints`, vectorised
    over every joint (one scipy call per joint would take seconds per evaluation; the tests check
    that both reach the same point). joints (B, J, 3), points (B, C, J, 2), projections
    (B, C, 3, 4), use (B, C, J) bool -> refined joints (B, J, 3). A view with the point behind it
    is left out of that step."""
    x = np.array(joints, np.float64)
    P = projections[:, :, None]  # (B, C, 1, 3, 4)
    for _ in range(steps):
        h = (P[..., :3] @ x[:, None, :, :, None])[..., 0] + P[..., 3]  # (B, C, J, 3) homogeneous
        z = h[..., 2:3]
        ok = use & (z[..., 0] > 1e-6)
        zs = np.where(ok[..., None], z, 1.0)
        e = h[..., :2] / zs - points  # (B, C, J, 2)
        r = np.linalg.norm(e, axis=-1)
        w = ok * np.where(r <= huber_px, 1.0, huber_px / np.maximum(r, 1e-12))  # IRLS weight of huber
        jac = (P[..., :2, :3] - (h[..., :2, None] / zs[..., None]) * P[..., 2:3, :3]) / zs[..., None]  # (B,C,J,2,3)
        jt = np.swapaxes(jac, -1, -2) * w[..., None, None]
        normal = (jt @ jac).sum(1)  # (B, J, 3, 3)
        grad = (jt @ e[..., None]).sum(1)[..., 0]  # (B, J, 3)
        normal += np.eye(3) * (1e-9 * np.trace(normal, axis1=-2, axis2=-1)[..., None, None] + 1e-12)
        step = np.linalg.solve(normal, -grad[..., None])[..., 0]
        x = x + np.where(ok.sum(1)[..., None] >= 2, step, 0.0)
        if np.abs(step).max(initial=0.0) < 1e-7:
            break
    return x
