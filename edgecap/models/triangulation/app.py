"""The triangulation family's task side: multi-view samples in, 3D joints out; metrics of any
predictor (eager, simulated int8, any artifact's runner) with the triangulation baselines computed
from the same 2D outputs; the two-part layout's composition; prediction on a user's .npz.

Data: `RigSplit` over the built-in synthetic rigs (edgecap.data.multiview.synthetic_rigs). A
training batch is rendered on the fly; the evaluation set is rendered once and kept (a 96 px,
4-view, 320-sample split is 35 MB of uint8 images).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from edgecap import EdgecapError
from edgecap.core.arrays import Arrays
from edgecap.core.io import atomic_path
from edgecap.core.runner import Runner
from edgecap.data.multiview.synthetic_rigs import RigDataConfig, RigSamples
from edgecap.metrics.multiview import multiview_metrics
from edgecap.models.triangulation.dlt import WeightedDLT, triangulate_ransac, triangulate_svd_reference, view_validity
from edgecap.models.triangulation.model import NUM_JOINTS, TriangulationConfig, TriangulationNet

INPUTS = TriangulationNet.input_names  # views, projections, camera_matrices, distortions
OUTPUTS = TriangulationNet.output_names  # joints_3d, valid, points_2d, confidences
PER_VIEW, TRIANGULATE = "per_view", "triangulate"  # the parts of the "parts" layout
PART_IO = {PER_VIEW: (["image", "camera_matrix", "distortion"], ["points_2d", "confidences"]),
           TRIANGULATE: (["points_2d", "confidences", "projections"], ["joints_3d", "valid"])}
EVAL_BATCH = 32  # samples per predictor call in `evaluate` (whatever batch the caller asks for)
MIN_VIEWS_3D = 2  # a joint is a 3D training target when visible in at least this many views


class RigSplit:
    """One split of the synthetic rigs; `stacked()` renders every sample once and keeps them."""

    def __init__(self, cfg: RigDataConfig, split: str):
        self.samples = RigSamples(cfg, split)
        self.cfg = cfg
        self._stacked: dict | None = None

    def __len__(self) -> int:
        return len(self.samples)

    def batch(self, indices) -> dict:
        """Samples stacked: images [n, V, 3, S, S] uint8, projections [n, V, 3, 4], K [n, V, 3, 3],
        dist [n, V, 5], points_2d and points_2d_undistorted [n, V, J, 2], visibility [n, V, J],
        joints_3d [n, J, 3], view_mask [n, V]."""
        keys = ("images", "projections", "K", "dist", "points_2d", "points_2d_undistorted", "visibility", "joints_3d",
                "view_mask")
        if self._stacked is not None:
            return {k: self._stacked[k][np.asarray(indices)] for k in keys}
        rows = [self.samples.sample(int(i)) for i in indices]
        return {k: np.stack([r[k] for r in rows]) for k in keys}

    def stacked(self) -> dict:
        if self._stacked is None:
            self._stacked = self.batch(np.arange(len(self)))
        return self._stacked


def load_split(cfg: TriangulationConfig, data: RigDataConfig, split: str) -> RigSplit:
    if data.image_size != cfg.image_size or data.views != cfg.views:
        raise EdgecapError(f"data.image_size={data.image_size}, data.views={data.views} must equal model.image_size="
                           f"{cfg.image_size}, model.views={cfg.views} (the graph's static input shape)")
    return RigSplit(data, split)


def model_inputs(batch: dict) -> Arrays:
    return {"views": batch["images"].astype(np.float32), "projections": batch["projections"].astype(np.float32),
            "camera_matrices": batch["K"].astype(np.float32), "distortions": batch["dist"].astype(np.float32)}


def targets_3d_weight(batch: dict) -> np.ndarray:
    """[n, J] 1.0 where the joint is visible in at least MIN_VIEWS_3D real views."""
    seen = (batch["visibility"] * batch["view_mask"][..., None]).sum(1)
    return (seen >= MIN_VIEWS_3D).astype(np.float32)


def in_frame(points: np.ndarray, size: int) -> np.ndarray:
    """(..., J) 1.0 where pixels (..., J, 2) lie inside a size x size image (pixel centres at integers)."""
    return ((points >= -0.5) & (points < size - 0.5)).all(-1).astype(np.float32)


PER_VIEW_TARGETS = 6  # u, v as seen; u, v undistorted; visible; in frame


def pack_targets(batch: dict) -> np.ndarray:
    """[n, J, 4 + 6V] float32: joints mm (3), 3D weight (1), then per view: u, v px as seen
    (distorted), u, v px undistorted, visible, in frame (visible or not; 0 for padded views)."""
    n, v, j = batch["visibility"].shape
    real = batch["view_mask"][..., None]
    per_view = np.concatenate([batch["points_2d"], batch["points_2d_undistorted"],
                               (batch["visibility"] * real)[..., None],
                               (in_frame(batch["points_2d"], batch["images"].shape[-1]) * real)[..., None]], -1)
    per_view = per_view.transpose(0, 2, 1, 3).reshape(n, j, PER_VIEW_TARGETS * v)
    return np.concatenate([batch["joints_3d"], targets_3d_weight(batch)[..., None], per_view], -1).astype(np.float32)


def unpack_targets(targets: torch.Tensor, views: int) -> dict[str, torch.Tensor]:
    """pack_targets' layout as {joints [n, J, 3], weight_3d [n, J], points [n, V, J, 2] as seen,
    points_undistorted [n, V, J, 2], visible [n, V, J], in_frame [n, V, J]}."""
    n, j = targets.shape[:2]
    per_view = targets[..., 4:].reshape(n, j, views, PER_VIEW_TARGETS).transpose(1, 2)
    return {"joints": targets[..., :3], "weight_3d": targets[..., 3], "points": per_view[..., :2],
            "points_undistorted": per_view[..., 2:4], "visible": per_view[..., 4], "in_frame": per_view[..., 5]}


def sample_batch(data: RigSplit, rng: np.random.Generator, batch_size: int) -> tuple[Arrays, np.ndarray]:
    batch = data.batch(rng.integers(0, len(data), batch_size))
    return model_inputs(batch), pack_targets(batch)


def calibration_inputs(data: RigSplit, count: int, seed: int = 0) -> list[Arrays]:
    rng = np.random.default_rng(seed)
    idx = rng.choice(len(data), size=min(count, len(data)), replace=False)
    batch = data.batch(idx)
    inputs = model_inputs(batch)
    return [{k: a[i : i + 1] for k, a in inputs.items()} for i in range(len(idx))]


# -- evaluation ------------------------------------------------------------------------------------

def _dlt(points: np.ndarray, confidences: np.ndarray, projections: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    with torch.no_grad():
        joints, valid = WeightedDLT()(*(torch.from_numpy(np.ascontiguousarray(a, np.float32))
                                        for a in (points, confidences, projections)))
    return joints.numpy(), valid.numpy()


def _ransac(points: np.ndarray, view_mask: np.ndarray, projections: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """triangulate_ransac over each sample's real views (padding is at the end of a sample's views)."""
    n, _, j, _ = points.shape
    joints, valid = np.zeros((n, j, 3)), np.zeros((n, j))
    counts = view_mask.sum(1).astype(int)
    for k in np.unique(counts):
        rows = np.nonzero(counts == k)[0]
        if k < 2:
            continue
        joints[rows] = triangulate_ransac(points[rows, :k], projections[rows, :k])[0]
        valid[rows] = 1.0
    return joints, valid


def same_2d_baselines(points: np.ndarray, confidences: np.ndarray, data: dict) -> dict[str, dict]:
    """Other triangulations of the same per-view outputs: `unweighted` (WeightedDLT, every real
    view weight 1), `ransac` (triangulate_ransac on the real views, no confidences), `svd64`
    (the float64 SVD of exactly the weighted problem the model's op solves)."""
    mask = data["view_mask"].astype(np.float64)
    P = data["projections"]
    conf = confidences * mask[..., None]
    solved = {
        "unweighted": _dlt(points, np.broadcast_to(mask[..., None], conf.shape), P),
        "ransac": _ransac(points.astype(np.float64), mask, P.astype(np.float64)),
        "svd64": (triangulate_svd_reference(points, conf, P), view_validity(conf)),
    }
    return {name: _metrics(joints, valid, data) for name, (joints, valid) in solved.items()}


def _metrics(joints: np.ndarray, valid: np.ndarray, data: dict) -> dict:
    return multiview_metrics(joints, valid, data["joints_3d"], data["projections"], data["points_2d_undistorted"],
                             data["visibility"] * data["view_mask"][..., None])


def evaluate(predict, data: RigSplit, batch_size: int = EVAL_BATCH, progress: str | None = None) -> dict:
    """{mpjpe_mm, mpjpe_abs_mm, reprojection_px, invalid_share (multiview_metrics), samples,
    same_2d: {unweighted, ransac, svd64: the same metrics}}."""
    from edgecap.core.console import progress as progress_bar

    arrays = data.stacked()
    n = len(data)
    batch_size = max(1, min(batch_size, EVAL_BATCH))
    starts = range(0, n, batch_size)
    if progress:
        starts = progress_bar(starts, total=-(-n // batch_size), desc=progress, leave=False)
    outs = []
    for s in starts:
        outs.append(predict(model_inputs({k: arrays[k][s : s + batch_size] for k in ("images", "projections", "K",
                                                                                          "dist")})))
    pred = {k: np.concatenate([o[k] for o in outs]) for k in OUTPUTS}
    out = _metrics(pred["joints_3d"], pred["valid"], arrays)
    out["samples"] = n
    out["same_2d"] = same_2d_baselines(pred["points_2d"], pred["confidences"], arrays)
    return out


def gt_2d_baseline(data: RigSplit) -> dict:
    """WeightedDLT on the true 2D points, each visible view weight 1: what perfect 2D gives."""
    arrays = data.stacked()
    conf = arrays["visibility"] * arrays["view_mask"][..., None]
    joints, valid = _dlt(arrays["points_2d_undistorted"], conf, arrays["projections"])
    return _metrics(joints, valid, arrays)


def mean_pose_baseline(train: RigSplit, val: RigSplit) -> dict:
    """The training set's mean pelvis-relative pose, placed with its pelvis at the world origin."""
    rows = train.samples
    idx = np.linspace(0, len(rows) - 1, min(len(rows), 512)).astype(int)
    poses = np.stack([rows.sequences[i // rows.cfg.frames].joints_3d[i % rows.cfg.frames] for i in idx])
    mean = (poses - poses[:, :1]).mean(0)
    arrays = val.stacked()
    n = len(val)
    return _metrics(np.broadcast_to(mean, (n, NUM_JOINTS, 3)), np.ones((n, NUM_JOINTS)), arrays)


# -- the "parts" layout -----------------------------------------------------------------------------

def part_inputs(parts: list, inputs: list[Arrays]) -> dict[str, list[Arrays]]:
    """Each part's inputs from whole-model inputs: every view of every input for `per_view`
    (real views only, so calibration sees no black padding), and the float per-view outputs
    with the projections for `triangulate`."""
    by_name = {p.name: p for p in parts}
    per_view = by_name[PER_VIEW].module
    out: dict[str, list[Arrays]] = {PER_VIEW: [], TRIANGULATE: []}
    for x in inputs:
        views, P, K, dist = x["views"][0], x["projections"][0], x["camera_matrices"][0], x["distortions"][0]
        real = [v for v in range(len(views)) if np.abs(P[v]).sum() > 0] or [0]
        out[PER_VIEW] += [{"image": views[v : v + 1], "camera_matrix": K[v : v + 1], "distortion": dist[v : v + 1]}
                          for v in real]
        with torch.no_grad():
            points, conf = per_view(*(torch.from_numpy(np.ascontiguousarray(a)) for a in (views, K, dist)))
        out[TRIANGULATE].append({"points_2d": points.numpy()[None], "confidences": conf.numpy()[None],
                                 "projections": x["projections"]})
    return out


class PartsRunner(Runner):
    """The two-part layout as one runner with the whole model's inputs and outputs: `per_view`
    once per view (padded views too, so the outputs match the whole graph's), then `triangulate`.
    Any batch size (one row at a time); works over part runners of any format."""

    def __init__(self, per_view: Runner, triangulate: Runner, spec: dict):
        self.per_view, self.triangulate = per_view, triangulate
        self.format = spec["format"]
        self.input_names, self.output_names = list(INPUTS), list(spec["outputs"])

    def run(self, inputs: Arrays) -> Arrays:
        rows = []
        for b in range(len(inputs["views"])):
            views, K, dist = inputs["views"][b], inputs["camera_matrices"][b], inputs["distortions"][b]
            per = [self.per_view.run({"image": views[v : v + 1], "camera_matrix": K[v : v + 1],
                                      "distortion": dist[v : v + 1]}) for v in range(len(views))]
            points = np.stack([p["points_2d"][0] for p in per])[None].astype(np.float32)
            conf = np.stack([p["confidences"][0] for p in per])[None].astype(np.float32)
            tri = self.triangulate.run({"points_2d": points, "confidences": conf,
                                        "projections": inputs["projections"][b : b + 1]})
            rows.append({"joints_3d": tri["joints_3d"], "valid": tri["valid"], "points_2d": points,
                         "confidences": conf})
        return {n: np.concatenate([r[n] for r in rows]) for n in self.output_names}

    def metadata(self) -> dict:
        return self.per_view.metadata()


# -- prediction on files --------------------------------------------------------------------------

def predict_file(runner: Runner, cfg: TriangulationConfig, input_path: Path, output_path: Path) -> str:
    """A .npz with `views` [V, 3, S, S] or [N, V, 3, S, S] (RGB 0..255, as the cameras see them),
    `projections` [V, 3, 4] or [N, V, 3, 4] (P = K [R | t], world mm; zeros for a missing view) and,
    for lenses with distortion, `camera_matrices` [(N,) V, 3, 3] and `distortions` [(N,) V, 5]
    (OpenCV k1, k2, p1, p2, k3; without them: no distortion)
    -> a .npz with joints_3d [N, J, 3] mm, valid [N, J], points_2d [N, V, J, 2], confidences [N, V, J]."""
    try:
        with np.load(input_path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
    except (OSError, ValueError) as e:
        raise EdgecapError(f"{input_path}: not a readable .npz ({e})") from None
    missing = [k for k in ("views", "projections") if k not in arrays]
    if missing:
        raise EdgecapError(f"{input_path}: missing array(s) {missing}; has {sorted(arrays)}")
    if ("camera_matrices" in arrays) != ("distortions" in arrays):
        raise EdgecapError(f"{input_path}: give both 'camera_matrices' and 'distortions', or neither")
    v, s = cfg.views, cfg.image_size
    single = arrays["views"].ndim == 4
    shapes = {"views": (v, 3, s, s), "projections": (v, 3, 4), "camera_matrices": (v, 3, 3), "distortions": (v, 5)}
    if "distortions" not in arrays:
        arrays["camera_matrices"] = np.eye(3, dtype=np.float32)[None].repeat(v, 0)
        arrays["distortions"] = np.zeros((v, 5), np.float32)
    n = 1 if single else len(arrays["views"])
    inputs = {}
    for name, shape in shapes.items():
        a = arrays[name]
        if a.shape == shape:
            a = np.broadcast_to(a, (n,) + shape)
        if a.shape != (n,) + shape:
            raise EdgecapError(f"{input_path}: {name} has shape {a.shape}, expected [N, {', '.join(map(str, shape))}] "
                               f"(or without N){'' if single else f', N = {n}'}")
        if not np.issubdtype(a.dtype, np.number) or not np.isfinite(a.astype(np.float64)).all():
            raise EdgecapError(f"{input_path}: {name} must be finite numbers, got dtype {a.dtype}")
        inputs[name] = a.astype(np.float32)
    outs = [runner.run({k: np.ascontiguousarray(a[i : i + 1]) for k, a in inputs.items()}) for i in range(n)]
    result = {k: np.concatenate([o[k] for o in outs]) for k in OUTPUTS}
    with atomic_path(output_path) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, **result)
    return (f"wrote {output_path}: {n} sample(s), {int(result['valid'].sum())}/{result['valid'].size} joints "
            f"triangulated ({runner.format})")
