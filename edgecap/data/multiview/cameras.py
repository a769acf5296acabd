"""Calibrated pinhole cameras with OpenCV distortion, and readers for three calibration formats.

A `Camera` maps world points to pixels as OpenCV does: X_cam = R X + t (world -> camera), then
cv2.projectPoints with K and dist = (k1, k2, p1, p2[, k3[, k4, k5, k6[, s1..s4[, tx, ty]]]]).
Every reader returns cameras in millimetres (`unit="mm"`), converting from the file's unit:

- `load_toml_cameras`: the anipose / Pose2Sim TOML (aniposelib `aniposelib/cameras.py`
  CameraGroup.dump; Pose2Sim `Pose2Sim/calibration.py` toml_write). Sections `[cam_0]`... (anipose)
  or named after the camera (Pose2Sim) with `name`, `size` [w, h], `matrix` 3x3, `distortions`,
  `rotation` (Rodrigues, world -> camera), `translation`; Pose2Sim adds `fisheye = false`.
  `[metadata]` (and Pose2Sim's `capture_volume`/`charuco`/`checkerboard`) are not cameras. The
  file does not say its unit: Pose2Sim writes metres, aniposelib the unit of the board square
  size (often mm), so `unit` is a required argument.
- `load_panoptic_cameras`: CMU Panoptic `calibration_<seq>.json` (panoptic-toolbox
  `python/panutils.py`, `matlab/PoseProject2D.m`): {"cameras": [{"name", "type", "resolution",
  "K", "distCoef" (OpenCV order), "R", "t" (3x1, centimetres)}]}.
- `load_h36m_cameras`: the Human3.6M cameras JSON read by `edgecap.data.h36m` (VideoPose3D
  `common/h36m_dataset.py` parameters): extrinsics {subject: [{"id", "orientation" [w, x, y, z]
  camera -> world, "translation" camera centre in world, mm}]}, intrinsics {id: {"center",
  "focal_length", "radial_distortion" [k1, k2, k3], "tangential_distortion" [p1, p2], "res_w",
  "res_h"}} (or VideoPose3D's list of such dicts, matched by "id" or else by position).
"""

from __future__ import annotations

import json
import math
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from edgecap import EdgecapError
from edgecap.data.h36m import quaternion_matrix

UNIT_TO_MM = {"mm": 1.0, "cm": 10.0, "m": 1000.0}
_DIST_LENGTHS = (4, 5, 8, 12, 14)  # what cv2.projectPoints accepts


def _array(value, shape: tuple[int, ...], where: str, field: str) -> np.ndarray:
    """`value` as a finite float64 array of `shape` (a 3x1 column counts as 3), or a one-line error."""
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise EdgecapError(f"{where}: {field} must be numbers of shape {shape}, got {value!r:.80}") from None
    if arr.shape != shape and arr.size == math.prod(shape) and arr.squeeze().shape == shape:
        arr = arr.reshape(shape)
    if arr.shape != shape:
        raise EdgecapError(f"{where}: {field} must have shape {shape}, got {arr.shape}")
    if not np.isfinite(arr).all():
        raise EdgecapError(f"{where}: {field} contains NaN or inf")
    return arr


def _checked(where: str, size, K, dist, R, t, names: Sequence[str] = ("size", "K", "dist", "R", "t")) -> tuple:
    """Validated (size, K, dist, R, t); `where` names the file and camera, `names` the file's fields."""
    n_size, n_k, n_dist, n_r, n_t = names
    wh = _array(size, (2,), where, n_size)
    if (wh <= 0).any() or (wh != np.round(wh)).any():
        raise EdgecapError(f"{where}: {n_size} must be two positive whole numbers [w, h], got {wh.tolist()}")
    K = _array(K, (3, 3), where, n_k)
    if not np.allclose(K[2], (0, 0, 1)) or K[1, 0] != 0 or K[0, 0] <= 0 or K[1, 1] <= 0:
        raise EdgecapError(
            f"{where}: {n_k} (intrinsic matrix) must be [[fx, s, cx], [0, fy, cy], [0, 0, 1]] with fx, fy > 0 "
            f"(singular or malformed), got {K.tolist()}"
        )
    try:
        dist = np.asarray(dist, dtype=np.float64).ravel()
    except (TypeError, ValueError):
        raise EdgecapError(f"{where}: {n_dist} must be a list of numbers, got {dist!r:.80}") from None
    if len(dist) not in _DIST_LENGTHS:
        raise EdgecapError(f"{where}: {n_dist} must have 4, 5, 8, 12 or 14 values (OpenCV), got {len(dist)}")
    if not np.isfinite(dist).all():
        raise EdgecapError(f"{where}: {n_dist} contains NaN or inf")
    R = _array(R, (3, 3), where, n_r)
    err = np.abs(R @ R.T - np.eye(3)).max()
    if err > 1e-4 or abs(np.linalg.det(R) - 1) > 1e-4:
        raise EdgecapError(
            f"{where}: {n_r} is not a rotation matrix (|R R^T - I| = {err:.2g}, det = {np.linalg.det(R):.4g})"
        )
    t = _array(t, (3,), where, n_t)
    return (int(wh[0]), int(wh[1])), K, dist, R, t


@dataclass(frozen=True, eq=False)
class Camera:
    """One calibrated camera. size = (width, height) pixels; K (3, 3); dist OpenCV coefficients;
    R (3, 3), t (3,) map world to camera coordinates (X_cam = R X + t) with t in `unit`."""

    name: str
    size: tuple[int, int]
    K: np.ndarray
    dist: np.ndarray
    R: np.ndarray
    t: np.ndarray
    unit: str = "mm"

    def __post_init__(self):
        fields = _checked(f"camera {self.name!r}", self.size, self.K, self.dist, self.R, self.t)
        for key, value in zip(("size", "K", "dist", "R", "t"), fields):
            if isinstance(value, np.ndarray):
                value.setflags(write=False)
            object.__setattr__(self, key, value)
        if self.unit not in UNIT_TO_MM:
            raise EdgecapError(f"camera {self.name!r}: unit must be one of {sorted(UNIT_TO_MM)}, got {self.unit!r}")

    @property
    def center(self) -> np.ndarray:
        """Camera centre in world coordinates (3,)."""
        return -self.R.T @ self.t

    def projection(self) -> np.ndarray:
        """3x4 projection matrix K [R | t] of the undistorted camera."""
        return self.K @ np.hstack([self.R, self.t[:, None]])

    def project(self, points_3d: np.ndarray) -> np.ndarray:
        """World points (..., 3) in `unit` -> distorted pixel coordinates (..., 2)."""
        pts = np.asarray(points_3d, dtype=np.float64)
        flat = pts.reshape(-1, 1, 3)
        if not len(flat):
            return np.zeros((*pts.shape[:-1], 2))
        out, _ = cv2.projectPoints(flat, cv2.Rodrigues(self.R)[0], self.t, self.K, self.dist)
        return out.reshape(*pts.shape[:-1], 2)

    def undistort(self, points_2d: np.ndarray) -> np.ndarray:
        """Distorted pixels (..., 2) -> pixels of the ideal camera K [R | t] (no distortion)."""
        pts = np.asarray(points_2d, dtype=np.float64)
        flat = pts.reshape(-1, 1, 2)
        if not len(flat):
            return pts.copy()
        criteria = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 100, 1e-12)
        out = cv2.undistortPoints(flat, self.K, self.dist, R=None, P=self.K, criteria=criteria)
        return out.reshape(pts.shape)


def _unit_scale(unit: str, what: str) -> float:
    if unit not in UNIT_TO_MM:
        raise EdgecapError(f"{what}: unit must be one of {sorted(UNIT_TO_MM)}, got {unit!r}")
    return UNIT_TO_MM[unit]


def _field(entry: dict, key: str, where: str):
    if not isinstance(entry, dict) or key not in entry:
        raise EdgecapError(f"{where}: missing field {key!r}")
    return entry[key]


def _unique(cameras: list[Camera], what: str) -> list[Camera]:
    names = [c.name for c in cameras]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise EdgecapError(f"{what}: camera names repeat: {dup}")
    return cameras


def _read(path, what: str, parse):
    path = Path(path)
    if not path.is_file():
        raise EdgecapError(f"{what} {path} not found")
    try:
        return parse(path.read_bytes())
    except (ValueError, UnicodeDecodeError) as e:  # JSONDecodeError and TOMLDecodeError are ValueErrors
        raise EdgecapError(f"{what} {path}: not valid {what.split()[0]} ({e})".replace("\n", " ")) from None


_TOML_NOT_CAMERAS = {"metadata", "capture_volume", "charuco", "checkerboard"}


def load_toml_cameras(path, *, unit: str) -> list[Camera]:
    """Cameras of an anipose / Pose2Sim calibration TOML, in file order, translations converted from
    `unit` ("m" for Pose2Sim, the board's unit for anipose) to mm."""
    what = f"calibration file {path}"
    scale = _unit_scale(unit, what)
    data = _read(path, "TOML calibration file", lambda b: tomllib.loads(b.decode()))
    cameras = []
    for section, entry in data.items():
        if section in _TOML_NOT_CAMERAS or not isinstance(entry, dict):
            continue
        where = f"{what}: [{section}]"
        if entry.get("fisheye", False):
            raise EdgecapError(f"{where}: fisheye = true is not supported (pinhole + OpenCV distortion only)")
        name = _field(entry, "name", where)
        size, K, dist, rvec, t = (_field(entry, k, where) for k in
                                  ("size", "matrix", "distortions", "rotation", "translation"))
        R = cv2.Rodrigues(_array(rvec, (3,), where, "rotation"))[0]
        names = ("size", "matrix", "distortions", "rotation", "translation")
        size, K, dist, R, t = _checked(where, size, K, dist, R, _array(t, (3,), where, "translation") * scale, names)
        cameras.append(Camera(str(name), size, K, dist, R, t))
    if not cameras:
        raise EdgecapError(f"{what}: no camera sections (expected [cam_0] ... or one section per camera)")
    return _unique(cameras, what)


def load_panoptic_cameras(path, types: Sequence[str] | None = None) -> list[Camera]:
    """Cameras of a CMU Panoptic calibration JSON, in file order, optionally only those whose "type"
    is in `types` (e.g. ("hd",)); translations converted from cm to mm."""
    what = f"calibration file {path}"
    data = _read(path, "JSON calibration file", json.loads)
    entries = _field(data, "cameras", what)
    if not isinstance(entries, list):
        raise EdgecapError(f"{what}: 'cameras' must be a list")
    cameras, seen = [], set()
    for i, entry in enumerate(entries):
        where = f"{what}: cameras[{i}]"
        kind = _field(entry, "type", where)
        seen.add(kind)
        if types is not None and kind not in types:
            continue
        name = _field(entry, "name", where)
        where = f"{what}: cameras[{i}] ({name})"
        size, K, dist, R, t = (_field(entry, k, where) for k in ("resolution", "K", "distCoef", "R", "t"))
        t = _array(t, (3,), where, "t") * UNIT_TO_MM["cm"]
        size, K, dist, R, t = _checked(where, size, K, dist, R, t, ("resolution", "K", "distCoef", "R", "t"))
        cameras.append(Camera(str(name), size, K, dist, R, t))
    if not cameras:
        raise EdgecapError(f"{what}: no cameras of type {list(types or [])} (the file has types {sorted(seen)})")
    return _unique(cameras, what)


def load_h36m_cameras(path, subject: str) -> list[Camera]:
    """The cameras of one Human3.6M subject, in file order, named by their id.

    H36M stores the camera -> world rotation q and the camera centre C (mm); here R = R(q)^T and
    t = -R(q)^T C. Its distortion [k1, k2, k3] + [p1, p2] becomes OpenCV's (k1, k2, p1, p2, k3):
    the radial part is identical, but H36M's own tangential term (VideoPose3D `project_to_2d`)
    is not OpenCV's, so projections differ from H36M's by up to ~0.8 px at the image corners.
    """
    what = f"camera file {path}"
    data = _read(path, "JSON camera file", json.loads)
    extrinsics, intrinsics = _field(data, "extrinsics", what), _field(data, "intrinsics", what)
    if not isinstance(extrinsics, dict) or subject not in extrinsics:
        have = sorted(extrinsics) if isinstance(extrinsics, dict) else type(extrinsics).__name__
        raise EdgecapError(f"{what}: extrinsics has no subject {subject!r} (has {have})")
    by_index = isinstance(intrinsics, list)  # VideoPose3D's list: extrinsics without "id" take the i-th
    if by_index:
        intrinsics = {str(c.get("id", i)) if isinstance(c, dict) else str(i): c for i, c in enumerate(intrinsics)}
    if not isinstance(intrinsics, dict):
        raise EdgecapError(f"{what}: intrinsics must be a dict camera id -> parameters")
    cams = extrinsics[subject]
    if not isinstance(cams, list) or not cams:
        raise EdgecapError(f"{what}: extrinsics[{subject!r}] must be a non-empty list of cameras")
    cameras = []
    for i, ext in enumerate(cams):
        where = f"{what}: extrinsics[{subject!r}][{i}]"
        ids = list(intrinsics)
        by_position = by_index and isinstance(ext, dict) and "id" not in ext and i < len(ids)
        cam_id = ids[i] if by_position else str(_field(ext, "id", where))
        q = _array(_field(ext, "orientation", where), (4,), where, "orientation")
        centre = _array(_field(ext, "translation", where), (3,), where, "translation")
        if np.linalg.norm(q) < 1e-8:
            raise EdgecapError(f"{where}: orientation quaternion is zero")
        if cam_id not in intrinsics:
            raise EdgecapError(f"{what}: intrinsics has no camera {cam_id!r} (has {sorted(intrinsics)})")
        intr, iw = intrinsics[cam_id], f"{what}: intrinsics[{cam_id!r}]"
        f = _array(_field(intr, "focal_length", iw), (2,), iw, "focal_length")
        c = _array(_field(intr, "center", iw), (2,), iw, "center")
        k = _array(_field(intr, "radial_distortion", iw), (3,), iw, "radial_distortion")
        p = _array(_field(intr, "tangential_distortion", iw), (2,), iw, "tangential_distortion")
        size = (_field(intr, "res_w", iw), _field(intr, "res_h", iw))
        K = np.array([[f[0], 0.0, c[0]], [0.0, f[1], c[1]], [0.0, 0.0, 1.0]])
        rot_c2w = quaternion_matrix(q)
        names = ("res_w/res_h", "focal_length/center", "distortion", "orientation", "translation")
        dist = [k[0], k[1], p[0], p[1], k[2]]
        size, K, dist, R, t = _checked(iw, size, K, dist, rot_c2w.T, -rot_c2w.T @ centre, names)
        cameras.append(Camera(cam_id, size, K, dist, R, t))
    return _unique(cameras, what)
