"""Built-in synthetic DensePose data: posed primitive people, ray-cast with exact I/U/V.

Deterministic from a seed (image k depends only on (seed, k)) and vectorised per image over
all (primitive, pixel) pairs, so a 320 x 320 image with up to four people takes tens of
milliseconds on one core. Pipeline per image:
1. People: a 16-joint skeleton (y up, x = the person's left, z = forward) with a sampled height
   and girth, posed from an archetype (standing, walking, arms up/out, reaching, waving, lunging,
   crouching, sitting, or uniform within the joint limits) plus jitter, clipped to anatomical
   limits; feet put on the ground plane.
2. Body surface: 16 tapered capsules (a truncated cone between two sphere caps, with an
   elliptical cross-section) attached to the bones: torso (chest + abdomen), head (+ neck),
   upper/lower arms, hands, upper/lower legs, feet. Each part has a continuous chart:
   U runs along the part's axis (0 at the proximal end: neck for the torso, crown for the head,
   heel for the foot), V runs around it. Parts split front/back (torso, legs, arms): the front
   chart runs from the person's right side (V = 0) across the front to the left side (V = 1),
   the back chart from the left side across the back to the right side. The head splits at the
   sagittal plane: 23 (right) runs from the back (0) to the face (1), 24 (left) from the face
   (0) to the back (1). Hands and feet go once around, from the posterior side (palm edge,
   sole) via the right, front and left. So a mirror image maps I -> FINE_FLIP[I], U -> U,
   V -> 1 - V on every part (see densepose_parts.flip_iuv). These charts follow DensePose's
   part split and label order, not the SMPL chart layout, so U/V values are not comparable
   with models trained on DensePose-COCO.
3. A pinhole camera at 0.7-2 m height looking at the group (x right, y down, z forward);
   several people at different depths, so they occlude each other and may be cut by the frame.
4. Rendering: per-pixel ray-primitive intersection with a z-buffer (nearest hit wins); the hit
   point gives I, U, V, the instance and a normal for Lambert shading of clothes/skin/hair with
   UV-aligned textures, over procedural backgrounds (noise, gradients, stripes, shapes, a room
   with a tiled floor), then a slight blur and sensor noise.
5. Annotation in the DensePose-COCO format: the visible instance mask (RLE), its tight box,
   ~90-130 (`points`) random visible pixels as dp points (box frame scaled to 256 x 256, pixel centres),
   and 14 coarse dp_masks sampled on the 256 x 256 box grid. U and V are quantised to
   1/65535 so the json and the uint16 dense maps agree exactly.
"""

from __future__ import annotations

import json
import zlib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pycocotools.mask as mask_utils

from edgecap import EdgecapError
from edgecap.data.densepose_parts import DP_MASK_SIZE, FINE_TO_COARSE, NUM_COARSE

DP_POINTS = (90, 130)  # dp points per person, about DensePose-COCO's density

# ---------------------------------------------------------------------------------------------
# Skeleton: name, parent, rest offset from the parent in metres (x = left, y = up, z = forward).
_JOINTS = [
    ("pelvis", None, (0.0, 0.0, 0.0)),
    ("spine", "pelvis", (0.0, 0.12, 0.0)),
    ("chest", "spine", (0.0, 0.22, 0.0)),
    ("neck", "chest", (0.0, 0.19, -0.01)),
    ("l_shoulder", "chest", (0.175, 0.15, -0.01)),
    ("l_elbow", "l_shoulder", (0.0, -0.29, 0.0)),
    ("l_wrist", "l_elbow", (0.0, -0.25, 0.0)),
    ("r_shoulder", "chest", (-0.175, 0.15, -0.01)),
    ("r_elbow", "r_shoulder", (0.0, -0.29, 0.0)),
    ("r_wrist", "r_elbow", (0.0, -0.25, 0.0)),
    ("l_hip", "pelvis", (0.09, -0.07, 0.0)),
    ("l_knee", "l_hip", (0.0, -0.42, 0.0)),
    ("l_ankle", "l_knee", (0.0, -0.41, 0.0)),
    ("r_hip", "pelvis", (-0.09, -0.07, 0.0)),
    ("r_knee", "r_hip", (0.0, -0.42, 0.0)),
    ("r_ankle", "r_knee", (0.0, -0.41, 0.0)),
]
_JNAMES = [j[0] for j in _JOINTS]
_PARENTS = [(-1 if p is None else _JNAMES.index(p)) for _, p, _ in _JOINTS]
_OFFSETS = np.array([o for _, _, o in _JOINTS])

# Part kinds and the fine label(s) of each (kind, side): side +1 = the person's left, -1 = right.
TORSO, HEAD, HAND, FOOT, UPPER_LEG, LOWER_LEG, UPPER_ARM, LOWER_ARM = range(8)
# (front, back) labels of the kinds split front/back.
_FRONT_BACK = {
    (TORSO, 0): (2, 1),
    (UPPER_LEG, -1): (9, 7), (UPPER_LEG, 1): (10, 8),
    (LOWER_LEG, -1): (13, 11), (LOWER_LEG, 1): (14, 12),
    (UPPER_ARM, 1): (15, 17), (UPPER_ARM, -1): (16, 18),
    (LOWER_ARM, 1): (19, 21), (LOWER_ARM, -1): (20, 22),
}
_SINGLE = {(HAND, -1): 3, (HAND, 1): 4, (FOOT, 1): 5, (FOOT, -1): 6}
_HEAD_RIGHT, _HEAD_LEFT = 23, 24

# Primitives: kind, side, joint, proximal A and distal B (joint frame at rest), cap radii r0/r1
# (the cross-section radius at A/B is (sx, sy) * r), lateral/anterior aspect sx/sy, the part of
# the chart's U range it covers, and the rest-frame "anterior" reference axis.
_Z, _Y = (0.0, 0.0, 1.0), (0.0, 1.0, 0.0)
_PRIMS = [
    (TORSO, 0, "chest", (0, 0.13, 0), (0, -0.08, 0), 0.075, 0.075, 2.25, 1.45, 0.0, 0.55, _Z),
    (TORSO, 0, "spine", (0, 0.12, 0), (0, -0.13, 0), 0.07, 0.08, 2.0, 1.4, 0.55, 1.0, _Z),
    (HEAD, 0, "neck", (0, 0.19, 0.015), (0, 0.10, 0.025), 0.09, 0.08, 0.85, 1.05, 0.0, 0.85, _Z),
    (HEAD, 0, "neck", (0, 0.07, 0.0), (0, -0.03, 0.0), 0.05, 0.055, 1.05, 1.0, 0.85, 1.0, _Z),
]
for _s, _p in ((1, "l_"), (-1, "r_")):
    _PRIMS += [
        (UPPER_ARM, _s, _p + "shoulder", (0, 0, 0), (0, -0.29, 0), 0.052, 0.042, 1.0, 1.0, 0.0, 1.0, _Z),
        (LOWER_ARM, _s, _p + "elbow", (0, 0, 0), (0, -0.25, 0), 0.042, 0.032, 1.0, 1.0, 0.0, 1.0, _Z),
        (HAND, _s, _p + "wrist", (0, -0.025, 0), (0, -0.115, 0), 0.035, 0.03, 0.55, 1.0, 0.0, 1.0, _Z),
        (UPPER_LEG, _s, _p + "hip", (0, 0, 0), (0, -0.42, 0), 0.085, 0.058, 1.0, 1.0, 0.0, 1.0, _Z),
        (LOWER_LEG, _s, _p + "knee", (0, 0, 0), (0, -0.41, 0), 0.055, 0.04, 1.0, 1.0, 0.0, 1.0, _Z),
        (FOOT, _s, _p + "ankle", (0, -0.035, -0.035), (0, -0.045, 0.14), 0.04, 0.035, 1.15, 0.75, 0.0, 1.0, _Y),
    ]
del _s, _p
_P_KIND = np.array([p[0] for p in _PRIMS])
_P_SIDE = np.array([p[1] for p in _PRIMS])
_P_JOINT = np.array([_JNAMES.index(p[2]) for p in _PRIMS])
_P_A = np.array([p[3] for p in _PRIMS], dtype=np.float64)
_P_B = np.array([p[4] for p in _PRIMS], dtype=np.float64)
_P_R = np.array([(p[5], p[6]) for p in _PRIMS])
_P_ASPECT = np.array([(p[7], p[8]) for p in _PRIMS])
_P_URANGE = np.array([(p[9], p[10]) for p in _PRIMS])


def _rest_frames() -> np.ndarray:
    """(K, 3, 3) columns = lateral (towards the person's left), anterior, along (A -> B)."""
    out = np.zeros((len(_PRIMS), 3, 3))
    for k, p in enumerate(_PRIMS):
        along = _P_B[k] - _P_A[k]
        along /= np.linalg.norm(along)
        ref = np.array(p[11])
        ant = ref - (ref @ along) * along
        ant /= np.linalg.norm(ant)
        out[k] = np.stack([np.cross(ant, along), ant, along], axis=1)
    return out


_P_REST = _rest_frames()
NUM_PRIMITIVES = len(_PRIMS)

# ---------------------------------------------------------------------------------------------
# Pose channels (degrees). All zeros = standing upright, arms hanging, facing body +z.
POSE_CHANNELS = (
    "yaw", "pitch", "roll", "spine_flex", "spine_side", "spine_twist", "neck_flex", "neck_side", "neck_twist",
    *(f"{s}_{c}" for s in ("l", "r") for c in ("shoulder_flex", "shoulder_abd", "shoulder_twist", "elbow_flex",
                                              "wrist_flex", "hip_flex", "hip_abd", "hip_twist", "knee_flex",
                                              "ankle_flex")),
)
_CH = {name: i for i, name in enumerate(POSE_CHANNELS)}
_SIDED = ("shoulder_flex", "shoulder_abd", "shoulder_twist", "elbow_flex", "wrist_flex", "hip_flex", "hip_abd",
          "hip_twist", "knee_flex", "ankle_flex")
# (low, high, jitter std) per channel, sided channels by their base name.
_LIMITS = {
    "yaw": (-180, 180, 0), "pitch": (-15, 35, 4), "roll": (-12, 12, 3),
    "spine_flex": (-25, 70, 8), "spine_side": (-30, 30, 6), "spine_twist": (-45, 45, 10),
    "neck_flex": (-40, 50, 12), "neck_side": (-30, 30, 8), "neck_twist": (-70, 70, 20),
    "shoulder_flex": (-60, 180, 15), "shoulder_abd": (-15, 170, 12), "shoulder_twist": (-70, 70, 20),
    "elbow_flex": (0, 150, 15), "wrist_flex": (-60, 60, 15), "hip_flex": (-30, 125, 8),
    "hip_abd": (-15, 60, 5), "hip_twist": (-40, 40, 8), "knee_flex": (0, 150, 8), "ankle_flex": (-40, 30, 6),
}
# Archetype means: channel -> value (centre) or (left, right), and probabilities. "random"
# draws every channel uniformly within its limits and halves it (the full range is contorted).
_ARCHETYPES = {
    "stand": ({"shoulder_abd": (8, 8), "elbow_flex": (15, 15), "hip_abd": (4, 4), "knee_flex": (4, 4)}, 0.16),
    "walk": ({"hip_flex": (25, -15), "knee_flex": (10, 45), "shoulder_flex": (-20, 25), "elbow_flex": (25, 40),
              "ankle_flex": (10, -15), "shoulder_abd": (6, 6)}, 0.16),
    "arms_up": ({"shoulder_flex": (150, 150), "shoulder_abd": (25, 25), "elbow_flex": (20, 20)}, 0.08),
    "arms_out": ({"shoulder_abd": (85, 85), "elbow_flex": (10, 10)}, 0.08),
    "reach": ({"shoulder_flex": (85, 10), "elbow_flex": (10, 30), "spine_twist": 15, "spine_flex": 10,
               "shoulder_abd": (10, 8)}, 0.1),
    "wave": ({"shoulder_abd": (130, 10), "elbow_flex": (70, 15), "shoulder_flex": (20, 0)}, 0.08),
    "lunge": ({"hip_flex": (70, -15), "knee_flex": (80, 20), "spine_flex": 10, "shoulder_flex": (-30, 40),
               "hip_abd": (5, 5)}, 0.08),
    "crouch": ({"hip_flex": (100, 100), "knee_flex": (120, 120), "ankle_flex": (15, 15), "spine_flex": 30,
                "shoulder_flex": (45, 45), "elbow_flex": (30, 30), "hip_abd": (15, 15)}, 0.08),
    "sit": ({"hip_flex": (85, 85), "knee_flex": (85, 85), "elbow_flex": (60, 60), "shoulder_flex": (20, 20),
             "hip_abd": (8, 8)}, 0.08),
    "random": ({}, 0.1),
}


def _channel_table() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per-channel (lo, hi, std) and per-archetype (A, C) means, archetype probabilities."""
    n = len(POSE_CHANNELS)
    lo, hi, std = np.zeros(n), np.zeros(n), np.zeros(n)
    for name, i in _CH.items():
        lo[i], hi[i], std[i] = _LIMITS[name[2:] if name[:2] in ("l_", "r_") else name]
    means = np.zeros((len(_ARCHETYPES), n))
    for a, (table, _) in enumerate(_ARCHETYPES.values()):
        for name, value in table.items():
            if name in _SIDED:
                means[a, _CH["l_" + name]], means[a, _CH["r_" + name]] = value
            else:
                means[a, _CH[name]] = value
    probs = np.array([p for _, p in _ARCHETYPES.values()])
    return lo, hi, std, means, probs / probs.sum()


_CH_LO, _CH_HI, _CH_STD, _ARCH_MEANS, _ARCH_PROBS = _channel_table()
_RANDOM_ARCH = list(_ARCHETYPES).index("random")
_LEFT_CH = np.array([_CH["l_" + c] for c in _SIDED])
_RIGHT_CH = np.array([_CH["r_" + c] for c in _SIDED])

_SKIN = np.array([(0.98, 0.82, 0.70), (0.93, 0.75, 0.60), (0.85, 0.64, 0.50), (0.76, 0.55, 0.40),
                  (0.60, 0.42, 0.30), (0.45, 0.30, 0.20), (0.33, 0.22, 0.15)])
_HAIR = np.array([(0.08, 0.06, 0.05), (0.25, 0.16, 0.08), (0.50, 0.35, 0.18), (0.80, 0.68, 0.42),
                  (0.55, 0.55, 0.55), (0.15, 0.15, 0.16), (0.45, 0.15, 0.08)])


# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Scene:
    """Everything one image is rendered from. People are rows of the per-person arrays; edit
    them (dataclasses.replace, `select`) to build controlled scenes.

    Camera: p_cam = cam_rotation @ (p_world - cam_position), x right, y down, z forward; pixel
    (col, row) centre = focal * (x, y) / z + principal. World: y up, ground at y = 0.
    """

    image_size: tuple[int, int]  # (H, W)
    focal: float
    principal: np.ndarray  # (2,) cx, cy
    cam_rotation: np.ndarray  # (3, 3) world -> camera
    cam_position: np.ndarray  # (3,) world
    position: np.ndarray  # (P, 3) world position of each pelvis
    angles: np.ndarray  # (P, len(POSE_CHANNELS)) degrees
    scale: np.ndarray  # (P,) body size factor (1 = 1.78 m)
    girth: np.ndarray  # (P,) radius factor
    colors: np.ndarray  # (P, 5, 3) skin, hair, top, bottom, shoes in [0, 1]
    style: np.ndarray  # (P, 4) long sleeves (0/1), shorts (0/1), top pattern (0 plain, 1 stripes, 2 checks), frequency
    light: np.ndarray  # (3,) unit vector towards the light, camera frame
    ambient: float
    background_seed: int
    noise_sigma: float

    @property
    def num_people(self) -> int:
        return len(self.position)

    def select(self, people) -> "Scene":
        """The same scene (camera, background, light) with only the given people."""
        idx = np.asarray(people, dtype=np.int64).reshape(-1)
        return replace(self, position=self.position[idx], angles=self.angles[idx], scale=self.scale[idx],
                       girth=self.girth[idx], colors=self.colors[idx], style=self.style[idx])


@dataclass(frozen=True)
class RenderedScene:
    """image (H, W, 3) uint8; part_index (H, W) uint8 0..24; u, v (H, W) float32 (0 on the
    background, multiples of 1/65535); instance (H, W) uint8, 0 = background, k + 1 = scene person
    k; depth (H, W) float32 camera z in metres, inf on the background."""

    image: np.ndarray
    part_index: np.ndarray
    u: np.ndarray
    v: np.ndarray
    instance: np.ndarray
    depth: np.ndarray


@dataclass(frozen=True)
class DenseGroundTruth:
    """Per-pixel ground truth of N images. instance value k + 1 is person k of that image and
    ann_ids[n][k] its annotation id in the coco dict (-1: too small to be annotated)."""

    part_index: np.ndarray  # (N, H, W) uint8
    u: np.ndarray  # (N, H, W) float32
    v: np.ndarray  # (N, H, W) float32
    instance: np.ndarray  # (N, H, W) uint8
    ann_ids: list[np.ndarray]


class SyntheticDensePose(NamedTuple):
    images: np.ndarray  # (N, H, W, 3) uint8
    coco: dict  # DensePose-COCO annotation dict; file_name = "{image id:06d}.jpg"
    dense: DenseGroundTruth


# ---------------------------------------------------------------------------------------------
def _rotation(axis: int, angle: np.ndarray) -> np.ndarray:
    """Right-handed rotation matrices about x (0), y (1) or z (2); angle (...) radians."""
    angle = np.asarray(angle, dtype=np.float64)
    c, s = np.cos(angle), np.sin(angle)
    out = np.zeros(angle.shape + (3, 3))
    i, j = [(1, 2), (2, 0), (0, 1)][axis]
    out[..., axis, axis] = 1.0
    out[..., i, i] = c
    out[..., j, j] = c
    out[..., i, j] = -s
    out[..., j, i] = s
    return out


def _local_rotations(angles_deg: np.ndarray) -> np.ndarray:
    """(P, C) pose channels -> (P, J, 3, 3) joint rotations (a joint's rotation moves its children)."""
    a = np.deg2rad(angles_deg)
    ch = {name: a[:, i] for name, i in _CH.items()}
    rot = np.tile(np.eye(3), (len(a), len(_JNAMES), 1, 1))
    rx, ry, rz = (lambda x: _rotation(0, x)), (lambda x: _rotation(1, x)), (lambda x: _rotation(2, x))
    rot[:, 0] = ry(ch["yaw"]) @ rx(ch["pitch"]) @ rz(ch["roll"])
    half = ry(ch["spine_twist"] / 2) @ rx(ch["spine_flex"] / 2) @ rz(ch["spine_side"] / 2)
    rot[:, _JNAMES.index("spine")] = half
    rot[:, _JNAMES.index("chest")] = half
    rot[:, _JNAMES.index("neck")] = ry(ch["neck_twist"]) @ rx(ch["neck_flex"]) @ rz(ch["neck_side"])
    for sign, p in ((1.0, "l_"), (-1.0, "r_")):
        rot[:, _JNAMES.index(p + "shoulder")] = (
            rx(-ch[p + "shoulder_flex"]) @ rz(sign * ch[p + "shoulder_abd"]) @ ry(sign * ch[p + "shoulder_twist"])
        )
        rot[:, _JNAMES.index(p + "elbow")] = rx(-ch[p + "elbow_flex"])
        rot[:, _JNAMES.index(p + "wrist")] = rx(-ch[p + "wrist_flex"])
        rot[:, _JNAMES.index(p + "hip")] = (
            rx(-ch[p + "hip_flex"]) @ rz(sign * ch[p + "hip_abd"]) @ ry(sign * ch[p + "hip_twist"])
        )
        rot[:, _JNAMES.index(p + "knee")] = rx(ch[p + "knee_flex"])
        rot[:, _JNAMES.index(p + "ankle")] = rx(-ch[p + "ankle_flex"])
    return rot


def _forward_kinematics(angles_deg: np.ndarray, scale: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """-> global joint rotations (P, J, 3, 3) and positions (P, J, 3), pelvis at the origin."""
    local = _local_rotations(angles_deg)
    offsets = _OFFSETS[None] * scale[:, None, None]
    glob = np.zeros_like(local)
    pos = np.zeros(local.shape[:2] + (3,))
    for j, p in enumerate(_PARENTS):
        if p < 0:
            glob[:, j] = local[:, j]
            continue
        pos[:, j] = pos[:, p] + np.einsum("pab,pb->pa", glob[:, p], offsets[:, j])
        glob[:, j] = glob[:, p] @ local[:, j]
    return glob, pos


def _lowest_point(glob: np.ndarray, pos: np.ndarray, scale: np.ndarray, girth: np.ndarray) -> np.ndarray:
    """(P,) approximate lowest body y relative to the pelvis (feet, knees, hands, seat)."""
    s = scale[:, None]
    low = [pos[:, [_JNAMES.index("l_ankle"), _JNAMES.index("r_ankle")], 1] - 0.075 * s,
           pos[:, [_JNAMES.index("l_knee"), _JNAMES.index("r_knee")], 1] - 0.06 * s * girth[:, None],
           pos[:, [_JNAMES.index("l_wrist"), _JNAMES.index("r_wrist")], 1] - 0.12 * s,
           pos[:, :1, 1] - 0.12 * s * girth[:, None]]
    # Toes: the foot tip in the ankle frame.
    for name in ("l_ankle", "r_ankle"):
        j = _JNAMES.index(name)
        toe = pos[:, j] + np.einsum("pab,b->pa", glob[:, j], np.array([0.0, -0.045, 0.175])) * s
        low.append(toe[:, 1:2] - 0.02 * s)
    return np.concatenate(low, axis=1).min(axis=1)


def _sample_angles(rng: np.random.Generator, n: int) -> np.ndarray:
    arch = rng.choice(len(_ARCH_PROBS), size=n, p=_ARCH_PROBS)
    means = _ARCH_MEANS[arch].copy()
    swap = rng.random(n) < 0.5  # mirror the asymmetric archetypes half of the time
    means[np.ix_(swap, _LEFT_CH)], means[np.ix_(swap, _RIGHT_CH)] = (
        means[np.ix_(swap, _RIGHT_CH)], means[np.ix_(swap, _LEFT_CH)])
    angles = means + rng.normal(size=means.shape) * _CH_STD
    uniform = rng.uniform(_CH_LO, _CH_HI, size=means.shape)
    random = arch == _RANDOM_ARCH
    angles[random] = 0.5 * uniform[random]
    angles[:, _CH["yaw"]] = uniform[:, _CH["yaw"]]
    return np.clip(angles, _CH_LO, _CH_HI)


def sample_scene(rng: np.random.Generator, image_size: tuple[int, int] = (320, 320), max_people: int = 4,
                 num_people: int | None = None) -> Scene:
    """Random people, camera, light and background parameters for one image: 1..max_people
    people, or exactly `num_people` (some may end up hidden or outside the frame)."""
    h, w = image_size
    n = int(rng.integers(1, max_people + 1)) if num_people is None else int(num_people)
    if n < 1:
        raise EdgecapError(f"num_people must be >= 1, got {num_people}")
    focal = float(rng.uniform(0.85, 1.5) * max(h, w))
    principal = np.array([w / 2, h / 2]) + rng.normal(0, 0.02, 2) * np.array([w, h])
    cam_height = rng.uniform(0.7, 2.0)

    scale = np.where(rng.random(n) < 0.08, rng.uniform(0.6, 0.75, n), rng.uniform(0.88, 1.08, n))
    girth = rng.uniform(0.85, 1.3, n)
    angles = _sample_angles(rng, n)
    glob, pos = _forward_kinematics(angles, scale)
    pelvis_height = -_lowest_point(glob, pos, scale, girth)

    # The first person sets the framing (45-95 % of the image height); the others stand
    # at the same depth or behind, at random columns, so overlaps are common.
    depth0 = focal * 1.78 * scale[0] / (rng.uniform(0.45, 0.95) * h)
    depth = depth0 * np.concatenate([[1.0], rng.uniform(0.85, 2.3, n - 1)])
    cols = rng.uniform(0.12, 0.88, n) * w
    pitch = np.arctan2(cam_height - 0.95, depth0) + np.deg2rad(rng.normal(0, 3))
    roll = np.deg2rad(np.clip(rng.normal(0, 3), -8, 8))
    flip = np.diag([-1.0, -1.0, 1.0])  # world (x, y up, z) -> camera (x right, y down, z) looking along +z
    cam_rotation = _rotation(2, roll) @ _rotation(0, pitch) @ flip
    cam_position = np.array([0.0, cam_height, 0.0])
    # Back-project (column, principal row) at each depth, then stand the person on the ground.
    ray = np.stack([(cols - principal[0]) / focal, np.zeros(n), np.ones(n)], axis=1) * depth[:, None]
    position = ray @ cam_rotation + cam_position  # R^T p for row vectors
    position[:, 1] = pelvis_height

    skin = _SKIN[rng.integers(0, len(_SKIN), n)] * rng.uniform(0.92, 1.05, (n, 1))
    hair = _HAIR[rng.integers(0, len(_HAIR), n)] * rng.uniform(0.85, 1.15, (n, 1))
    grey = rng.uniform(0.1, 0.9, (n, 2, 1))
    sat = rng.uniform(0.0, 1.0, (n, 2, 1)) ** 1.5
    cloth = grey * (1 - sat) + rng.uniform(0.03, 0.97, (n, 2, 3)) * sat
    shoes = rng.uniform(0.03, 0.4, (n, 1, 3)) * rng.uniform(0.8, 1.0, (n, 1, 1))
    colors = np.clip(np.concatenate([skin[:, None], hair[:, None], cloth, shoes], axis=1), 0, 1)
    style = np.stack([rng.random(n) < 0.5, rng.random(n) < 0.25, rng.choice(3, n, p=[0.5, 0.3, 0.2]),
                      rng.uniform(3, 9, n)], axis=1).astype(np.float64)

    light = np.array([rng.uniform(-1, 1), rng.uniform(-1.2, -0.2), -rng.uniform(0.4, 1.2)])
    return Scene(
        image_size=(int(h), int(w)), focal=focal, principal=principal, cam_rotation=cam_rotation,
        cam_position=cam_position, position=position, angles=angles, scale=scale, girth=girth, colors=colors,
        style=style, light=light / np.linalg.norm(light), ambient=float(rng.uniform(0.3, 0.5)),
        background_seed=int(rng.integers(0, 2**31 - 1)), noise_sigma=float(rng.uniform(0.0, 5.0)),
    )


# ---------------------------------------------------------------------------------------------
def _primitives(scene: Scene) -> dict:
    """Camera-frame primitives of all people, flattened to (P * K, ...)."""
    p, k = scene.num_people, NUM_PRIMITIVES
    glob, pos = _forward_kinematics(scene.angles, scene.scale)
    s, g = scene.scale[:, None], scene.girth[:, None]
    # Body -> camera: R_cam (world->camera) @ body->world is the pelvis global rotation already.
    rot = scene.cam_rotation[None, None] @ glob[:, _P_JOINT] @ _P_REST[None]  # (P, K, 3, 3)
    joint_cam = (pos + scene.position[:, None] - scene.cam_position) @ scene.cam_rotation.T  # (P, J, 3)
    a_body = np.einsum("pkab,kb->pka", glob[:, _P_JOINT], _P_A) * s[..., None]
    b_body = np.einsum("pkab,kb->pka", glob[:, _P_JOINT], _P_B) * s[..., None]
    origin = joint_cam[:, _P_JOINT] + a_body @ scene.cam_rotation.T
    length = np.linalg.norm(b_body - a_body, axis=-1)
    radius = _P_R[None] * (s * g)[..., None]  # (P, K, 2)
    # Camera -> scaled local frame: q = diag(1/sx, 1/sy, 1) R^T (p - origin).
    inv = np.swapaxes(rot, -1, -2) / np.concatenate([_P_ASPECT, np.ones((k, 1))], axis=1)[None, :, :, None]
    flat = lambda x: x.reshape((p * k,) + x.shape[2:])  # noqa: E731
    return {
        "rot": flat(rot), "inv": flat(inv), "origin": flat(origin), "length": flat(length),
        "r0": flat(radius[..., 0]), "r1": flat(radius[..., 1]),
        "aspect": np.tile(_P_ASPECT, (p, 1)), "kind": np.tile(_P_KIND, p), "side": np.tile(_P_SIDE, p),
        "urange": np.tile(_P_URANGE, (p, 1)), "person": np.repeat(np.arange(p), k),
    }


def _pixel_boxes(prims: dict, scene: Scene) -> np.ndarray:
    """(M, 4) x0, x1, y0, y1 pixel ranges (end-exclusive) covering each primitive's projection:
    the box of the two end spheres' bounding cubes (the capsule lies in their convex hull)."""
    h, w = scene.image_size
    reach = np.maximum(prims["r0"], prims["r1"]) * np.maximum(prims["aspect"].max(1), 1.0)
    ends = prims["origin"][:, None] + prims["rot"][:, None, :, 2] * (prims["length"][:, None, None] * [[0.0], [1.0]])
    cube = np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)], dtype=np.float64)
    corners = (ends[:, :, None] + reach[:, None, None, None] * cube).reshape(len(reach), 16, 3)
    in_front = corners[..., 2].min(1) > 1e-3
    z = np.maximum(corners[..., 2], 1e-3)
    uv = scene.focal * corners[..., :2] / z[..., None] + scene.principal
    lo = np.where(in_front[:, None], np.floor(uv.min(1)), 0)
    hi = np.where(in_front[:, None], np.ceil(uv.max(1)) + 1, [w, h])
    lo = np.clip(lo, 0, [w, h]).astype(np.int64)
    hi = np.clip(hi, 0, [w, h]).astype(np.int64)
    visible = corners[..., 2].max(1) > 1e-3  # entirely behind the camera: nothing to draw
    hi = np.where(visible[:, None], np.maximum(hi, lo), lo)
    return np.stack([lo[:, 0], hi[:, 0], lo[:, 1], hi[:, 1]], axis=1)


def _near_projection(prims: dict, scene: Scene, prim: np.ndarray, px: np.ndarray, py: np.ndarray) -> np.ndarray:
    """Cheap 2D pre-test of pixel centres (px, py): within the projected radius of the
    primitive's projected axis segment? A sphere of radius R at distance D and angle theta off the
    optical axis projects within f sin(a) / (cos(theta + a) cos(theta)) of its centre's image
    (a = asin(R / D)); the capsule is a union of such spheres along its axis."""
    ends = prims["origin"][:, None] + prims["rot"][:, None, :, 2] * (prims["length"][:, None, None] * [[0.0], [1.0]])
    reach = np.maximum(prims["r0"], prims["r1"]) * np.maximum(prims["aspect"].max(1), 1.0)
    dist = np.linalg.norm(ends, axis=-1)  # (M, 2)
    alpha = np.arcsin(np.clip(reach[:, None] / np.maximum(dist, 1e-9), 0, 1))
    theta = np.arccos(np.clip(ends[..., 2] / np.maximum(dist, 1e-9), -1, 1))
    ok = (ends[..., 2] > reach[:, None] + 0.05) & (theta + alpha < 1.4)
    radius = scene.focal * np.sin(alpha) / (np.cos(np.minimum(theta + alpha, 1.4)) * np.cos(theta))
    radius = np.where(ok.all(1), radius.max(1) + 1.5, 1e9)
    xy = scene.focal * ends[..., :2] / np.maximum(ends[..., 2:], 1e-9) + scene.principal  # (M, 2, 2)
    ax, ay = xy[:, 0, 0][prim], xy[:, 0, 1][prim]
    abx, aby = (xy[:, 1, 0] - xy[:, 0, 0])[prim], (xy[:, 1, 1] - xy[:, 0, 1])[prim]
    ex, ey = px - ax, py - ay
    s = np.clip((ex * abx + ey * aby) / np.maximum(abx * abx + aby * aby, 1e-12), 0, 1)
    ex -= s * abx
    ey -= s * aby
    r = radius[prim]
    return ex * ex + ey * ey <= r * r


def _intersect(o: np.ndarray, d: np.ndarray, length: np.ndarray, r0: np.ndarray, r1: np.ndarray):
    """Rays o + t d ((3, M) each, scaled local frames) against the tapered capsule along z in
    [0, L]: truncated cone r(z) = r0 + (r1 - r0) z / L plus spheres r0 at z = 0 and r1 at z = L.
    Returns the nearest t > 0 (inf on a miss) and the surface hit (0/1 cone, 2/3 caps)."""
    ox, oy, oz = o
    dx, dy, dz = d
    slope = (r1 - r0) / length
    rz = r0 + slope * oz
    a = dx * dx + dy * dy - slope * slope * dz * dz
    b = 2 * (ox * dx + oy * dy - slope * dz * rz)
    c = ox * ox + oy * oy - rz * rz
    disc = b * b - 4 * a * c
    ok = (disc >= 0) & (np.abs(a) > 1e-12)
    sq = np.sqrt(np.where(ok, disc, 0.0))
    inv2a = 0.5 / np.where(ok, a, 1.0)
    best = np.full(len(a), np.inf)
    which = np.zeros(len(a), np.int8)
    for i, sign in enumerate((-1.0, 1.0)):
        t = (-b + sign * sq) * inv2a
        z = oz + t * dz
        t = np.where(ok & (t > 0) & (z >= 0) & (z <= length), t, np.inf)
        better = t < best
        best = np.where(better, t, best)
        which[better] = i
    dd = dx * dx + dy * dy + dz * dz
    bxy = ox * dx + oy * dy
    cxy = ox * ox + oy * oy
    for i, (oz_c, r) in enumerate(((oz, r0), (oz - length, r1))):
        bs = bxy + oz_c * dz
        ds = bs * bs - dd * (cxy + oz_c * oz_c - r * r)
        t = (-bs - np.sqrt(np.maximum(ds, 0))) / dd
        t = np.where((ds >= 0) & (t > 0), t, np.inf)
        better = t < best
        best = np.where(better, t, best)
        which[better] = 2 + i
    return best, which


def part_chart(kind: np.ndarray, side: np.ndarray, q: np.ndarray, length: np.ndarray, r0: np.ndarray,
               r1: np.ndarray, urange: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fine label I, U and V of surface points q (M, 3) in the scaled local frame of their
    primitive (x lateral towards the person's left, y anterior, z along); urange (M, 2) is the
    primitive's share of its part's U range. See the module docstring for the charts."""
    psi = np.arctan2(q[:, 0], q[:, 1])  # 0 = front, +pi/2 = left, -pi/2 = right, +-pi = back
    along = np.clip((q[:, 2] + r0) / (length + r0 + r1), 0.0, 1.0)
    u = urange[:, 0] + (urange[:, 1] - urange[:, 0]) * along
    front = np.abs(psi) <= np.pi / 2
    v = np.where(front, (psi + np.pi / 2) / np.pi, (np.mod(psi, 2 * np.pi) - np.pi / 2) / np.pi)
    part = np.zeros(len(q), dtype=np.int64)
    for (k, s), (fl, bl) in _FRONT_BACK.items():
        sel = (kind == k) & (side == s)
        part[sel] = np.where(front[sel], fl, bl)
    for (k, s), label in _SINGLE.items():
        sel = (kind == k) & (side == s)
        part[sel] = label
        v[sel] = (psi[sel] + np.pi) / (2 * np.pi)
    head = kind == HEAD
    left = psi >= 0
    part[head] = np.where(left[head], _HEAD_LEFT, _HEAD_RIGHT)
    v[head] = np.where(left[head], psi[head] / np.pi, 1.0 + psi[head] / np.pi)
    return part, np.clip(u, 0.0, 1.0), np.clip(v, 0.0, 1.0)


def _quantise(x: np.ndarray) -> np.ndarray:
    """Round to multiples of 1/65535 in float32, exactly as uint16 / 65535 reads back."""
    return np.round(x * 65535.0).astype(np.float32) / np.float32(65535)


def _value_noise(rng: np.random.Generator, h: int, w: int, cells: int, channels: int = 3) -> np.ndarray:
    """Smooth noise (channels, h, w) float32 in [0, 1]: a random grid bilinearly upsampled."""
    gh, gw = cells + 1, max(2, int(round(cells * w / h)) + 1)
    grid = rng.random((channels, gh, gw)).astype(np.float32)
    wy = np.clip(1 - np.abs(np.linspace(0, gh - 1, h)[:, None] - np.arange(gh)[None]), 0, 1).astype(np.float32)
    wx = np.clip(1 - np.abs(np.linspace(0, gw - 1, w)[:, None] - np.arange(gw)[None]), 0, 1).astype(np.float32)
    return wy[None] @ grid @ wx.T[None]


def _background(scene: Scene) -> np.ndarray:
    """(3, H, W) float32 in [0, 1]: gradient + noise, stripes, shapes, or a room with a tiled floor."""
    rng = np.random.default_rng(scene.background_seed)
    h, w = scene.image_size
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    c1, c2 = rng.random((3, 1, 1)).astype(np.float32), rng.random((3, 1, 1)).astype(np.float32)
    ang = rng.uniform(0, 2 * np.pi)
    ramp = np.float32(np.cos(ang) / w) * xx + np.float32(np.sin(ang) / h) * yy
    ramp = (ramp - ramp.min()) / max(float(np.ptp(ramp)), 1e-9)
    img = c1 + (c2 - c1) * ramp
    kind = rng.integers(0, 4)
    if kind == 0:  # gradient + smooth noise
        img = 0.55 * img + 0.45 * _value_noise(rng, h, w, int(rng.integers(2, 12)))
    elif kind == 1:  # stripes
        a = rng.uniform(0, np.pi)
        phase = (np.float32(np.cos(a)) * xx + np.float32(np.sin(a)) * yy) / np.float32(rng.uniform(6, 60))
        wave = np.sin(np.float32(2 * np.pi) * phase)
        wave = (wave > rng.uniform(-0.6, 0.6)).astype(np.float32) if rng.random() < 0.6 else 0.5 + 0.5 * wave
        img = img + (rng.random((3, 1, 1)).astype(np.float32) - img) * wave
    elif kind == 2:  # random rectangles and ellipses
        for _ in range(int(rng.integers(4, 16))):
            cx, cy, rx, ry = rng.uniform(0, w), rng.uniform(0, h), rng.uniform(5, w / 3), rng.uniform(5, h / 3)
            x0, x1 = int(max(cx - rx, 0)), int(min(cx + rx + 1, w))
            y0, y1 = int(max(cy - ry, 0)), int(min(cy + ry + 1, h))
            sx, sy = xx[y0:y1, x0:x1], yy[y0:y1, x0:x1]
            m = ((np.abs(sx - cx) < rx) & (np.abs(sy - cy) < ry)) if rng.random() < 0.5 else (
                ((sx - cx) / rx) ** 2 + ((sy - cy) / ry) ** 2 < 1)
            color = rng.random(3).astype(np.float32)
            for ch in range(3):
                img[ch, y0:y1, x0:x1][m] = color[ch]
    else:  # room: wall and a tiled floor seen by this camera
        img = 0.7 * img + 0.3 * _value_noise(rng, h, w, int(rng.integers(2, 6)))
        rx, ry = (xx + 0.5 - scene.principal[0]) / scene.focal, (yy + 0.5 - scene.principal[1]) / scene.focal
        r = scene.cam_rotation  # world direction = R^T d
        wx, wy, wz = (r[0, i] * rx + r[1, i] * ry + r[2, i] for i in range(3))
        down = wy < -1e-6
        t = np.where(down, scene.cam_position[1] / np.maximum(-wy, 1e-6), 0.0)
        tile = rng.uniform(0.3, 1.2)
        checker = (np.floor(wx * t / tile) + np.floor(wz * t / tile)) % 2 > 0
        tiles = rng.random((2, 3, 1, 1)).astype(np.float32)
        fog = np.exp(-t / rng.uniform(8, 30)).astype(np.float32)
        floor = np.where(checker, tiles[0], tiles[1]) * fog + img * (1 - fog)
        img = np.where(down & (t < 200), floor, img)
    img = img * (0.85 + 0.3 * _value_noise(rng, h, w, int(rng.integers(3, 10)), 1))
    return np.clip(img, 0, 1).astype(np.float32)


def _shade(scene: Scene, prims: dict, idx: np.ndarray, q: np.ndarray, which: np.ndarray, u: np.ndarray) -> np.ndarray:
    """(3, n) RGB in [0, 1] of the visible hits; q (3, n) hit points in scaled local frames."""
    kind, person = prims["kind"][idx], prims["person"][idx]
    length, r0, r1 = prims["length"][idx], prims["r0"][idx], prims["r1"][idx]
    slope = (r1 - r0) / length
    cone = which < 2
    # Gradient of the implicit surface in the scaled frame, then to the camera: R diag(1/sx, 1/sy, 1).
    nz = np.where(cone, -slope * (r0 + slope * q[2]), q[2] - np.where(which == 3, length, 0.0))
    nx, ny = q[0] / prims["aspect"][idx, 0], q[1] / prims["aspect"][idx, 1]
    rot = prims["rot"][idx]
    normal = [rot[:, i, 0] * nx + rot[:, i, 1] * ny + rot[:, i, 2] * nz for i in range(3)]
    norm = np.maximum(np.sqrt(normal[0] ** 2 + normal[1] ** 2 + normal[2] ** 2), 1e-12)
    lambert = (normal[0] * scene.light[0] + normal[1] * scene.light[1] + normal[2] * scene.light[2]) / norm
    light = scene.ambient + (1 - scene.ambient) * np.clip(lambert, 0, 1)

    colors = np.transpose(scene.colors, (1, 2, 0))[:, :, person]  # (5, 3, n)
    style = scene.style[person]
    long_sleeve, shorts, pattern, freq = style[:, 0] > 0, style[:, 1] > 0, style[:, 2], style[:, 3]
    psi = np.arctan2(q[0], q[1])
    cos_psi = np.cos(psi)
    head = kind == HEAD
    is_hair = head & ((u < 0.28) | ((cos_psi < -0.1) & (u < 0.72)) | ((np.abs(cos_psi) < 0.35) & (u < 0.45)))
    is_face_mark = head & (((np.abs(u - 0.42) < 0.035) & (np.abs(np.abs(psi) - 0.38) < 0.1))
                           | ((np.abs(u - 0.66) < 0.02) & (np.abs(psi) < 0.25)))
    on_top = (kind == TORSO) | (kind == UPPER_ARM) | ((kind == LOWER_ARM) & long_sleeve)
    on_bottom = (kind == UPPER_LEG) | ((kind == LOWER_LEG) & ~shorts)
    texture = np.where(pattern == 1, 0.75 + 0.25 * (np.sin(2 * np.pi * freq * u) > 0),
                       np.where(pattern == 2, 0.8 + 0.2 * ((np.floor(freq * u) + np.floor(8 * psi / np.pi)) % 2), 1.0))
    base = np.select([is_hair, on_top, on_bottom, kind == FOOT],
                     [colors[1], colors[2] * texture, colors[3], colors[4]], colors[0])
    shade = light * np.where(is_face_mark, 0.25, 1.0)
    return np.clip(base * shade, 0, 1)


def render_scene(scene: Scene) -> RenderedScene:
    """Ray-cast every person's primitives; the nearest hit per pixel wins."""
    h, w = scene.image_size
    prims = _primitives(scene)
    box = _pixel_boxes(prims, scene)
    bw, bh = box[:, 1] - box[:, 0], box[:, 3] - box[:, 2]
    counts = bw * bh
    prim = np.repeat(np.arange(len(counts)), counts)
    local = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    width = np.maximum(bw, 1)[prim]
    col = box[prim, 0] + local % width
    row = box[prim, 2] + local // width
    px, py = col + 0.5, row + 0.5
    keep = _near_projection(prims, scene, prim, px, py)
    prim, col, row, px, py = prim[keep], col[keep], row[keep], px[keep], py[keep]

    # Rays from the camera centre: d = ((col + .5 - cx) / f, (row + .5 - cy) / f, 1), so t = depth.
    rx = (px - scene.principal[0]) / scene.focal
    ry = (py - scene.principal[1]) / scene.focal
    inv = prims["inv"].reshape(-1, 9).T  # (9, M) rows of camera -> scaled-local
    o_all = -np.einsum("mab,mb->am", prims["inv"], prims["origin"])  # (3, M)
    d = np.stack([inv[3 * i][prim] * rx + inv[3 * i + 1][prim] * ry + inv[3 * i + 2][prim] for i in range(3)])
    o = o_all[:, prim]
    t, which = _intersect(o, d, prims["length"][prim], prims["r0"][prim], prims["r1"][prim])

    hit = np.nonzero(np.isfinite(t))[0]
    pix = row[hit] * w + col[hit]
    zbuf = np.full(h * w, np.inf)
    np.minimum.at(zbuf, pix, t[hit])
    win = t[hit] <= zbuf[pix]
    _, first = np.unique(pix[win], return_index=True)  # one winner per pixel even on exact ties
    sel = hit[win][first]
    pix_sel = pix[win][first]

    idx = prim[sel]
    q = o[:, sel] + t[sel] * d[:, sel]
    part, u, v = part_chart(prims["kind"][idx], prims["side"][idx], q.T, prims["length"][idx], prims["r0"][idx],
                            prims["r1"][idx], prims["urange"][idx])
    rgb = _shade(scene, prims, idx, q, which[sel], u)

    part_map = np.zeros(h * w, np.uint8)
    u_map, v_map = np.zeros(h * w, np.float32), np.zeros(h * w, np.float32)
    inst = np.zeros(h * w, np.uint8)
    depth = np.full(h * w, np.inf, np.float32)
    part_map[pix_sel], u_map[pix_sel], v_map[pix_sel] = part, _quantise(u), _quantise(v)
    inst[pix_sel] = prims["person"][idx] + 1
    depth[pix_sel] = t[sel]

    img = _background(scene).reshape(3, h * w)
    img[:, pix_sel] = rgb
    img = img.reshape(3, h, w)
    # Soften the hard ray-cast edges a little ([1, 2, 1] / 4 both ways), then sensor noise.
    pad = np.pad(img, ((0, 0), (1, 1), (1, 1)), mode="edge")
    img = (pad[:, :-2] + 2 * pad[:, 1:-1] + pad[:, 2:]) * np.float32(0.25)
    img = (img[:, :, :-2] + 2 * img[:, :, 1:-1] + img[:, :, 2:]) * np.float32(0.25)
    noise = np.random.default_rng(scene.background_seed + 1).standard_normal(img.shape, dtype=np.float32)
    img = img * np.float32(255) + noise * np.float32(scene.noise_sigma) + np.float32(0.5)
    image = np.clip(img, 0, 255).astype(np.uint8).transpose(1, 2, 0).copy()
    return RenderedScene(image=image, part_index=part_map.reshape(h, w), u=u_map.reshape(h, w),
                         v=v_map.reshape(h, w), instance=inst.reshape(h, w), depth=depth.reshape(h, w))


# ---------------------------------------------------------------------------------------------
def _rle(masks: np.ndarray) -> list[dict]:
    """(n, H, W) bool -> n compressed RLEs with str counts (json-ready)."""
    # pycocotools wants (H, W, n) in Fortran order: the transpose of a C-ordered (n, W, H).
    fortran = np.ascontiguousarray(np.swapaxes(masks, 1, 2)).view(np.uint8).transpose(2, 1, 0)
    out = mask_utils.encode(fortran)
    for r in out:
        r["counts"] = r["counts"].decode("ascii")
    return out


def annotate(rendered: RenderedScene, rng: np.random.Generator, image_id: int, first_ann_id: int,
             points: tuple[int, int] = DP_POINTS, min_area: int = 30,
             min_dp_area: int = 300) -> tuple[list[dict], np.ndarray]:
    """DensePose-COCO annotations of the visible people. People with fewer than `min_area`
    visible pixels get none (ann id -1); below `min_dp_area` they get box and mask only (no dp_*
    fields), like small people in DensePose-COCO. Returns (annotations, ann_ids per person)."""
    h, w = rendered.instance.shape
    n_people = int(rendered.instance.max())
    anns, ann_ids = [], np.full(n_people, -1, dtype=np.int64)
    coarse = FINE_TO_COARSE[rendered.part_index]
    for k in range(n_people):
        mask = rendered.instance == k + 1
        area = int(mask.sum())
        if area < min_area:
            continue
        rows, cols = np.nonzero(mask)
        x0, y0 = int(cols.min()), int(rows.min())
        bw, bh = int(cols.max()) + 1 - x0, int(rows.max()) + 1 - y0
        ann = {
            "id": first_ann_id + len(anns), "image_id": image_id, "category_id": 1, "iscrowd": 0,
            "bbox": [float(x0), float(y0), float(bw), float(bh)], "area": float(area),
            "segmentation": _rle(mask[None])[0], "num_keypoints": 0, "keypoints": [0] * 51,
        }
        if area >= min_dp_area:
            count = min(area, int(rng.integers(points[0], points[1] + 1)))
            pick = np.sort(rng.choice(area, size=count, replace=False))
            pr, pc = rows[pick], cols[pick]
            ann["dp_x"] = np.round((pc + 0.5 - x0) * DP_MASK_SIZE / bw, 4).tolist()
            ann["dp_y"] = np.round((pr + 0.5 - y0) * DP_MASK_SIZE / bh, 4).tolist()
            ann["dp_I"] = rendered.part_index[pr, pc].astype(np.float64).tolist()
            ann["dp_U"] = np.round(rendered.u[pr, pc].astype(np.float64), 7).tolist()
            ann["dp_V"] = np.round(rendered.v[pr, pc].astype(np.float64), 7).tolist()
            # The 256 x 256 box grid: cell (i, j) looks at the pixel under its centre.
            gy = np.floor(y0 + (np.arange(DP_MASK_SIZE) + 0.5) * bh / DP_MASK_SIZE).astype(np.int64)
            gx = np.floor(x0 + (np.arange(DP_MASK_SIZE) + 0.5) * bw / DP_MASK_SIZE).astype(np.int64)
            grid = np.where(mask[np.ix_(gy, gx)], coarse[np.ix_(gy, gx)], 0)
            parts = grid[None] == np.arange(1, NUM_COARSE + 1)[:, None, None]
            present = parts.any(axis=(1, 2))
            rles = _rle(parts)
            ann["dp_masks"] = [rles[c] if present[c] else [] for c in range(NUM_COARSE)]
        ann_ids[k] = ann["id"]
        anns.append(ann)
    return anns, ann_ids


_COCO_KEYPOINTS = ["nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder",
                   "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip", "left_knee",
                   "right_knee", "left_ankle", "right_ankle"]
_COCO_SKELETON = [[16, 14], [14, 12], [17, 15], [15, 13], [12, 13], [6, 12], [7, 13], [6, 7], [6, 8], [7, 9],
                  [8, 10], [9, 11], [2, 3], [1, 2], [1, 3], [2, 4], [3, 5], [4, 6], [5, 7]]


def _coco_header(seed: int, image_size: tuple[int, int], num_images: int) -> dict:
    return {
        "info": {"description": "edgecap synthetic DensePose (primitive people, exact I/U/V)",
                 "version": "1.0", "year": 2025, "contributor": "edgecap.data.synthetic_densepose",
                 "seed": seed, "image_size": list(image_size), "num_images": num_images},
        "licenses": [],
        "images": [], "annotations": [],
        "categories": [{"id": 1, "name": "person", "supercategory": "person", "keypoints": _COCO_KEYPOINTS,
                        "skeleton": _COCO_SKELETON}],
    }


def _image_entry(image_id: int, file_name: str, h: int, w: int) -> dict:
    return {"id": image_id, "file_name": file_name, "width": w, "height": h, "license": 0,
            "coco_url": "", "flickr_url": "", "date_captured": ""}


def _check_args(num_images: int, image_size, max_people: int) -> tuple[int, int]:
    if int(num_images) < 1:
        raise EdgecapError(f"num_images must be >= 1, got {num_images}")
    if len(tuple(image_size)) != 2 or min(image_size) < 32:
        raise EdgecapError(f"image_size must be (H, W) with both >= 32, got {image_size}")
    if not 1 <= int(max_people) <= 255:
        raise EdgecapError(f"max_people must be in 1..255, got {max_people}")
    return int(image_size[0]), int(image_size[1])


def _check_points(points) -> tuple[int, int]:
    if len(tuple(points)) != 2 or not 1 <= int(points[0]) <= int(points[1]):
        raise EdgecapError(f"points must be (min, max) with 1 <= min <= max, got {points}")
    return int(points[0]), int(points[1])


def _render_one(seed: int, index: int, image_size, max_people: int, image_id: int, first_ann_id: int,
                points: tuple[int, int]):
    rng = np.random.default_rng([seed, index])
    rendered = render_scene(sample_scene(rng, image_size, max_people))
    anns, ann_ids = annotate(rendered, rng, image_id, first_ann_id, points=tuple(points))
    return rendered, anns, ann_ids


def generate_densepose(num_images: int, image_size: tuple[int, int] = (320, 320), max_people: int = 4,
                       seed: int = 0, points: tuple[int, int] = DP_POINTS) -> SyntheticDensePose:
    """Render `num_images` images in memory (use `write_synthetic_densepose` for large sets).
    Image ids are 1..N, file names "{id:06d}.jpg"; image k depends only on (seed, k).
    `points`: (min, max) dp points drawn per person (at most its visible pixels)."""
    h, w = _check_args(num_images, image_size, max_people)
    points = _check_points(points)
    coco = _coco_header(seed, (h, w), num_images)
    images = np.zeros((num_images, h, w, 3), np.uint8)
    part = np.zeros((num_images, h, w), np.uint8)
    u, v = np.zeros((num_images, h, w), np.float32), np.zeros((num_images, h, w), np.float32)
    inst = np.zeros((num_images, h, w), np.uint8)
    ann_ids = []
    for i in range(num_images):
        r, anns, ids = _render_one(seed, i, (h, w), max_people, i + 1, len(coco["annotations"]) + 1, points)
        images[i], part[i], u[i], v[i], inst[i] = r.image, r.part_index, r.u, r.v, r.instance
        coco["images"].append(_image_entry(i + 1, f"{i + 1:06d}.jpg", h, w))
        coco["annotations"] += anns
        ann_ids.append(ids)
    return SyntheticDensePose(images, coco, DenseGroundTruth(part, u, v, inst, ann_ids))


def write_synthetic_densepose(out_dir: str | Path, num_images: int, split: str = "train", seed: int | None = None,
                              image_size: tuple[int, int] = (320, 320), max_people: int = 4,
                              image_format: str = "jpg", points: tuple[int, int] = DP_POINTS) -> Path:
    """Write `out_dir/densepose_<split>.json` and, per image, `out_dir/<split>/<id:06d>.<jpg|png>`
    plus `<id:06d>.npz` (dense ground truth, see `load_dense_ground_truth`). Returns the json path.
    `seed=None` derives the seed from the split name, so splits never share images; the same
    explicit seed gives exactly the images of `generate_densepose(..., seed=seed)`."""
    from PIL import Image  # pillow ships with matplotlib

    h, w = _check_args(num_images, image_size, max_people)
    points = _check_points(points)
    if image_format not in ("jpg", "png"):
        raise EdgecapError(f"image_format must be 'jpg' or 'png', got {image_format!r}")
    seed = zlib.crc32(split.encode()) if seed is None else int(seed)
    out_dir = Path(out_dir)
    image_dir = out_dir / split
    image_dir.mkdir(parents=True, exist_ok=True)
    coco = _coco_header(seed, (h, w), num_images)
    for i in range(num_images):
        image_id = i + 1
        r, anns, ids = _render_one(seed, i, (h, w), max_people, image_id, len(coco["annotations"]) + 1, points)
        name = f"{image_id:06d}"
        pil = Image.fromarray(r.image)
        if image_format == "jpg":
            pil.save(image_dir / f"{name}.jpg", quality=92)
        else:
            pil.save(image_dir / f"{name}.png")
        np.savez_compressed(
            image_dir / f"{name}.npz", part_index=r.part_index, instance=r.instance, ann_ids=ids,
            u=np.round(r.u * 65535).astype(np.uint16), v=np.round(r.v * 65535).astype(np.uint16),
        )
        coco["images"].append(_image_entry(image_id, f"{name}.{image_format}", h, w))
        coco["annotations"] += anns
    json_path = out_dir / f"densepose_{split}.json"
    with open(json_path, "w") as f:
        json.dump(coco, f, separators=(",", ":"))
    return json_path


def load_dense_ground_truth(path: str | Path) -> dict:
    """Read a dense ground-truth npz: part_index (H, W) uint8, u, v (H, W) float32 in [0, 1],
    instance (H, W) uint8 (k + 1 = person k), ann_ids (P,) int64 (-1 = not annotated)."""
    path = Path(path)
    if not path.is_file():
        raise EdgecapError(f"dense ground truth {path} not found")
    try:
        with np.load(path, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
    except (OSError, ValueError) as e:
        raise EdgecapError(f"dense ground truth {path} is not a readable npz: {e}") from e
    missing = {"part_index", "u", "v", "instance", "ann_ids"} - set(data)
    if missing:
        raise EdgecapError(f"dense ground truth {path}: missing {sorted(missing)}")
    data["u"] = data["u"].astype(np.float32) / np.float32(65535)
    data["v"] = data["v"].astype(np.float32) / np.float32(65535)
    return data
