"""Human3.6M in the npz layout published with VideoPose3D, plus a JSON camera file.

Files (see README "Human3.6M"):
- `data_3d_h36m.npz`: `positions_3d` = {subject: {action: (N, 32, 3) float world positions in
  metres}}. The 32 mocap joints are reduced to the 17-joint `h36m` skeleton by dropping the
  same static/duplicate joints as VideoPose3D; arrays that already have 17 joints are kept.
- `data_2d_h36m_<detector>.npz`: `positions_2d` = {subject: {action: [per-camera (N, 17, 2)
  pixel coordinates, or (N, 17, 3) with a confidence that is > 0 for detected joints]}};
  optional `metadata` = {"layout_name", "num_joints", "keypoints_symmetry"}.
- cameras JSON: {"extrinsics": {subject: [{"id", "orientation": [w, x, y, z],
  "translation": [x, y, z] mm}, ... one per camera, in the order of the 2D lists]},
  "intrinsics": {...}}. Intrinsics are not needed (the 2D file is already in pixels) and are
  ignored.

Both npz files hold pickled Python dicts. Plain `np.load(..., allow_pickle=True)` would let
a crafted file run arbitrary code, so members are unpickled with an allow-list that only
rebuilds numpy arrays, dtypes and scalars (dicts, lists, strings and numbers need no
globals). Only load files you trust all the same: that is the standard caveat for pickles.
"""

from __future__ import annotations

import json
import pickle
import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from edgecap import EdgecapError
from edgecap.core.io import ArrayOnlyUnpickler

# The 17 of the 32 Human3.6M mocap joints that VideoPose3D keeps (it removes
# [4, 5, 9, 10, 11, 16, 20, 21, 22, 23, 24, 28, 29, 30, 31]), in the order of
# edgecap.data.skeletons.H36M: pelvis, right leg, left leg, spine, thorax, neck, head,
# left arm, right arm.
H36M_KEPT_JOINTS = (0, 1, 2, 3, 6, 7, 8, 12, 13, 14, 15, 17, 18, 19, 25, 26, 27)
# Left/right joint lists of the 17-joint layout, as written in the 2D files' metadata.
_H36M_SYMMETRY = ([4, 5, 6, 11, 12, 13], [1, 2, 3, 14, 15, 16])


def _load_npz_member(path: str, key: str, what: str, required: bool = True):
    """One member of an npz file: an ndarray, or the Python object a 0-d object array holds."""
    if not path or not Path(path).is_file():
        raise EdgecapError(f"{what} file {path!r} not found")
    try:
        with zipfile.ZipFile(path) as zf:
            if f"{key}.npy" not in zf.namelist():
                if not required:
                    return None
                keys = sorted(n.removesuffix(".npy") for n in zf.namelist())
                raise EdgecapError(f"{what} file {path}: missing key {key!r} (has {keys})")
            with zf.open(f"{key}.npy") as fp:
                fmt = np.lib.format
                version = fmt.read_magic(fp)
                _, _, dtype = (fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0)(fp)
                if dtype.hasobject:
                    value = ArrayOnlyUnpickler(fp).load()
                    return value.item() if isinstance(value, np.ndarray) and value.shape == () else value
            with zf.open(f"{key}.npy") as fp:
                return np.lib.format.read_array(fp, allow_pickle=False)
    except EdgecapError:
        raise
    except (zipfile.BadZipFile, pickle.UnpicklingError, ValueError, EOFError, OSError, AttributeError, TypeError) as e:
        raise EdgecapError(f"{what} file {path}: cannot read {key!r}, not a valid npz file ({e})") from e


def _load_subjects(path: str, key: str, what: str) -> dict:
    """The pickled {subject: {action: ...}} table of an npz file."""
    table = _load_npz_member(path, key, what)
    # Type-check what came out of the pickle before indexing into it, so a file of another
    # format fails here with its name rather than deep inside numpy.
    if not isinstance(table, dict) or not all(isinstance(k, str) for k in table):
        got = type(table).__name__
        raise EdgecapError(f"{what} file {path}: {key} must be a dict keyed by subject names, got {got}")
    for subject, actions in table.items():
        if not isinstance(actions, dict):
            raise EdgecapError(f"{what} file {path}: {key}[{subject!r}] must be a dict keyed by action names")
    return table


def quaternion_matrix(q: np.ndarray) -> np.ndarray:
    """Rotation matrix (3, 3) of a unit quaternion [w, x, y, z]."""
    w, x, y, z = q / np.linalg.norm(q)
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
        [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
        [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
    ])


def _load_cameras(path: str) -> dict[str, list[tuple[np.ndarray, np.ndarray]]]:
    """subject -> per camera (rotation (3, 3) camera-to-world, translation (3,) mm)."""
    if not path or not Path(path).is_file():
        raise EdgecapError(f"camera file {path!r} not found")
    try:
        data = json.loads(Path(path).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise EdgecapError(f"camera file {path}: not valid JSON ({e})") from e
    if not isinstance(data, dict) or not isinstance(data.get("extrinsics"), dict):
        raise EdgecapError(f"camera file {path}: missing key 'extrinsics' (a dict subject -> list of cameras)")
    out = {}
    for subject, cams in data["extrinsics"].items():
        if not isinstance(cams, list):
            raise EdgecapError(f"camera file {path}: extrinsics[{subject!r}] must be a list of cameras")
        out[subject] = []
        for i, cam in enumerate(cams):
            where = f"camera file {path}: extrinsics[{subject!r}][{i}]"
            try:
                q = np.asarray(cam["orientation"], dtype=np.float64)
                t = np.asarray(cam["translation"], dtype=np.float64)
            except (KeyError, TypeError, ValueError) as e:
                raise EdgecapError(
                    f"{where} needs numeric 'orientation' [w,x,y,z] and 'translation' [x,y,z] ({e!r})"
                ) from e
            if q.shape != (4,) or t.shape != (3,) or not (np.isfinite(q).all() and np.isfinite(t).all()):
                raise EdgecapError(
                    f"{where}: orientation must be 4 finite numbers and translation 3, got {q.shape} and {t.shape}"
                )
            if np.linalg.norm(q) < 1e-8:
                raise EdgecapError(f"{where}: orientation quaternion is zero")
            out[subject].append((quaternion_matrix(q), t))
    return out


def _check_metadata(meta, path: str) -> None:
    """Reject 2D files whose joints are not in the h36m order (e.g. COCO-layout detections)."""
    if meta is None:
        return
    if not isinstance(meta, dict):
        raise EdgecapError(f"2D keypoints file {path}: metadata must be a dict, got {type(meta).__name__}")
    layout, joints = meta.get("layout_name", "h36m"), meta.get("num_joints", 17)
    symmetry = meta.get("keypoints_symmetry")
    if symmetry is not None:
        try:  # the ground-truth 2D file stores numpy integers here
            symmetry = tuple([int(j) for j in side] for side in symmetry)
        except (TypeError, ValueError):
            pass  # unreadable: reported as a mismatch below
    if layout != "h36m" or joints != 17 or symmetry not in (None, _H36M_SYMMETRY):
        raise EdgecapError(
            f"2D keypoints file {path}: metadata says layout {layout!r} with {joints} joints and symmetry "
            f"{symmetry}; the h36m skeleton needs layout 'h36m', 17 joints, symmetry {list(_H36M_SYMMETRY)}"
        )


def _world_3d(pos, path: str, subject: str, action: str) -> np.ndarray:
    """(N, 32|17, 3) metres -> (N, 17, 3) float64 millimetres."""
    where = f"3D poses file {path}: positions_3d[{subject!r}][{action!r}]"
    if not isinstance(pos, np.ndarray) or pos.ndim != 3 or pos.shape[1:] not in ((32, 3), (17, 3)):
        shape = pos.shape if isinstance(pos, np.ndarray) else type(pos).__name__
        raise EdgecapError(f"{where} must be an array (frames, 32 or 17, 3), got {shape}")
    if not np.issubdtype(pos.dtype, np.number) or not np.isfinite(pos).all():
        raise EdgecapError(f"{where} must hold finite numbers (found dtype {pos.dtype} or NaN/inf)")
    if pos.shape[1] == 32:
        pos = pos[:, H36M_KEPT_JOINTS]
    return pos.astype(np.float64) * 1000.0


def _keypoints(kp, path: str, subject: str, action: str, cam: int) -> np.ndarray:
    """(N, 17, 2|3) pixels [+ confidence] -> (N, 17, 3) float32 (x_px, y_px, validity)."""
    where = f"2D keypoints file {path}: positions_2d[{subject!r}][{action!r}][{cam}]"
    if not isinstance(kp, np.ndarray) or kp.ndim != 3 or kp.shape[1] != 17 or kp.shape[2] not in (2, 3):
        shape = kp.shape if isinstance(kp, np.ndarray) else type(kp).__name__
        raise EdgecapError(f"{where} must be an array (frames, 17, 2 or 3), got {shape}")
    if not np.issubdtype(kp.dtype, np.number) or not np.isfinite(kp).all():
        raise EdgecapError(
            f"{where} contains NaN/inf or non-numbers (dtype {kp.dtype}); mark missing joints with confidence 0"
        )
    valid = kp[..., 2] > 0 if kp.shape[2] == 3 else np.ones(kp.shape[:2], dtype=bool)
    # Undetected joints get zeroed coordinates, as in the synthetic data and at inference.
    xy = kp[..., :2] * valid[..., None]
    return np.concatenate([xy, valid[..., None]], axis=-1).astype(np.float32)


def load_h36m(
    path_3d: str, path_2d: str, path_cameras: str, subjects: Sequence[str], frame_stride: int = 1
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Load Human3.6M keypoint/3D sequence pairs for `subjects` (e.g. ("S9", "S11")).

    Returns (keypoints, joints_3d), one entry per (subject, action, camera), with subjects in
    the given order, actions sorted and cameras in file order:
    - keypoints: (F, 17, 3) float32 (x_px, y_px, validity in {0, 1}); invalid joints are zeros.
    - joints_3d: (F, 17, 3) float32 millimetres in that camera's frame, relative to the pelvis
      (joint 0), computed as X_cam = R(q)^-1 (X_world - t) like VideoPose3D's world_to_camera.
    F is the shorter of the 2D and 3D lengths (videos can have extra frames beyond the mocap),
    then every `frame_stride`-th frame. Joint order: edgecap.data.skeletons.H36M.

    The npz files are pickles: see the module docstring; only load files you trust.
    """
    if isinstance(subjects, str):
        subjects = (subjects,)
    if not subjects:
        raise EdgecapError("load_h36m: no subjects given")
    if not isinstance(frame_stride, int) or frame_stride < 1:
        raise EdgecapError(f"frame_stride must be an integer >= 1, got {frame_stride!r}")

    cameras = _load_cameras(path_cameras)
    poses_3d = _load_subjects(path_3d, "positions_3d", "3D poses")
    poses_2d = _load_subjects(path_2d, "positions_2d", "2D keypoints")
    _check_metadata(_load_npz_member(path_2d, "metadata", "2D keypoints", required=False), path_2d)

    keypoints, joints_3d = [], []
    for subject in subjects:
        for what, path, table in (
            ("3D poses", path_3d, poses_3d), ("2D keypoints", path_2d, poses_2d), ("camera", path_cameras, cameras)
        ):
            if subject not in table:
                raise EdgecapError(f"{what} file {path}: unknown subject {subject!r} (has {sorted(table)})")
        actions_3d, actions_2d = poses_3d[subject], poses_2d[subject]
        # Like VideoPose3D, every action needs both 2D and 3D: a silent skip would hide a wrong file.
        if set(actions_3d) != set(actions_2d):
            raise EdgecapError(
                f"subject {subject!r}: actions differ between 3D poses file {path_3d} and 2D keypoints file "
                f"{path_2d}: only in 3D {sorted(set(actions_3d) - set(actions_2d))}, "
                f"only in 2D {sorted(set(actions_2d) - set(actions_3d))}"
            )
        cams = cameras[subject]
        for action in sorted(actions_3d):
            world_mm = _world_3d(actions_3d[action], path_3d, subject, action)
            per_cam = actions_2d[action]
            if not isinstance(per_cam, (list, tuple)) or len(per_cam) != len(cams):
                count = len(per_cam) if isinstance(per_cam, (list, tuple)) else type(per_cam).__name__
                raise EdgecapError(
                    f"2D keypoints file {path_2d}: positions_2d[{subject!r}][{action!r}] has {count} cameras, "
                    f"camera file {path_cameras} lists {len(cams)} for {subject!r}"
                )
            for c, ((rot, trans), kp) in enumerate(zip(cams, per_cam)):
                kp = _keypoints(kp, path_2d, subject, action, c)
                # Row vectors: (X - t) @ R == (R^T (X - t))^T, i.e. R^-1 applied to X - t. t cancels
                # once the pose is root-relative; it is kept so this reads as world_to_camera.
                cam_mm = (world_mm - trans) @ rot
                cam_mm -= cam_mm[:, :1]
                f = min(len(kp), len(cam_mm))
                keypoints.append(np.ascontiguousarray(kp[:f:frame_stride]))
                joints_3d.append(cam_mm[:f:frame_stride].astype(np.float32))
    return keypoints, joints_3d
