"""OpenPose JSON keypoints, one folder per camera, mapped to edgecap's 17-joint `h36m` layout.

Each folder holds `<video>_<frame:012d>_keypoints.json` files: {"version": 1.3, "people":
[{"person_id": [-1], "pose_keypoints_2d": [x0, y0, c0, x1, ...], ...}]}; an undetected joint is
(0, 0, 0). Joint orders:
- BODY_25, COCO_18: OpenPose `src/openpose/pose/poseParameters.cpp` (POSE_BODY_25_BODY_PARTS,
  POSE_COCO_BODY_PARTS; doc/02_output.md).
- BODY_25B: openpose_train `experimental_models/README.md` + POSE_BODY_25B_BODY_PARTS
  (COCO's 17, then UpperNeck, HeadTop, feet); also Pose2Sim `Pose2Sim/skeletons.py`.
- HALPE_26: Fang-Haoshu/Halpe-FullBody `README.md` (COCO's 17, Head, Neck, Hip, feet); Pose2Sim
  `Pose2Sim/skeletons.py` HALPE_26 (what Pose2Sim writes from RTMPose/AlphaPose).
18 and 26 keypoints identify COCO_18 and HALPE_26; 25 is either BODY_25 or BODY_25B, so it needs
`layout`.

Mapping to `h36m` (edgecap.data.skeletons.H36M), per joint: a name is taken directly, a pair is
its midpoint (confidence = the smaller one; 0 if either is missing):

| h36m       | BODY_25        | BODY_25B          | COCO_18        | HALPE_26 |
|------------|----------------|-------------------|----------------|----------|
| pelvis     | MidHip         | mid(LHip, RHip)   | mid(LHip, RHip)| Hip      |
| hips/knees/ankles, shoulders/elbows/wrists: direct in every layout                     |
| thorax     | Neck           | mid(LSh, RSh)     | Neck           | Neck     |
| spine      | mid(pelvis, thorax) in every layout                                    |
| neck       | Nose           | Nose              | Nose           | Nose     |
| head       | mid(LEar, REar)| HeadTop           | mid(LEar, REar)| Head     |

OpenPose's Neck is the shoulders' midpoint and BODY_25B drops it; H36M's "Neck/Nose" joint sits
at nose height, so it takes the nose as common lifting practice does (e.g. MotionBERT coco2h36m).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from edgecap import EdgecapError
from edgecap.data.skeletons import H36M

_SIDES = ("Shoulder", "Elbow", "Wrist", "Hip", "Knee", "Ankle")
_FACE = ("Nose", "LEye", "REye", "LEar", "REar")
_COCO_17 = _FACE + tuple(f"{s}{j}" for j in _SIDES for s in "LR")
_FEET_25 = ("LBigToe", "LSmallToe", "LHeel", "RBigToe", "RSmallToe", "RHeel")
LAYOUTS: dict[str, tuple[str, ...]] = {
    "BODY_25": ("Nose", "Neck", "RShoulder", "RElbow", "RWrist", "LShoulder", "LElbow", "LWrist", "MidHip",
                "RHip", "RKnee", "RAnkle", "LHip", "LKnee", "LAnkle", "REye", "LEye", "REar", "LEar") + _FEET_25,
    "BODY_25B": _COCO_17 + ("UpperNeck", "HeadTop") + _FEET_25,
    "COCO_18": ("Nose", "Neck", "RShoulder", "RElbow", "RWrist", "LShoulder", "LElbow", "LWrist", "RHip",
                "RKnee", "RAnkle", "LHip", "LKnee", "LAnkle", "REye", "LEye", "REar", "LEar"),
    "HALPE_26": _COCO_17 + ("Head", "Neck", "Hip", "LBigToe", "RBigToe", "LSmallToe", "RSmallToe", "LHeel", "RHeel"),
}
_BY_COUNT = {18: ("COCO_18",), 25: ("BODY_25", "BODY_25B"), 26: ("HALPE_26",)}

# h36m joint -> source joint names (one: direct, two: midpoint); spine is computed afterwards.
_COMMON = {f"{s.lower()}_{j.lower()}": (f"{s}{j}",) for j in _SIDES for s in "LR"} | {"neck": ("Nose",)}
_MID_HIP, _MID_SHOULDER, _MID_EAR = ("LHip", "RHip"), ("LShoulder", "RShoulder"), ("LEar", "REar")
MAPPINGS: dict[str, dict[str, tuple[str, ...]]] = {
    "BODY_25": _COMMON | {"pelvis": ("MidHip",), "thorax": ("Neck",), "head": _MID_EAR},
    "BODY_25B": _COMMON | {"pelvis": _MID_HIP, "thorax": _MID_SHOULDER, "head": ("HeadTop",)},
    "COCO_18": _COMMON | {"pelvis": _MID_HIP, "thorax": ("Neck",), "head": _MID_EAR},
    "HALPE_26": _COMMON | {"pelvis": ("Hip",), "thorax": ("Neck",), "head": ("Head",)},
}


def _layout_name(layout: str) -> str:
    key = layout.upper().replace("-", "_")
    if key not in LAYOUTS:
        raise EdgecapError(f"unknown OpenPose layout {layout!r}; choose one of {sorted(LAYOUTS)}")
    return key


def to_h36m(keypoints: np.ndarray, layout: str) -> np.ndarray:
    """(..., J, 3) keypoints (x, y, confidence) of `layout` -> (..., 17, 3) in the h36m order."""
    layout = _layout_name(layout)
    index = {name: i for i, name in enumerate(LAYOUTS[layout])}
    kp = np.asarray(keypoints, dtype=np.float32)
    out = np.zeros((*kp.shape[:-2], H36M.num_joints, 3), dtype=np.float32)

    def mean(*sources: np.ndarray) -> np.ndarray:
        conf = np.min([s[..., 2] for s in sources], axis=0)
        xy = np.mean([s[..., :2] for s in sources], axis=0) * (conf > 0)[..., None]
        return np.concatenate([xy, conf[..., None]], axis=-1)

    for joint, sources in MAPPINGS[layout].items():
        out[..., H36M.index(joint), :] = mean(*(kp[..., index[s], :] for s in sources))
    out[..., H36M.index("spine"), :] = mean(out[..., H36M.index("pelvis"), :], out[..., H36M.index("thorax"), :])
    return out


def _frame_number(path: Path) -> int:
    m = re.search(r"_(\d+)_keypoints\.json$", path.name)
    return int(m.group(1)) if m else -1


def read_openpose_json(path) -> np.ndarray:
    """One OpenPose JSON file -> (people, keypoints, 3) float32 as written (not remapped)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise EdgecapError(f"OpenPose file {path}: cannot read JSON ({e})") from None
    people = data.get("people") if isinstance(data, dict) else None
    if not isinstance(people, list):
        raise EdgecapError(f"OpenPose file {path}: 'people' must be a list, got {type(people).__name__}")
    rows = []
    for i, person in enumerate(people):
        field = f"people[{i}].pose_keypoints_2d"
        values = person.get("pose_keypoints_2d") if isinstance(person, dict) else None
        if not isinstance(values, list):
            raise EdgecapError(f"OpenPose file {path}: {field} missing or not a list")
        try:
            arr = np.asarray(values, dtype=np.float64)
        except (TypeError, ValueError):
            raise EdgecapError(f"OpenPose file {path}: {field} must hold numbers") from None
        if arr.ndim != 1 or arr.size % 3 or arr.size // 3 not in _BY_COUNT:
            raise EdgecapError(
                f"OpenPose file {path}: {field} has {arr.size} values; expected 3 x (18, 25 or 26) keypoints"
            )
        if not np.isfinite(arr).all():
            raise EdgecapError(f"OpenPose file {path}: {field} contains NaN or inf (missing joints are 0, 0, 0)")
        rows.append(arr.reshape(-1, 3))
    counts = {len(r) for r in rows}
    if len(counts) > 1:
        raise EdgecapError(f"OpenPose file {path}: people have different keypoint counts {sorted(counts)}")
    return np.stack(rows).astype(np.float32) if rows else np.zeros((0, 0, 3), np.float32)


def load_openpose_folder(folder, layout: str | None = None) -> tuple[np.ndarray, str]:
    """All `*_keypoints.json` of one camera, by frame number -> ((frames, people, 17, 3) h36m
    keypoints, layout). `people` is the most detected in any frame; absent people have confidence
    0. The order of people is OpenPose's per frame (no identity across frames or cameras)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise EdgecapError(f"OpenPose folder {folder} not found")
    files = sorted(folder.glob("*_keypoints.json"), key=lambda p: (_frame_number(p), p.name))
    if not files:
        raise EdgecapError(f"OpenPose folder {folder}: no *_keypoints.json files")
    frames = [read_openpose_json(f) for f in files]
    layout = _layout_name(layout) if layout else None
    for path, kp in zip(files, frames):
        if not kp.size:
            continue
        count = kp.shape[1]
        if layout is None:
            if len(_BY_COUNT[count]) > 1:
                raise EdgecapError(
                    f"OpenPose file {path}: {count} keypoints per person fit {' and '.join(_BY_COUNT[count])}; "
                    f"pass layout= one of them"
                )
            layout = _BY_COUNT[count][0]
        elif len(LAYOUTS[layout]) != count:
            raise EdgecapError(
                f"OpenPose file {path}: people[*].pose_keypoints_2d has {count} keypoints, "
                f"layout {layout} has {len(LAYOUTS[layout])}"
            )
    if layout is None:
        raise EdgecapError(f"OpenPose folder {folder}: no person detected in any of its {len(files)} frames")
    out = np.zeros((len(frames), max(len(kp) for kp in frames), H36M.num_joints, 3), dtype=np.float32)
    for f, kp in enumerate(frames):
        if len(kp):
            out[f, : len(kp)] = to_h36m(kp, layout)
    return out, layout


def load_openpose_views(folders: Mapping[str, str | Path], layout: str | None = None) -> dict[str, np.ndarray]:
    """camera name -> OpenPose folder, read into camera name -> (frames, people, 17, 3) h36m
    keypoints (x_px, y_px, confidence); every camera has the same frame and people counts (people
    padded with confidence 0) so the arrays stack. All cameras must share one layout."""
    if not folders:
        raise EdgecapError("load_openpose_views: no camera folders given")
    views, layouts = {}, {}
    for name, folder in folders.items():
        views[name], layouts[name] = load_openpose_folder(folder, layout)
    first = next(iter(views))
    for name, kp in views.items():
        if len(kp) != len(views[first]):
            raise EdgecapError(
                f"OpenPose frame counts differ: camera {first!r} ({folders[first]}) has {len(views[first])} frames, "
                f"camera {name!r} ({folders[name]}) has {len(kp)}"
            )
        if layouts[name] != layouts[first]:
            raise EdgecapError(
                f"OpenPose layouts differ: camera {first!r} is {layouts[first]}, camera {name!r} is {layouts[name]}"
            )
    people = max(kp.shape[1] for kp in views.values())
    return {name: np.pad(kp, ((0, 0), (0, people - kp.shape[1]), (0, 0), (0, 0))) for name, kp in views.items()}
