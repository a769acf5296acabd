"""Triangulate an existing multi-camera recording: a calibration (anipose / Pose2Sim TOML or CMU
Panoptic JSON) plus one OpenPose JSON folder per camera -> 3D h36m joints (`<out>.npz`, `<out>.trc`)
and a reprojection report. What `edgecap triangulate` runs.

Steps, each a small pure function below:
1. `match_cameras`: which calibration camera each keypoint folder is. Names are compared as token
   sequences (lower-case letter runs and numbers without leading zeros, so `cam_01`, `cam1` and
   `Cam-1` are all `cam 1`): a camera matches a folder when one of its names (its `name`, and for a
   TOML its section, e.g. `[cam_0]`) occurs in the folder's name, the longest such name winning
   (`cam 1` does not occur in `cam 10`). If no folder names a camera, folders are taken in the
   calibration's order (then the counts must be equal). A folder no camera matches while others
   do, or a camera two folders match, is an error.
2. The 2D keypoints (`load_openpose_views`, h36m order) are undistorted with each camera, so that
   the DLT's P = K [R | t] (the ideal camera) applies.
3. `associate`: which detected person is the subject in each view, per frame. A candidate is one
   person or nobody per view (at least two views with somebody); each is triangulated (float64
   SVD DLT, confidences below `min_confidence` dropped) and scored by its mean reprojection error
   over its confident joints (px of the ideal camera; a joint behind a camera makes it inf). The
   choice, as in Pose2Sim's person association: among candidates within `max_error_px`, those
   whose 3D lies within `track_radius_mm` (mean joint distance, times the frames since) of the
   previous chosen 3D come first (continuity; none in the first frame); then the most views; then
   the lowest error; then the first in enumeration order. Without any candidate within
   `max_error_px` the lowest error is taken, reported in `frames_over_max_error`, and the track is
   not updated. Candidates are enumerated exhaustively when there are at most `max_combinations`
   (prod over views of people + 1; 4 views with 2 people: 81); beyond that greedily: the best pair
   of (view, person)s by the same order, then each other view in turn given its best option
   (a person or nobody). Deterministic either way.
4. The chosen 2D points, their confidences (0 below `min_confidence` and for views without the
   subject) and P are triangulated by `WeightedDLT` in PyTorch, batched over frames, or with
   `runner` one frame at a time through any exported triangulation artifact: its three inputs are
   `runner.input_names` taken in the order points, confidences, projections (whatever they are
   called), shaped (1, V, 17, 2), (1, V, 17), (1, V, 3, 4) float32 (without the leading 1 when the
   runner's `input_shapes` says rank 3 for points); its outputs are `joints_3d` and `valid` when so
   named, else `runner.output_names` in that order, each reshaped to (17, 3) and (17,).
5. Reprojection error per joint and view: distance in the original (distorted) image between the
   detection and `Camera.project` of the 3D joint, for the views and joints used (confident, valid).

Outputs (both written atomically; `<out>` keeps its name, `.npz`/`.trc` appended or replacing either
suffix): `<out>.npz` with joints_3d (frames, 17, 3) mm, NaN where not valid; valid (frames, 17)
bool; reprojection_px (frames, 17, views), NaN where not measured; person (frames, views) int, the
index into that view's OpenPose `people` list, -1 for none; camera_names, keypoint_folders,
joint_names; fps. `<out>.trc` via `write_trc` (metres, h36m joint names, missing joints empty,
world axes as calibrated).
"""

from __future__ import annotations

import itertools
import math
import re
import tomllib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from edgecap import EdgecapError
from edgecap.core.io import atomic_path
from edgecap.core.runner import Runner
from edgecap.data.multiview.cameras import Camera, load_panoptic_cameras, load_toml_cameras
from edgecap.data.multiview.openpose import load_openpose_views
from edgecap.data.multiview.trc import write_trc
from edgecap.data.skeletons import H36M
from edgecap.models.triangulation.dlt import WeightedDLT, triangulate_svd_reference, view_validity
from edgecap.models.triangulation.geometry import project

__all__ = ["associate", "format_summary", "load_calibration", "match_cameras", "triangulate_recording"]

JOINTS = H36M.joints


# --- calibration and camera matching ---------------------------------------------------------

def load_calibration(path, unit: str = "mm") -> tuple[list[Camera], list[tuple[str, ...]]]:
    """(cameras in file order, each camera's names for matching). `.toml`: anipose / Pose2Sim in
    `unit` (names: `name` and the section); `.json`: CMU Panoptic (centimetres by format; names:
    `name`)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".toml":
        cameras = load_toml_cameras(path, unit=unit)
        data = tomllib.loads(path.read_text())  # the reader has parsed it already: it is valid
        sections = [k for k, v in data.items() if isinstance(v, dict) and "name" in v]
        if [str(data[s]["name"]) for s in sections] != [c.name for c in cameras]:
            sections = [c.name for c in cameras]  # the reader skipped something: names only
        return cameras, [(c.name, s) for c, s in zip(cameras, sections)]
    if suffix == ".json":
        cameras = load_panoptic_cameras(path)
        return cameras, [(c.name,) for c in cameras]
    raise EdgecapError(f"calibration file {path}: unknown kind {path.suffix!r}; expected an anipose / Pose2Sim "
                       f".toml or a CMU Panoptic .json")


def _tokens(name: str) -> tuple[str, ...]:
    """`Cam_01-left` -> ('cam', '1', 'left'): lower-case letter runs and numbers without leading zeros."""
    return tuple(t if t.isalpha() else str(int(t)) for t in re.findall(r"[a-z]+|\d+", name.lower()))


def _occurs(needle: tuple[str, ...], hay: tuple[str, ...]) -> bool:
    n = len(needle)
    return n > 0 and any(hay[i: i + n] == needle for i in range(len(hay) - n + 1))


def match_cameras(folders: Sequence[Path], names: Sequence[Sequence[str]], where: str) -> tuple[list[int], str]:
    """(camera index per folder, "name" or "order"); `names` are each camera's names, `where`
    (the calibration file) goes into the errors. See the module docstring for the rule."""
    folders = [Path(f) for f in folders]
    hits = []
    for folder in folders:
        hay = _tokens(folder.name)
        best = {}
        for c, cam_names in enumerate(names):
            length = max((len(_tokens(n)) for n in cam_names if _occurs(_tokens(n), hay)), default=0)
            if length:
                best[c] = length
        longest = max(best.values(), default=0)
        hits.append([c for c, n in best.items() if n == longest])
    shown = ", ".join(str(n[0]) for n in names)
    if not any(hits):
        if len(names) < len(folders):
            raise EdgecapError(f"calibration file {where} has {len(names)} cameras ({shown}) for {len(folders)} "
                               f"keypoint folders: no camera for folder {folders[len(names)]}")
        if len(names) > len(folders):
            raise EdgecapError(f"calibration file {where} has {len(names)} cameras ({shown}) and no keypoint folder "
                               f"names one of them: name the {len(folders)} folders after their cameras")
        return list(range(len(folders))), "order"
    out = []
    for folder, hit in zip(folders, hits):
        if not hit:
            raise EdgecapError(f"calibration file {where} has no camera for keypoint folder {folder} "
                               f"(camera {folder.name!r} missing; cameras: {shown})")
        if len(hit) > 1:
            raise EdgecapError(f"keypoint folder {folder} matches several cameras of {where}: "
                               f"{[names[c][0] for c in hit]}")
        out.append(hit[0])
    for c in sorted(set(out)):
        same = [str(f) for f, i in zip(folders, out) if i == c]
        if len(same) > 1:
            raise EdgecapError(f"keypoint folders {same} all match camera {names[c][0]!r} of {where}")
    return out, "name"


# --- person association ----------------------------------------------------------------------

def _evaluate(assign: np.ndarray, points: np.ndarray, conf: np.ndarray, P: np.ndarray):
    """Candidates assign (K, V) (-1: nobody) over points (V, N, J, 2), conf (V, N, J) (0 below the
    threshold), P (V, 3, 4) -> (mean reprojection px (K,), joints (K, J, 3), valid (K, J))."""
    k, v = assign.shape
    views = np.arange(v)[None]
    pts = points[views, np.maximum(assign, 0)]  # (K, V, J, 2)
    c = conf[views, np.maximum(assign, 0)] * (assign >= 0)[..., None]
    proj = np.broadcast_to(P, (k, *P.shape))
    X = triangulate_svd_reference(pts, c, proj)
    valid = view_validity(c) > 0
    Xh = X[:, None, :, :]  # (K, 1, J, 3)
    depth = (proj[:, :, None, 2, :3] * Xh).sum(-1) + proj[:, :, None, 2, 3]  # (K, V, J)
    with np.errstate(divide="ignore", invalid="ignore"):
        err = np.linalg.norm(project(proj[:, :, None], Xh) - pts, axis=-1)
    used = (c > 0) & valid[:, None, :]
    bad = (used & ((depth <= 0) | ~np.isfinite(err))).any((1, 2)) | ~used.any((1, 2))
    mean = np.where(used, np.nan_to_num(err), 0.0).sum((1, 2)) / np.maximum(used.sum((1, 2)), 1)
    return np.where(bad, np.inf, mean), X, valid


def _best(assign, err, X, valid, prev, max_error_px: float, radius_mm: float) -> int:
    """Index of the preferred candidate (see the module docstring)."""
    consistent = err <= max_error_px
    if prev is None:
        near = np.ones(len(err), bool)
    else:
        prev_x, prev_valid = prev
        common = valid & prev_valid[None]
        dist = np.where(common, np.linalg.norm(X - prev_x[None], axis=-1), 0.0).sum(1) / np.maximum(common.sum(1), 1)
        near = common.any(1) & (dist <= radius_mm)
    tier = np.where(consistent & near, 0, np.where(consistent, 1, 2))
    nviews = np.where(tier < 2, -(assign >= 0).sum(1), 0)
    return int(np.lexsort((np.arange(len(err)), err, nviews, tier))[0])


def _pick(candidates: np.ndarray, points, conf, P, prev, max_error_px: float, radius_mm: float):
    """(assignment (V,), error, joints (J, 3), valid (J,)) of the preferred candidate of one frame."""
    err, X, valid = _evaluate(candidates, points, conf, P)
    i = _best(candidates, err, X, valid, prev, max_error_px, radius_mm)
    return candidates[i], err[i], X[i], valid[i]


def associate(points: np.ndarray, conf: np.ndarray, P: np.ndarray, *, max_error_px: float = 20.0,
              track_radius_mm: float = 500.0, max_combinations: int = 2048) -> tuple[np.ndarray, dict]:
    """The subject's person index per frame and view: points (F, V, N, J, 2) undistorted pixels,
    conf (F, V, N, J) (0: not used), P (V, 3, 4) -> (person (F, V) int, -1: none; stats).
    A frame where fewer than two views see anybody gets -1 everywhere."""
    f_count, v_count, n_count = conf.shape[:3]
    person = np.full((f_count, v_count), -1, np.int64)
    prev, since, over, greedy = None, 1, 0, 0
    for f in range(f_count):
        present = [[n for n in range(n_count) if (conf[f, v, n] > 0).any()] for v in range(v_count)]
        if sum(bool(p) for p in present) < 2:
            since += 1
            continue
        scope = (points[f], conf[f], P, prev, max_error_px, track_radius_mm * since)
        if math.prod(len(p) + 1 for p in present) <= max_combinations:
            combos = [c for c in itertools.product(*([-1, *p] for p in present)) if sum(i >= 0 for i in c) >= 2]
            best = _pick(np.array(combos, np.int64), *scope)
        else:
            greedy += 1
            pairs = [tuple(n if w == a else m if w == b else -1 for w in range(v_count))
                     for a, b in itertools.combinations(range(v_count), 2) for n in present[a] for m in present[b]]
            best = _pick(np.array(pairs, np.int64), *scope)
            for v in range(v_count):
                if best[0][v] >= 0 or not present[v]:
                    continue
                options = np.repeat(best[0][None], len(present[v]) + 1, 0)
                options[1:, v] = present[v]
                best = _pick(options, *scope)
        choice, err, X, valid = best
        if err <= max_error_px:
            person[f], prev, since = choice, (X, valid), 1
        else:
            person[f], since, over = choice, since + 1, over + 1
    return person, {"frames_over_max_error": over, "frames_greedy": greedy}


# --- triangulation ---------------------------------------------------------------------------

def _runner_io(runner: Runner, views: int, joints: int) -> tuple[list[str], list[str], bool]:
    """(input names in the order points, confidences, projections; output names joints, valid;
    whether inputs carry a leading batch axis of 1)."""
    inputs = list(runner.input_names)
    if len(inputs) != 3:
        raise EdgecapError(f"triangulation runner ({runner.format or type(runner).__name__}) must take 3 inputs "
                           f"(points, confidences, projections), it takes {inputs}")
    outputs = list(runner.output_names)
    if {"joints_3d", "valid"} <= set(outputs):
        outputs = ["joints_3d", "valid"]
    elif len(outputs) < 2:
        raise EdgecapError(f"triangulation runner ({runner.format}) must give joints_3d and valid, it gives {outputs}")
    shapes = getattr(runner, "input_shapes", {}) or {}
    shape = shapes.get(inputs[0])
    batch = shape is None or len(shape) != 3
    want = ((1,) if batch else ()) + (views, joints, 2)
    if shape is not None and (len(shape) != len(want) or any(s not in (None, w) for s, w in zip(shape, want))):
        raise EdgecapError(f"triangulation runner ({runner.format}) input {inputs[0]!r} has shape {tuple(shape)}; "
                           f"this recording needs {want} ({views} cameras, {joints} joints)")
    return inputs, outputs[:2], batch


def triangulate_frames(points: np.ndarray, conf: np.ndarray, P: np.ndarray,
                       runner: Runner | None = None) -> tuple[np.ndarray, np.ndarray]:
    """points (F, V, J, 2), conf (F, V, J), P (V, 3, 4) -> (joints (F, J, 3) mm, valid (F, J) bool),
    through WeightedDLT (PyTorch) or through `runner` one frame at a time."""
    f_count, v_count, j_count = conf.shape
    pts32, conf32 = points.astype(np.float32), conf.astype(np.float32)
    proj32 = np.broadcast_to(P.astype(np.float32), (f_count, *P.shape))
    if runner is None:
        with torch.no_grad():
            joints, valid = WeightedDLT()(torch.from_numpy(pts32), torch.from_numpy(conf32),
                                          torch.from_numpy(np.ascontiguousarray(proj32)))
        return joints.double().numpy(), valid.numpy() > 0.5
    inputs, outputs, batch = _runner_io(runner, v_count, j_count)
    lead = (lambda a: a[None]) if batch else (lambda a: a)
    samples = [{name: np.ascontiguousarray(lead(a[f])) for name, a in zip(inputs, (pts32, conf32, proj32))}
               for f in range(f_count)]
    joints, valid = np.zeros((f_count, j_count, 3)), np.zeros((f_count, j_count), bool)
    for f, out in enumerate(runner.run_many(samples)):
        try:
            joints[f] = np.asarray(out[outputs[0]], np.float64).reshape(j_count, 3)
            valid[f] = np.asarray(out[outputs[1]]).reshape(j_count) > 0.5
        except (KeyError, ValueError) as e:
            raise EdgecapError(f"triangulation runner ({runner.format}): outputs {outputs} must be ({j_count}, 3) "
                               f"and ({j_count},) per frame, got {({k: np.shape(v) for k, v in out.items()})} "
                               f"({type(e).__name__})") from None
    return joints, valid & np.isfinite(joints).all(-1)


# --- the recording ---------------------------------------------------------------------------

def _out_paths(out: Path) -> tuple[Path, Path]:
    out = Path(out)
    stem = out.with_suffix("") if out.suffix.lower() in (".npz", ".trc") else out
    return Path(f"{stem}.npz"), Path(f"{stem}.trc")


def _mean(values: np.ndarray) -> float | None:
    values = values[np.isfinite(values)]
    return float(values.mean()) if values.size else None


def triangulate_recording(calib: Path, keypoint_dirs: Sequence[Path], out: Path, *, unit: str = "mm",
                          layout: str | None = None, runner: Runner | None = None, fps: float = 30.0,
                          min_confidence: float = 0.2, max_error_px: float = 20.0,
                          track_radius_mm: float = 500.0, max_combinations: int = 2048) -> dict:
    """Triangulate one person from OpenPose folders (one per camera) with the calibration `calib`
    (TOML in `unit`, or Panoptic JSON); write `<out>.npz` and `<out>.trc`; return the summary
    (`format_summary` prints it). `layout` is the OpenPose layout (needed for 25 keypoints)."""
    calib, folders = Path(calib), [Path(d) for d in keypoint_dirs]
    if len(folders) < 2:
        raise EdgecapError(f"triangulation needs keypoint folders from at least 2 cameras, got {len(folders)}: "
                           f"{[str(f) for f in folders]}")
    if not 0 <= min_confidence < 1 or not fps > 0 or not max_error_px > 0:
        raise EdgecapError(f"triangulate: min_confidence must be in [0, 1), fps and max_error_px > 0; got "
                           f"{min_confidence}, {fps}, {max_error_px}")
    cameras, names = load_calibration(calib, unit)
    index, matched_by = match_cameras(folders, names, str(calib))
    cams = [cameras[i] for i in index]
    views = load_openpose_views({c.name: f for c, f in zip(cams, folders)}, layout)
    kp = np.stack([views[c.name] for c in cams], 1).astype(np.float64)  # (F, V, N, 17, 3)
    raw, conf = kp[..., :2], np.maximum(kp[..., 2], 0.0)
    for v, folder in enumerate(folders):
        if not (conf[:, v] > 0).any():
            raise EdgecapError(f"OpenPose folder {folder}: no person detected in any of its {len(kp)} frames "
                               f"(people empty or all confidences 0)")

    undistorted = np.zeros_like(raw)
    for v, cam in enumerate(cams):
        seen = conf[:, v] > 0
        undistorted[:, v][seen] = cam.undistort(raw[:, v][seen])
    finite = np.isfinite(undistorted).all(-1)
    conf = np.where(finite, conf, 0.0)
    undistorted = np.where(finite[..., None], undistorted, 0.0)
    used = np.where(conf >= max(min_confidence, 1e-6), conf, 0.0)

    P = np.stack([c.projection() for c in cams])
    person, stats = associate(undistorted, used, P, max_error_px=max_error_px, track_radius_mm=track_radius_mm,
                              max_combinations=max_combinations)
    f_count, v_count = person.shape
    frame_ix, view_ix = np.arange(f_count)[:, None], np.arange(v_count)[None]
    chosen = np.maximum(person, 0)
    pts = undistorted[frame_ix, view_ix, chosen]  # (F, V, J, 2)
    w = used[frame_ix, view_ix, chosen] * (person >= 0)[..., None]  # (F, V, J)
    joints, valid = triangulate_frames(pts, w, P, runner)
    valid &= view_validity(w) > 0
    joints = np.where(valid[..., None], joints, np.nan)

    detected = raw[frame_ix, view_ix, chosen]  # (F, V, J, 2) distorted pixels
    reproj = np.full((f_count, len(JOINTS), v_count), np.nan)
    for v, cam in enumerate(cams):
        mask = (w[:, v] > 0) & valid
        if mask.any():
            reproj[:, :, v][mask] = np.linalg.norm(cam.project(joints[mask]) - detected[:, v][mask], axis=-1)

    npz_path, trc_path = _out_paths(out)
    arrays = {"joints_3d": joints, "valid": valid, "reprojection_px": reproj, "person": person,
              "camera_names": np.array([c.name for c in cams]), "keypoint_folders": np.array([str(f) for f in folders]),
              "joint_names": np.array(JOINTS), "fps": np.array(float(fps))}
    with atomic_path(npz_path) as tmp:
        np.savez_compressed(tmp, **arrays)
    write_trc(trc_path, joints, JOINTS, fps)

    return {
        "calibration": str(calib), "cameras": [c.name for c in cams], "folders": [str(f) for f in folders],
        "matched_by": matched_by, "frames": f_count,
        "frames_with_person": int((person >= 0).any(1).sum()), **stats,
        "valid_fraction": float(valid.mean()),
        "triangulator": "pytorch WeightedDLT" if runner is None else f"runner ({runner.format or type(runner).__name__})",
        "reprojection_px": {
            "mean": _mean(reproj),
            "per_joint": {j: _mean(reproj[:, i]) for i, j in enumerate(JOINTS)},
            "per_camera": {c.name: _mean(reproj[:, :, v]) for v, c in enumerate(cams)},
        },
        "outputs": {"npz": str(npz_path), "trc": str(trc_path)},
    }


def format_summary(summary: dict) -> str:
    """The summary as text: a header and the mean reprojection error (px) per joint and per camera."""
    def px(x):
        return "-" if x is None else f"{x:.2f}"

    rep = summary["reprojection_px"]
    lines = [
        (f"triangulated {summary['frames']} frames from {len(summary['cameras'])} cameras "
         f"(matched to folders by {summary['matched_by']}) with {summary['triangulator']}"),
        (f"person found in {summary['frames_with_person']}/{summary['frames']} frames, "
         f"{summary['frames_over_max_error']} over the association threshold; "
         f"{100 * summary['valid_fraction']:.1f}% of joints valid"),
        f"reprojection error, mean px over valid joints: {px(rep['mean'])}",
        "",
        f"{'joint':<12} {'px':>8}",
    ]
    lines += [f"{j:<12} {px(v):>8}" for j, v in rep["per_joint"].items()]
    width = max(12, *(len(c) for c in rep["per_camera"]))
    lines += ["", f"{'camera':<{width}} {'px':>8}"]
    lines += [f"{c:<{width}} {px(v):>8}" for c, v in rep["per_camera"].items()]
    lines += ["", f"wrote {summary['outputs']['npz']} and {summary['outputs']['trc']}"]
    return "\n".join(lines)
