"""Real human motion for evaluating the lifter: loaders for three mocap formats that ship in PyPI
wheels (fetched once by `edgecap.data.real_motion.fetch`), each mapped to the H36M 17 joints in
a y-up world in millimetres (edgecap's synthetic-motion convention).

Sources and what each joint is (the mapping tables below say it per joint):
- isaaclab 3.0.0, `humanoid_{walk,run,dance}.npz` (BSD-3): 15 body origins of the AMP humanoid
  at 60 fps, metres, z up; each origin is a joint centre (its `head` body sits on the neck joint).
- holosoma-retargeting 0.1.0, `demo_data/climb/*_joint_positions_*.npy` (Apache-2.0): 53 joint
  centres of a solved mocap skeleton, metres, z up; its loader keeps every 4th frame and saves
  at 30 fps, so the source rate is 120 Hz (not stated in the package).
- pybullet 3.2.7, DeepMimic clips `humanoid3d_*.txt` (zlib): root position and joint rotations
  (w, x, y, z quaternions; knees and elbows one angle), run here through the forward kinematics
  of `humanoid/humanoid.urdf` at pybullet's 0.25 scale, metres, y up, facing +x.
The isaaclab and DeepMimic bodies are the same humanoid (identical bone lengths).

Direct joints are joint centres every source defines the same way (pelvis, hips, knees, ankles,
shoulders, elbows, wrists). Spine, thorax, neck and head are derived: each source places its
torso and head points differently, so they are built from what it has, and they stay out of
headline errors.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgecap import EdgecapError
from edgecap.data.skeletons import H36M

JOINTS = H36M.joints
DIRECT = ("pelvis", "r_hip", "r_knee", "r_ankle", "l_hip", "l_knee", "l_ankle",
          "l_shoulder", "l_elbow", "l_wrist", "r_shoulder", "r_elbow", "r_wrist")
DIRECT_MASK = np.array([j in DIRECT for j in JOINTS])


@dataclass(frozen=True)
class RealClip:
    name: str  # e.g. "isaac/walk"
    source: str  # "isaaclab" | "holosoma" | "deepmimic"
    motion: str  # walk, run, dance, climb, acrobatics, ...
    fps: float
    joints_mm: np.ndarray  # (F, 17, 3) H36M order, y-up world, mm


def _z_up_to_y_up(points_m: np.ndarray) -> np.ndarray:
    """(x, y, z) with z up, metres -> (x, z, -y) with y up, millimetres (a rotation: handedness kept)."""
    p = np.asarray(points_m, np.float64)
    return np.stack([p[..., 0], p[..., 2], -p[..., 1]], -1) * 1000.0


def unit(v: np.ndarray) -> np.ndarray:
    """Unit vectors along the last axis (a zero vector stays zero)."""
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-9)


def _head_points(thorax: np.ndarray, up: np.ndarray, neck_mm: float = 110.0, head_mm: float = 230.0):
    """H36M-like neck and head points above a thorax point along the (unit) torso direction `up`."""
    return thorax + neck_mm * up, thorax + head_mm * up


def _assemble(named: dict[str, np.ndarray]) -> np.ndarray:
    missing = [j for j in JOINTS if j not in named]
    if missing:
        raise EdgecapError(f"real-motion mapping lacks {missing}")
    return np.stack([named[j] for j in JOINTS], axis=1).astype(np.float32)


def _check_points(path: Path, points: np.ndarray, what: str) -> None:
    if not np.isfinite(points).all():
        raise EdgecapError(f"{path}: {what} holds NaN or infinite values")


# --- isaaclab ---------------------------------------------------------------------------------
ISAAC_BODIES = ("pelvis", "torso", "head", "right_upper_arm", "right_lower_arm", "right_hand", "left_upper_arm",
                "left_lower_arm", "left_hand", "right_thigh", "right_shin", "right_foot", "left_thigh", "left_shin",
                "left_foot")
# H36M joint <- body origin (direct joints); spine/thorax/neck/head derived below.
_ISAAC_DIRECT = {"pelvis": "pelvis", "r_hip": "right_thigh", "r_knee": "right_shin", "r_ankle": "right_foot",
                 "l_hip": "left_thigh", "l_knee": "left_shin", "l_ankle": "left_foot",
                 "r_shoulder": "right_upper_arm", "r_elbow": "right_lower_arm", "r_wrist": "right_hand",
                 "l_shoulder": "left_upper_arm", "l_elbow": "left_lower_arm", "l_wrist": "left_hand"}


def _humanoid_torso(named: dict, chest: np.ndarray, neck_joint: np.ndarray) -> dict:
    """Spine, thorax, neck, head of the AMP/DeepMimic humanoid (chest joint 0.24 m and neck joint
    0.46 m above the pelvis): spine = the chest joint, thorax = the neck joint, neck and head
    above it along chest -> neck (derived)."""
    up = unit(neck_joint - chest)
    neck, head = _head_points(neck_joint, up)
    return {**named, "spine": chest, "thorax": neck_joint, "neck": neck, "head": head}


def load_isaac(path: Path, motion: str) -> RealClip:
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as f:
            fps, names, pos = float(f["fps"]), [str(n) for n in f["body_names"]], np.asarray(f["body_positions"])
    except (OSError, ValueError, KeyError) as e:
        raise EdgecapError(f"{path}: not an isaaclab motion file with fps, body_names, body_positions ({e})") from None
    missing = [b for b in ISAAC_BODIES if b not in names]
    if missing or pos.ndim != 3 or pos.shape[1:] != (len(names), 3):
        raise EdgecapError(f"{path}: body_positions {pos.shape} with body_names {names}: expected (F, {len(names)}, 3)"
                           f" and the bodies {list(ISAAC_BODIES)}" + (f"; missing {missing}" if missing else ""))
    _check_points(path, pos, "body_positions")
    world = _z_up_to_y_up(pos)
    body = {b: world[:, names.index(b)] for b in ISAAC_BODIES}
    named = {j: body[b] for j, b in _ISAAC_DIRECT.items()}
    joints = _assemble(_humanoid_torso(named, body["torso"], body["head"]))
    return RealClip(f"isaac/{motion}", "isaaclab", motion, fps, joints)


# --- holosoma ---------------------------------------------------------------------------------
HOLOSOMA_JOINTS = (
    ["Hips", "Spine", "Spine1", "Neck", "Head", "LeftShoulder", "LeftArm", "LeftForeArm", "LeftHand"]
    + [f"LeftHand{f}{i}" for f in ("Thumb", "Index", "Middle", "Ring", "Pinky") for i in (1, 2, 3)]
    + ["RightShoulder", "RightArm", "RightForeArm", "RightHand"]
    + [f"RightHand{f}{i}" for f in ("Thumb", "Index", "Middle", "Ring", "Pinky") for i in (1, 2, 3)]
    + ["LeftUpLeg", "LeftLeg", "LeftFoot", "LeftToeBase", "RightUpLeg", "RightLeg", "RightFoot", "RightToeBase",
       "LeftFootMod", "RightFootMod"])
_HOLO_DIRECT = {"pelvis": "Hips", "r_hip": "RightUpLeg", "r_knee": "RightLeg", "r_ankle": "RightFoot",
                "l_hip": "LeftUpLeg", "l_knee": "LeftLeg", "l_ankle": "LeftFoot",
                "r_shoulder": "RightArm", "r_elbow": "RightForeArm", "r_wrist": "RightHand",
                "l_shoulder": "LeftArm", "l_elbow": "LeftForeArm", "l_wrist": "LeftHand"}
HOLOSOMA_FPS = 120.0


def load_holosoma(path: Path, motion: str = "climb", fps: float = HOLOSOMA_FPS) -> RealClip:
    """A (F, 53, 3) joint-position array (HOLOSOMA_JOINTS order). Spine = Spine1 (0.3 m above the
    hips), thorax = Neck (the base of the neck), neck and head derived from Neck -> Head."""
    path = Path(path)
    try:
        pos = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise EdgecapError(f"{path}: not a readable .npy ({e})") from None
    if pos.ndim != 3 or pos.shape[1:] != (len(HOLOSOMA_JOINTS), 3):
        raise EdgecapError(f"{path}: joint positions {pos.shape}, expected (F, {len(HOLOSOMA_JOINTS)}, 3)")
    _check_points(path, pos, "joint positions")
    world = _z_up_to_y_up(pos)
    j = {n: world[:, i] for i, n in enumerate(HOLOSOMA_JOINTS)}
    named = {k: j[v] for k, v in _HOLO_DIRECT.items()}
    up = unit(j["Head"] - j["Neck"])
    neck, head = _head_points(j["Neck"], up)
    joints = _assemble({**named, "spine": j["Spine1"], "thorax": j["Neck"], "neck": neck, "head": head})
    return RealClip(f"holosoma/{path.stem}", "holosoma", motion, fps, joints)


# --- DeepMimic (pybullet) ---------------------------------------------------------------------
# Columns of a frame after the duration: root position (3), root rotation (4), then per joint.
DEEPMIMIC_JOINTS = (("chest", 4), ("neck", 4), ("right_hip", 4), ("right_knee", 1), ("right_ankle", 4),
                    ("right_shoulder", 4), ("right_elbow", 1), ("left_hip", 4), ("left_knee", 1),
                    ("left_ankle", 4), ("left_shoulder", 4), ("left_elbow", 1))
DEEPMIMIC_SCALE = 0.25  # pybullet loads humanoid.urdf with globalScaling=0.25 for these clips
_DM_DIRECT = {"pelvis": "root", "r_hip": "right_hip", "r_knee": "right_knee", "r_ankle": "right_ankle",
              "l_hip": "left_hip", "l_knee": "left_knee", "l_ankle": "left_ankle",
              "r_shoulder": "right_shoulder", "r_elbow": "right_elbow", "r_wrist": "right_wrist",
              "l_shoulder": "left_shoulder", "l_elbow": "left_elbow", "l_wrist": "left_wrist"}


def read_urdf_tree(path: Path) -> dict[str, tuple[str, np.ndarray, str]]:
    """{joint name: (parent joint or "root", origin xyz in URDF units, type)} of humanoid.urdf,
    where each joint's child link has the joint's name (DeepMimic's convention)."""
    path = Path(path)
    try:  # pybullet's humanoid.urdf ends with a NUL byte after </robot>
        root = ET.fromstring(path.read_bytes().rstrip(b"\x00\r\n\t "))
    except (OSError, ET.ParseError) as e:
        raise EdgecapError(f"{path}: not a readable URDF ({e})") from None
    child_of, tree = {}, {}
    for joint in root.iter("joint"):
        parent, child = joint.find("parent"), joint.find("child")
        origin = joint.find("origin")
        if parent is None or child is None:
            raise EdgecapError(f"{path}: joint {joint.get('name')!r} lacks <parent> or <child>")
        xyz = np.array([float(v) for v in (origin.get("xyz", "0 0 0") if origin is not None else "0 0 0").split()])
        child_of[child.get("link")] = joint.get("name")
        tree[joint.get("name")] = (parent.get("link"), xyz, joint.get("type"))
    # parent link -> the joint that made it (links are named after their joints)
    return {name: (child_of.get(plink, "root") if plink != "base" else "base", xyz, kind)
            for name, (plink, xyz, kind) in tree.items()}


def _quat_wxyz_to_matrix(q: np.ndarray) -> np.ndarray:
    q = unit(np.asarray(q, np.float64))  # some DeepMimic quaternions are not unit length
    w, x, y, z = q[..., 0], q[..., 1], q[..., 2], q[..., 3]
    return np.stack([
        np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)], -1),
        np.stack([2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)], -1),
        np.stack([2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], -1)], -2)


def _rot_z(angle: np.ndarray) -> np.ndarray:
    c, s, o, i = np.cos(angle), np.sin(angle), np.zeros_like(angle), np.ones_like(angle)
    return np.stack([np.stack([c, -s, o], -1), np.stack([s, c, o], -1), np.stack([o, o, i], -1)], -2)


def load_deepmimic(path: Path, urdf: Path, motion: str) -> RealClip:
    """A DeepMimic clip: JSON {"Loop", "Frames": [[duration, root xyz, root wxyz, joint rotations...]]}
    through the forward kinematics of `urdf` (y up; the wrists are fixed joints)."""
    path = Path(path)
    try:
        frames = np.asarray(json.loads(path.read_text())["Frames"], np.float64)
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise EdgecapError(f"{path}: not a DeepMimic motion file with a 'Frames' list ({e})") from None
    width = 8 + sum(n for _, n in DEEPMIMIC_JOINTS)
    if frames.ndim != 2 or frames.shape[1] != width or len(frames) < 2:
        raise EdgecapError(f"{path}: Frames has shape {frames.shape}, expected (F >= 2, {width})")
    _check_points(path, frames, "Frames")
    tree = read_urdf_tree(urdf)
    needed = [n for n, _ in DEEPMIMIC_JOINTS] + ["root", "right_wrist", "left_wrist"]
    missing = [n for n in needed if n not in tree]
    if missing:
        raise EdgecapError(f"{urdf}: joints {missing} missing from the URDF")
    dt = frames[:-1, 0]
    fps = 1.0 / float(np.median(dt[dt > 0])) if (dt > 0).any() else 30.0
    rot, col = {}, 8
    for name, n in DEEPMIMIC_JOINTS:
        block = frames[:, col : col + n]
        rot[name] = _quat_wxyz_to_matrix(block) if n == 4 else _rot_z(block[:, 0])
        col += n
    pos = {"root": frames[:, 1:4]}
    glob = {"root": _quat_wxyz_to_matrix(frames[:, 4:8])}
    pending = [n for n in tree if n != "root"]
    while pending:  # parents before children
        progressed = False
        for name in list(pending):
            parent, xyz, _ = tree[name]
            parent = "root" if parent in ("base", "root") else parent
            if parent not in pos:
                continue
            pos[name] = pos[parent] + glob[parent] @ (xyz * DEEPMIMIC_SCALE)
            local = rot.get(name)
            glob[name] = glob[parent] if local is None else glob[parent] @ local
            pending.remove(name)
            progressed = True
        if not progressed:
            raise EdgecapError(f"{urdf}: joints {pending} do not connect to the root")
    world = {k: v * 1000.0 for k, v in pos.items()}  # already y up
    named = {j: world[b] for j, b in _DM_DIRECT.items()}
    joints = _assemble(_humanoid_torso(named, world["chest"], world["neck"]))
    return RealClip(f"deepmimic/{path.stem.removeprefix('humanoid3d_')}", "deepmimic", motion, fps, joints)


def resample(clip: RealClip, fps: float) -> np.ndarray:
    """The clip's joints (F', 17, 3) at `fps`, linearly interpolated in time."""
    f = len(clip.joints_mm)
    t_src = np.arange(f) / clip.fps
    t = np.arange(0.0, t_src[-1] + 1e-9, 1.0 / fps)
    flat = clip.joints_mm.reshape(f, -1)
    out = np.stack([np.interp(t, t_src, flat[:, k]) for k in range(flat.shape[1])], -1)
    return out.reshape(len(t), *clip.joints_mm.shape[1:]).astype(np.float32)
