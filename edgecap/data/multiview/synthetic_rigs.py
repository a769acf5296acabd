"""Built-in synthetic multi-view data: one person moving inside a random, calibrated camera rig.

The default data of the multi-view triangulation family: small images (96 x 96 by default) that
a 2D heatmap backbone + confidences + a weighted DLT can be trained on with a couple of CPU cores.
Deterministic: sequence s depends only on (split seed, s), sample i only on (split seed, i);
the train and val splits use seeds `2 * seed` and `2 * seed + 1`.

Conventions (labels are exact, computed in float64 from the 3D joints and stored as float32):
- World: millimetres, y up, the floor is the plane y = 0 (the lower ankle joint is 80 mm above
  it in every frame). The subject stays within `_MAX_TRAVEL_MM` of the world origin.
- Camera: OpenCV. X_cam = R X_world + t (t in mm); x right, y down, z forward (optical axis).
  K = [[f, 0, cx], [0, f, cy], [0, 0, 1]] (square pixels, no skew); dist = OpenCV
  (k1, k2, p1, p2, k3) with k3 = 0. Cameras are `edgecap.data.multiview.cameras.Camera`s.
- Pixels: integer coordinates are pixel centres, (0, 0) is the centre of the top-left pixel and
  the image spans [-0.5, W - 0.5] x [-0.5, H - 0.5]: cv2.projectPoints' principal point is given
  in these coordinates and the renderer shades pixel (row, col) at the point (col, row).
  `points_2d` are cv2.projectPoints(X, R, t, K, dist): the distorted position as seen in the
  image. `points_2d_undistorted` = the projection with P = K[R|t] (no distortion); `projections`
  hold these P.
- Visibility of joint j in a view (exact with respect to the rendered image): it projects into the
  image (-0.5 <= u < W - 0.5, same for v) with camera depth z > 200 mm, and at its pixel
  (floor(u + 0.5), floor(v + 0.5)) the renderer drew either one of the joint's own body parts
  (e.g. the thigh or shin at the knee) or a surface that is not nearer than the joint (depth
  test against the z-buffer). A joint behind an occluder or behind another body part is invisible.
- Images: RGB uint8 0..255 (not normalised); `RigSamples.sample` returns them channel-first
  [V, 3, H, W].
- Approximate (the picture, not the labels): a capsule is drawn between its distorted end points
  with locally estimated pixel radii (limbs are not bent by the distortion), its surface depth is
  interpolated linearly along its axis, and the room's pixel rays are interpolated between exactly
  undistorted ones every 4 pixels.

What is random (per sequence unless said otherwise):
- Motion: `edgecap.data.synthetic_motion`'s joint-angle trajectories and kinematic skeleton (body
  height, bone jitter, walking/reaching/turning/crouching/idle mixes), root travel scaled into a
  disc of radius `_MAX_TRAVEL_MM` (feet may slide; single frames are what the model sees).
- Rig: 2..8 cameras (`min_cameras`..`max_cameras`) on a full ring or an arc of 90-200 degrees
  around the origin, azimuth jitter, heights 0.5-2.5 m, distances 2.5-5 m (narrowed so a 1.75 m
  person spans 45-95 % of the image height where that range allows), field of view 40-80
  degrees, principal point jitter, roll within +-8 degrees, looking at a point near the
  subject's area; with probability `cut_prob` a camera aims off to the side so the subject is
  cut by the frame. Distortion (if `distortion`): k1 in [-0.25, 0.08], k2 = k1^2 / 2 + [0.002,
  0.04] (so r (1 + k1 r^2 + k2 r^4) is monotonic for every r: no point far outside the view folds
  back into the image), |p1|, |p2| < 0.002.
- Scene: a room (checker floor, panelled cylindrical wall of radius 6-9 m, ceiling), the same in
  every camera; axis-aligned boxes (poles and crates) standing between a camera and the subject
  with probability `occluder_prob` per camera (if `occluders`): 3D objects, so every camera sees
  them, in front of the body in that camera's view and elsewhere in others (the subject may
  walk through one; the z-buffer then shows whichever surface is nearer).
- Body: capsules per bone (torso = three capsules, neck, head, face, upper/lower arms and legs,
  feet), each with a radius, a colour (a fixed hue per limb, left and right differ, plus a
  per-sequence hue shift and per-part jitter) and a fixed pattern per part (plain, stripes across,
  stripes along, checker; period in mm on the body, so it is consistent across views).
- Per sample: which `views` of the rig's cameras are used and in which order, brightness/white
  balance gain, blur, sensor noise.

Rendering is numpy + cv2 with a z-buffer: the static scene (room + occluders, ray-cast through
the undistorted pixel rays) per camera is computed once and cached; the body capsules are
rasterised analytically per frame (distorted end points and radii, per-pixel surface depth).
A 96 x 96 view takes a millisecond or two on one core once its camera's static scene is cached
(ray-casting that takes a few milliseconds, once per camera and sequence).
"""

from __future__ import annotations

import colorsys
from collections import OrderedDict
from dataclasses import dataclass
from typing import ClassVar

import cv2
import numpy as np

from edgecap import EdgecapError
from edgecap.data.multiview.cameras import Camera
from edgecap.data.skeletons import H36M
from edgecap.data.synthetic_motion import (
    _ANKLE_HEIGHT_MM,
    _NAMES,
    _OFFSETS,
    _forward_kinematics,
    _local_rotations,
    _look_at,
    _trajectories,
)

_MAX_TRAVEL_MM = 700.0
_NEAR_MM = 200.0  # body parts and joints nearer to a camera than this are not drawn / invisible
_MIN_RADIUS_PX = 1.0  # limbs are at least 2 px wide, so a joint's own pixel is covered by its part
JOINTS = H36M.joints
NUM_JOINTS = len(JOINTS)
_J17 = np.array([_NAMES.index(j) for j in JOINTS])
_K = {name: i for i, name in enumerate(_NAMES)}

# Body parts, id = position + 1. Limbs have a fixed hue (degrees, before the per-sequence shift) and
# pattern (0 plain, 1 stripes across the bone, 2 stripes along it, 3 checker); the torso's colour and
# pattern are drawn per sequence, neck and face are skin, the head hair, the feet shoes.
PARTS = ("torso", "neck", "head", "face", "l_upper_arm", "l_forearm", "r_upper_arm", "r_forearm",
         "l_thigh", "l_shin", "r_thigh", "r_shin", "l_foot", "r_foot")
PART_ID = {name: i + 1 for i, name in enumerate(PARTS)}
NUM_PARTS = len(PARTS)
OCCLUDER_ID = 100  # occluder o is drawn with id 100 + o; 0 is the room
_LIMB_HUE = {"l_upper_arm": 0, "l_forearm": 90, "r_upper_arm": 180, "r_forearm": 270,
             "l_thigh": 45, "l_shin": 135, "r_thigh": 225, "r_shin": 315}
_PATTERN = {"neck": 0, "head": 0, "face": 0, "l_upper_arm": 1, "l_forearm": 0, "r_upper_arm": 2,
            "r_forearm": 3, "l_thigh": 2, "l_shin": 1, "r_thigh": 3, "r_shin": 0, "l_foot": 0, "r_foot": 0}

# Capsules: part, end a, end b (22-joint names or derived points), radius at a and b (mm).
_CAPSULES = [
    ("torso", "pelvis", "thorax", 105.0, 110.0),
    ("torso", "l_hip", "l_shoulder", 80.0, 72.0),
    ("torso", "r_hip", "r_shoulder", 80.0, 72.0),
    ("neck", "thorax", "neck", 58.0, 50.0),
    ("head", "head_low", "head_high", 92.0, 92.0),
    ("face", "face", "face", 70.0, 70.0),
    ("l_upper_arm", "l_shoulder", "l_elbow", 50.0, 40.0),
    ("l_forearm", "l_elbow", "l_wrist", 40.0, 32.0),
    ("r_upper_arm", "r_shoulder", "r_elbow", 50.0, 40.0),
    ("r_forearm", "r_elbow", "r_wrist", 40.0, 32.0),
    ("l_thigh", "l_hip", "l_knee", 80.0, 56.0),
    ("l_shin", "l_knee", "l_ankle", 54.0, 42.0),
    ("r_thigh", "r_hip", "r_knee", 80.0, 56.0),
    ("r_shin", "r_knee", "r_ankle", 54.0, 42.0),
    ("l_foot", "l_ankle", "l_toe", 42.0, 34.0),
    ("r_foot", "r_ankle", "r_toe", 42.0, 34.0),
]
_CAP_PART = np.array([PART_ID[c[0]] for c in _CAPSULES], dtype=np.uint8)
_CAP_RADIUS = np.array([(c[3], c[4]) for c in _CAPSULES])
_POINTS = list(_NAMES) + ["head_low", "head_high", "face", "l_toe", "r_toe"]
_CAP_A = np.array([_POINTS.index(c[1]) for c in _CAPSULES])
_CAP_B = np.array([_POINTS.index(c[2]) for c in _CAPSULES])

# The body parts a joint belongs to: seeing one of them at the joint's pixel means the joint is seen.
_JOINT_PARTS = {
    "pelvis": ("torso",), "r_hip": ("torso", "r_thigh"), "r_knee": ("r_thigh", "r_shin"),
    "r_ankle": ("r_shin", "r_foot"), "l_hip": ("torso", "l_thigh"), "l_knee": ("l_thigh", "l_shin"),
    "l_ankle": ("l_shin", "l_foot"), "spine": ("torso",), "thorax": ("torso", "neck"),
    "neck": ("neck", "head", "face"), "head": ("head", "face"), "l_shoulder": ("torso", "l_upper_arm"),
    "l_elbow": ("l_upper_arm", "l_forearm"), "l_wrist": ("l_forearm",), "r_shoulder": ("torso", "r_upper_arm"),
    "r_elbow": ("r_upper_arm", "r_forearm"), "r_wrist": ("r_forearm",),
}
_OWN = np.zeros((NUM_JOINTS, 256), dtype=bool)
for _j, _name in enumerate(JOINTS):
    _OWN[_j, [PART_ID[p] for p in _JOINT_PARTS[_name]]] = True
del _j, _name


@dataclass(frozen=True)
class RigDataConfig:
    """Synthetic multi-view rigs. `sequences` / `val_sequences` clips of `frames` frames each;
    one sample = one frame seen by `views` of the sequence's 2..8 cameras (fewer cameras: padded)."""

    seed: int = 0
    sequences: int = 48
    val_sequences: int = 8
    frames: int = 40
    fps: float = 12.5  # motion sampling rate: 40 frames span 3.2 s of motion
    image_size: int = 96  # square images, pixels
    min_cameras: int = 2
    max_cameras: int = 8
    views: int = 4  # cameras per sample fed to the model
    distortion: bool = True
    occluders: bool = True
    occluder_prob: float = 0.35  # per camera: a pole or crate stands between it and the subject
    cut_prob: float = 0.15  # per camera: it aims off so the subject is partly outside the frame
    noise: float = 0.02  # sensor noise std, in units of full intensity (1 = 255)

    # (low, high) of every number; a value outside is refused before any data is made.
    RANGES: ClassVar[dict[str, tuple[float, float]]] = {
        "seed": (0, 2**32 - 1), "sequences": (1, 1_000_000), "val_sequences": (1, 1_000_000),
        "frames": (1, 100_000), "fps": (0.1, 1_000.0), "image_size": (32, 1024), "min_cameras": (1, 64),
        "max_cameras": (1, 64), "views": (1, 64), "occluder_prob": (0.0, 1.0), "cut_prob": (0.0, 1.0),
        "noise": (0.0, 0.5)}
    _INTS: ClassVar[tuple[str, ...]] = ("seed", "sequences", "val_sequences", "frames", "image_size",
                                        "min_cameras", "max_cameras", "views")

    def validate(self) -> None:
        for name, (low, high) in self.RANGES.items():
            value = getattr(self, name)
            if name in self._INTS and (isinstance(value, bool) or not isinstance(value, (int, np.integer))):
                raise EdgecapError(f"data.{name} must be a whole number, got {value!r}")
            if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
                raise EdgecapError(f"data.{name} must be a number, got {value!r}")
            if not low <= value <= high:  # NaN fails too
                raise EdgecapError(f"data.{name} must be in [{low}, {high}], got {value!r}")
        for name in ("distortion", "occluders"):
            if not isinstance(getattr(self, name), bool):
                raise EdgecapError(f"data.{name} must be true or false, got {getattr(self, name)!r}")
        if self.min_cameras > self.max_cameras:
            raise EdgecapError(
                f"data.min_cameras ({self.min_cameras}) must not exceed data.max_cameras ({self.max_cameras})")


@dataclass(frozen=True)
class RigSequence:
    """One clip: the subject's motion, the rig that films it and how everything looks.
    Edit it with dataclasses.replace to build controlled cases (e.g. place an occluder)."""

    points: np.ndarray  # (F, 27, 3) world mm: the 22 kinematic joints + head_low/high, face, toes
    cameras: tuple[Camera, ...]
    colours: np.ndarray  # (NUM_PARTS + 1, 3) RGB in [0, 1] by part id (row 0 unused)
    patterns: np.ndarray  # (NUM_PARTS + 1,) int pattern by part id
    periods: np.ndarray  # (NUM_PARTS + 1,) stripe period (mm)
    contrast: np.ndarray  # (NUM_PARTS + 1,) darkening of the dark stripes
    girth: float  # capsule radius factor
    room: np.ndarray  # (4,) floor tile (mm), wall radius (mm), ceiling height (mm), wall panel width (mm)
    room_colours: np.ndarray  # (12, 3): floor a, floor b, ceiling, skirting, 8 wall panels
    occluders: np.ndarray  # (O, 2, 3) world mm: min and max corner of each axis-aligned box
    occluder_colours: np.ndarray  # (O, 3)
    seed: int  # the sequence's own seed (textures of its static scene)

    @property
    def joints_3d(self) -> np.ndarray:
        """(F, 17, 3) world mm, h36m joint order."""
        return self.points[:, _J17]

    @property
    def num_cameras(self) -> int:
        return len(self.cameras)


@dataclass(frozen=True)
class RenderedView:
    """One camera's image of one frame and its exact labels (see the module docstring)."""

    image: np.ndarray  # (H, W, 3) uint8 RGB
    part: np.ndarray  # (H, W) uint8: 0 room, 1..NUM_PARTS body part (PARTS order), 100 + o occluder o
    depth: np.ndarray  # (H, W) float32 camera z of the drawn surface, mm
    points_2d: np.ndarray  # (17, 2) float64 distorted pixels (cv2.projectPoints)
    points_2d_undistorted: np.ndarray  # (17, 2) float64 pixels of P = K [R | t]
    visibility: np.ndarray  # (17,) bool


# ---------------------------------------------------------------------------------------------
def _motion(rng: np.random.Generator, frames: int, fps: float) -> np.ndarray:
    """(F, 27, 3) world mm: forward kinematics of synthetic_motion's trajectories, feet on y = 0
    (ankle joint at 80 mm), root travel centred on the origin and kept within _MAX_TRAVEL_MM."""
    t = np.arange(frames) / fps
    height = rng.uniform(0.85, 1.15)
    offsets = _OFFSETS[None] * height * rng.uniform(0.95, 1.05, (1, len(_NAMES), 1))
    ch, yaw, disp = _trajectories(rng, 1, t)
    body = _forward_kinematics(_local_rotations(ch, yaw, 1, frames), offsets)[0]  # (F, 22, 3)
    foot = body[:, [_K["l_ankle"], _K["r_ankle"]], 1].min(-1)
    body[..., 1] += (_ANKLE_HEIGHT_MM - foot)[:, None]
    disp = disp[0] - disp[0].mean(0)
    reach = float(np.linalg.norm(disp, axis=-1).max(initial=0.0))
    if reach > _MAX_TRAVEL_MM:
        disp *= _MAX_TRAVEL_MM / reach
    body[..., 0] += disp[:, None, 0]
    body[..., 2] += disp[:, None, 1]
    return np.concatenate([body, _derived_points(body)], axis=1)


def _derived_points(body: np.ndarray) -> np.ndarray:
    """(F, 5, 3): head capsule ends, face centre and toes from the 22 kinematic joints."""
    neck, head, nose = body[:, _K["neck"]], body[:, _K["head"]], body[:, _K["nose"]]
    axis = head - neck
    axis /= np.maximum(np.linalg.norm(axis, axis=-1, keepdims=True), 1e-9)
    centre = neck + 0.45 * (head - neck)
    to_nose = nose - centre
    to_nose /= np.maximum(np.linalg.norm(to_nose, axis=-1, keepdims=True), 1e-9)
    left = body[:, _K["l_hip"]] - body[:, _K["r_hip"]]
    forward = np.cross(left, np.array([0.0, 1.0, 0.0]))  # body frame: x left, y up, z forward
    forward /= np.maximum(np.linalg.norm(forward, axis=-1, keepdims=True), 1e-9)
    toes = [body[:, _K[a]] + 140.0 * forward - np.array([0.0, 45.0, 0.0]) for a in ("l_ankle", "r_ankle")]
    return np.stack([centre - 12.0 * axis, centre + 22.0 * axis, centre + 35.0 * to_nose, *toes], axis=1)


def _rig(rng: np.random.Generator, cfg: RigDataConfig) -> tuple[Camera, ...]:
    """2..8 cameras on a ring or an arc around the origin, looking at the subject's area."""
    size = cfg.image_size
    n = int(rng.integers(cfg.min_cameras, cfg.max_cameras + 1))
    ring = rng.random() < 0.5
    span = 2 * np.pi if ring else np.deg2rad(rng.uniform(90, 200))
    step = span / n if ring else span / max(n - 1, 1)
    az = rng.uniform(0, 2 * np.pi) + step * np.arange(n) + rng.uniform(-0.25, 0.25, n) * step
    half_fov = np.deg2rad(rng.uniform(40, 80, n)) / 2
    focal = (size / 2) / np.tan(half_fov)
    # 2.5-5 m, narrowed so that a 1.75 m person spans 45-95 % of the image height.
    lo = np.clip(focal * 1750 / (0.95 * size), 2500, 5000)
    hi = np.clip(focal * 1750 / (0.45 * size), 2500, 5000)
    distance = rng.uniform(lo, np.maximum(hi, lo))
    height = rng.uniform(500, 2500, n)
    position = np.stack([distance * np.sin(az), height, distance * np.cos(az)], axis=1)
    target = np.stack([rng.normal(0, 150, n), rng.uniform(700, 1100, n), rng.normal(0, 150, n)], axis=1)
    # Aim some cameras off the subject: shift the target sideways/up by 60-100 % of the half view.
    cut = rng.random(n) < cfg.cut_prob
    view = target - position
    right = np.cross(view, [0.0, 1.0, 0.0])
    right /= np.linalg.norm(right, axis=1, keepdims=True)
    angle = rng.uniform(0, 2 * np.pi, n)
    shift = distance * np.tan(half_fov) * rng.uniform(0.6, 1.0, n)
    offset = (np.cos(angle)[:, None] * right + np.sin(angle)[:, None] * np.array([0.0, 1.0, 0.0])) * shift[:, None]
    target = target + cut[:, None] * offset
    rotation = _look_at(position, target, np.deg2rad(np.clip(rng.normal(0, 3, n), -8, 8)))
    principal = (size - 1) / 2 + rng.normal(0, 0.015 * size, (n, 2))
    if cfg.distortion:
        k1 = rng.uniform(-0.25, 0.08, n)
        k2 = 0.5 * k1**2 + rng.uniform(0.002, 0.04, n)
        p = rng.uniform(-0.002, 0.002, (n, 2))
        dist = np.stack([k1, k2, p[:, 0], p[:, 1], np.zeros(n)], axis=1)
    else:
        dist = np.zeros((n, 5))
    cameras = []
    for c in range(n):
        K = np.array([[focal[c], 0.0, principal[c, 0]], [0.0, focal[c], principal[c, 1]], [0.0, 0.0, 1.0]])
        R = rotation[c]
        cameras.append(Camera(f"cam{c}", (size, size), K, dist[c], R, -R @ position[c]))
    return tuple(cameras)


def _hsv(h_deg: float, s: float, v: float) -> np.ndarray:
    return np.array(colorsys.hsv_to_rgb((h_deg / 360.0) % 1.0, s, v))


def _appearance(rng: np.random.Generator) -> dict:
    colours = np.zeros((NUM_PARTS + 1, 3))
    patterns = np.zeros(NUM_PARTS + 1, dtype=np.int64)
    shift = rng.uniform(-15, 15)
    skin = _hsv(rng.uniform(18, 32), rng.uniform(0.3, 0.6), rng.uniform(0.35, 0.95))
    for name in PARTS:
        i = PART_ID[name]
        if name in _LIMB_HUE:
            hue = _LIMB_HUE[name] + shift + rng.uniform(-4, 4)
            colours[i] = _hsv(hue, rng.uniform(0.65, 0.9), rng.uniform(0.6, 0.95))
        patterns[i] = _PATTERN.get(name, 0)
    colours[PART_ID["torso"]] = _hsv(rng.uniform(0, 360), rng.uniform(0.1, 0.4), rng.uniform(0.45, 0.9))
    patterns[PART_ID["torso"]] = rng.integers(1, 4)
    colours[PART_ID["neck"]] = colours[PART_ID["face"]] = skin
    colours[PART_ID["head"]] = _hsv(rng.uniform(10, 40), rng.uniform(0.2, 0.7), rng.uniform(0.08, 0.45))
    colours[PART_ID["l_foot"]] = colours[PART_ID["r_foot"]] = _hsv(rng.uniform(0, 360), rng.uniform(0, 0.3),
                                                                   rng.uniform(0.1, 0.3))
    return {"colours": colours, "patterns": patterns, "periods": rng.uniform(50, 110, NUM_PARTS + 1),
            "contrast": rng.uniform(0.3, 0.5, NUM_PARTS + 1), "girth": float(rng.uniform(0.9, 1.15))}


def _scene(rng: np.random.Generator, cfg: RigDataConfig, cameras: tuple[Camera, ...]) -> dict:
    """Room parameters and occluder boxes between some cameras and the subject's area."""
    room = np.array([rng.uniform(300, 800), rng.uniform(6000, 9000), rng.uniform(2800, 4000), rng.uniform(400, 1500)])
    grey = rng.uniform(0.2, 0.85, (2, 1))
    floor = grey + rng.uniform(-0.08, 0.08, (2, 3))
    if rng.random() < 0.5:
        floor[1] = floor[0] * rng.uniform(0.55, 0.8)
    wall = rng.uniform(0.25, 0.9, (8, 1)) * (1 - rng.uniform(0, 0.4, (8, 1))) + rng.uniform(0, 0.25, (8, 3))
    ceiling = rng.uniform(0.6, 0.95) * np.ones((1, 3))
    skirting = rng.uniform(0.05, 0.4, (1, 3))
    boxes, colours = [], []
    if cfg.occluders:
        for cam in cameras:
            if rng.random() >= cfg.occluder_prob:
                continue
            centre = cam.center * np.array([1.0, 0.0, 1.0])
            side = np.cross(centre, [0.0, 1.0, 0.0])
            side /= max(np.linalg.norm(side), 1e-9)
            base = centre * rng.uniform(0.4, 0.7) + side * rng.normal(0, 250)
            gap = min(np.linalg.norm((other.center - base)[[0, 2]]) for other in cameras)
            if rng.random() < 0.55:  # pole
                half = np.array([rng.uniform(40, 110), 0.0, rng.uniform(40, 110)])
                top = rng.uniform(1900, room[2])
            else:  # crate / table
                half = np.array([rng.uniform(200, 450), 0.0, rng.uniform(150, 350)])
                top = rng.uniform(500, 1300)
            if gap < half.max() + 500:  # would stand on top of (or right in front of) another camera
                continue
            boxes.append([base - half, base + half + np.array([0.0, top, 0.0])])
            colours.append(rng.uniform(0.1, 0.9) * (1 - rng.uniform(0, 0.5)) + rng.uniform(0, 0.3, 3))
    return {"room": room, "room_colours": np.clip(np.concatenate([floor, ceiling, skirting, wall]), 0, 1),
            "occluders": np.array(boxes, dtype=np.float64).reshape(-1, 2, 3),
            "occluder_colours": np.clip(np.array(colours, dtype=np.float64).reshape(-1, 3), 0, 1)}


def make_sequence(cfg: RigDataConfig, seed: int, index: int) -> RigSequence:
    """Sequence `index` of the split with seed `seed` (independent of how many there are)."""
    rng = np.random.default_rng([seed, index])
    points = _motion(rng, cfg.frames, cfg.fps)
    cameras = _rig(rng, cfg)
    return RigSequence(points=points, cameras=cameras, **_appearance(rng), **_scene(rng, cfg, cameras),
                       seed=int(rng.integers(0, 2**31 - 1)))


# ---------------------------------------------------------------------------------------------
def _value_noise(rng: np.random.Generator, h: int, w: int, cells: int, channels: int = 1) -> np.ndarray:
    """Smooth noise (h, w[, channels]) float32 in [0, 1]."""
    grid = rng.random((cells + 1, cells + 1, channels)).astype(np.float32)
    out = cv2.resize(grid, (w, h), interpolation=cv2.INTER_LINEAR)
    return out if channels > 1 else out.reshape(h, w)


def _pixel_rays(cam: Camera, step: int = 4) -> np.ndarray:
    """(H * W, 2) normalised undistorted coordinates (x / z, y / z) of every pixel centre, row-major:
    undistorted exactly on a grid every `step` pixels and bilinearly interpolated in between (the
    map is smooth: a few hundredths of a pixel at most, for the room and occluders only)."""
    w, h = cam.size
    gx, gy = np.linspace(0, w - 1, (w - 2) // step + 2), np.linspace(0, h - 1, (h - 2) // step + 2)
    grid = np.stack(np.meshgrid(gx, gy), -1).reshape(-1, 1, 2)
    criteria = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 30, 1e-10)
    norm = cv2.undistortPoints(grid, cam.K, cam.dist, criteria=criteria).reshape(len(gy), len(gx), 2)

    def hat(n: int, g: np.ndarray) -> np.ndarray:  # (n, len(g)) linear interpolation weights
        pos = np.arange(n)[:, None]
        spacing = g[1] - g[0]
        return np.clip(1 - np.abs(pos - g[None]) / spacing, 0, 1)

    wy, wx = hat(h, gy), hat(w, gx)
    out = np.stack([wy @ norm[..., k] @ wx.T for k in range(2)], -1)
    return out.reshape(-1, 2)


def render_static(seq: RigSequence, cam_index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The room and occluders seen by one camera, ray-cast through its undistorted pixel rays:
    image (H, W, 3) float32 RGB in [0, 1], depth (H, W) float32 camera z in mm, part ids (H, W)
    uint8 (0 room, 100 + o occluder o). Deterministic from the sequence and the camera."""
    cam = seq.cameras[cam_index]
    w, h = cam.size
    rng = np.random.default_rng([seq.seed, cam_index])
    norm = _pixel_rays(cam)
    ray = np.concatenate([norm, np.ones((len(norm), 1))], axis=1)  # camera frame, z = 1: lambda = depth
    d = ray @ cam.R  # world directions (R^T r)
    c = cam.center
    tile, radius, ceiling, panel = seq.room
    dy = d[:, 1]
    with np.errstate(divide="ignore", invalid="ignore"):
        lam_floor = np.where(dy < -1e-9, -c[1] / dy, np.inf)
        lam_ceil = np.where(dy > 1e-9, (ceiling - c[1]) / dy, np.inf)
    a = np.maximum(d[:, 0] ** 2 + d[:, 2] ** 2, 1e-12)
    b = 2 * (c[0] * d[:, 0] + c[2] * d[:, 2])
    cc = c[0] ** 2 + c[2] ** 2 - radius**2
    lam_wall = (-b + np.sqrt(np.maximum(b * b - 4 * a * cc, 0))) / (2 * a)
    lam = np.stack([lam_floor, lam_ceil, lam_wall], axis=1)
    kind = lam.argmin(1)
    depth = lam[np.arange(len(lam)), kind]
    p = c + depth[:, None] * d
    col = seq.room_colours
    checker = (np.floor(p[:, 0] / tile) + np.floor(p[:, 2] / tile)).astype(np.int64) % 2
    arc = (np.arctan2(p[:, 2], p[:, 0]) + np.pi) * radius
    panel_id = 4 + (np.floor(arc / panel).astype(np.int64) % 8)
    wall_id = np.where(p[:, 1] < 150, 3, panel_id)
    idx = np.select([kind == 0, kind == 1], [checker, np.full_like(checker, 2)], wall_id)
    image = col[idx] * np.clip(1.15 - depth / 15000.0, 0.6, 1.0)[:, None]
    ids = np.zeros(len(depth), dtype=np.uint8)
    if len(seq.occluders):
        inv = 1.0 / np.where(np.abs(d) < 1e-12, 1e-12, d)
        face_shade = np.array([0.78, 1.0, 0.9])
        for o, (lo, hi) in enumerate(seq.occluders):
            t1, t2 = (lo - c) * inv, (hi - c) * inv
            near = np.minimum(t1, t2)
            t_in, t_out = near.max(1), np.maximum(t1, t2).min(1)
            hit = (t_in <= t_out) & (t_in > 0) & (t_in < depth)
            depth = np.where(hit, t_in, depth)
            ids[hit] = OCCLUDER_ID + o
            image[hit] = seq.occluder_colours[o] * face_shade[near[hit].argmax(1)][:, None]
    image = image.reshape(h, w, 3).astype(np.float32)
    image *= 0.8 + 0.4 * _value_noise(rng, h, w, int(rng.integers(3, 9)))[..., None]
    image += 0.06 * (_value_noise(rng, h, w, int(rng.integers(8, 24)), 3) - 0.5)
    return np.clip(image, 0, 1), depth.reshape(h, w).astype(np.float32), ids.reshape(h, w)


def _project_cam(points_cam: np.ndarray, cam: Camera) -> np.ndarray:
    """Camera-frame points (N, 3) -> distorted pixels (N, 2)."""
    zero = np.zeros(3)
    return cv2.projectPoints(points_cam.reshape(-1, 1, 3), zero, zero, cam.K, cam.dist)[0].reshape(-1, 2)


def project_joints(seq: RigSequence, cam_index: int, frame: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(17, 2) distorted pixels, (17, 2) undistorted pixels (P = K [R | t]) and (17,) camera z (mm)."""
    cam = seq.cameras[cam_index]
    x = seq.joints_3d[frame]
    cam_pts = x @ cam.R.T + cam.t
    ideal = cam_pts @ cam.K.T
    with np.errstate(divide="ignore", invalid="ignore"):
        undistorted = ideal[:, :2] / ideal[:, 2:]
    return cam.project(x), undistorted, cam_pts[:, 2]


def render_view(seq: RigSequence, cam_index: int, frame: int, rng: np.random.Generator | None = None,
                static: tuple | None = None, noise: float = 0.02) -> RenderedView:
    """Render one frame as one camera sees it, with its labels. `rng` draws the photometric
    jitter (gain, blur, sensor noise of std `noise` x 0.5-1.5; None: none of it); `static` is
    render_static(seq, cam_index), computed if None."""
    cam = seq.cameras[cam_index]
    w, h = cam.size
    bg, zbuf, ids = static if static is not None else render_static(seq, cam_index)
    zbuf, ids = zbuf.copy(), ids.copy()
    along = np.zeros((h, w), np.float32)
    across = np.zeros((h, w), np.float32)

    pts = seq.points[frame] @ cam.R.T + cam.t  # (27, 3) camera frame
    ends = np.concatenate([pts[_CAP_A], pts[_CAP_B]])  # (2C, 3)
    radius = np.concatenate([_CAP_RADIUS[:, 0], _CAP_RADIUS[:, 1]]) * seq.girth
    perp = np.stack([-ends[:, 2], np.zeros(len(ends)), ends[:, 0]], axis=1)  # perpendicular to the ray
    perp /= np.maximum(np.linalg.norm(perp, axis=1, keepdims=True), 1e-9)
    uv = _project_cam(np.concatenate([ends, ends + radius[:, None] * perp]), cam)
    n = len(_CAPSULES)
    rpx = np.maximum(np.linalg.norm(uv[2 * n:] - uv[: 2 * n], axis=1), _MIN_RADIUS_PX)
    length = np.linalg.norm(pts[_CAP_B] - pts[_CAP_A], axis=1)
    xs = np.arange(w, dtype=np.float32)
    ys = np.arange(h, dtype=np.float32)
    for k in range(n):
        za, zb = ends[k, 2], ends[n + k, 2]
        if min(za, zb) < _NEAR_MM:
            continue
        (ax, ay), (bx, by) = uv[k], uv[n + k]
        ra, rb = rpx[k], rpx[n + k]
        x0, x1 = max(int(np.floor(min(ax - ra, bx - rb))), 0), min(int(np.ceil(max(ax + ra, bx + rb))) + 1, w)
        y0, y1 = max(int(np.floor(min(ay - ra, by - rb))), 0), min(int(np.ceil(max(ay + ra, by + rb))) + 1, h)
        if x0 >= x1 or y0 >= y1:
            continue
        px = xs[None, x0:x1] - np.float32(ax)
        py = ys[y0:y1, None] - np.float32(ay)
        dx, dy = np.float32(bx - ax), np.float32(by - ay)
        l2 = float(dx * dx + dy * dy)
        t = np.clip((px * dx + py * dy) / np.float32(l2), 0, 1) if l2 > 1e-9 else np.zeros_like(px * py)
        qx, qy = px - t * dx, py - t * dy
        r = np.float32(ra) + t * np.float32(rb - ra)
        s2 = (qx * qx + qy * qy) / (r * r)
        inside = s2 <= 1
        if not inside.any():
            continue
        surface = np.float32(radius[k]) + t * np.float32(radius[n + k] - radius[k])
        depth = np.float32(za) + t * np.float32(zb - za) - surface * np.sqrt(np.maximum(1 - s2, 0))
        region = zbuf[y0:y1, x0:x1]
        m = inside & (depth < region)
        region[m] = depth[m]
        ids[y0:y1, x0:x1][m] = _CAP_PART[k]
        along[y0:y1, x0:x1][m] = (t * np.float32(length[k]))[m]
        side = np.sign(dx * qy - dy * qx)
        across[y0:y1, x0:x1][m] = (side * np.sqrt(np.minimum(s2, 1)))[m]

    image = bg.copy()
    body = (ids >= 1) & (ids <= NUM_PARTS)
    if body.any():
        pid = ids[body]
        al, ac = along[body], across[body]
        cross_band = np.floor(al / seq.periods[pid]).astype(np.int64) % 2
        long_band = np.floor((np.arcsin(np.clip(ac, -1, 1)) / np.pi + 0.5) * 4).astype(np.int64) % 2
        pattern = seq.patterns[pid]
        band = np.select([pattern == 1, pattern == 2, pattern == 3], [cross_band, long_band, cross_band ^ long_band], 0)
        factor = (1 - seq.contrast[pid] * band) * (0.6 + 0.4 * np.sqrt(np.maximum(1 - ac * ac, 0)))
        image[body] = seq.colours[pid] * factor[:, None]
    if rng is not None:
        image *= (rng.uniform(0.8, 1.15) * rng.uniform(0.94, 1.06, 3)).astype(np.float32)
        if rng.random() < 0.5:
            image = cv2.GaussianBlur(image, (3, 3), rng.uniform(0.3, 0.7))
        sigma = rng.uniform(0.5, 1.5) * noise
        image = image + rng.standard_normal(image.shape, dtype=np.float32) * np.float32(sigma)
    out = (np.clip(image, 0, 1) * 255 + 0.5).astype(np.uint8)

    points_2d, undistorted, z = project_joints(seq, cam_index, frame)
    inside = (points_2d[:, 0] >= -0.5) & (points_2d[:, 0] < w - 0.5) & (points_2d[:, 1] >= -0.5)
    inside &= (points_2d[:, 1] < h - 0.5) & (z > _NEAR_MM)
    col = np.clip(np.floor(points_2d[:, 0] + 0.5), 0, w - 1).astype(np.int64)
    row = np.clip(np.floor(points_2d[:, 1] + 0.5), 0, h - 1).astype(np.int64)
    seen = ids[row, col]
    visible = inside & (_OWN[np.arange(NUM_JOINTS), seen] | (zbuf[row, col] >= z))
    return RenderedView(image=out, part=ids, depth=zbuf, points_2d=points_2d, points_2d_undistorted=undistorted,
                        visibility=visible)


# ---------------------------------------------------------------------------------------------
class RigSamples:
    """Indexable samples of one split: sample i = frame i % frames of sequence i // frames, seen
    by `views` of the sequence's cameras (a random subset in random order; a rig with fewer
    cameras is padded at the end with view_mask 0, black images, zero labels, K = R = identity,
    P = 0, camera_index -1). Static scenes per (sequence, camera) are cached (`cache_size`)."""

    def __init__(self, cfg: RigDataConfig, split: str = "train", cache_size: int = 512):
        if split not in ("train", "val"):
            raise EdgecapError(f"unknown split {split!r}; expected 'train' or 'val'")
        cfg.validate()
        self.cfg = cfg
        self.split = split
        self.seed = cfg.seed * 2 + (split == "val")  # different seeds: val motion and rigs never trained on
        count = cfg.sequences if split == "train" else cfg.val_sequences
        self.sequences = [make_sequence(cfg, self.seed, s) for s in range(count)]
        self._cache: OrderedDict = OrderedDict()
        self._cache_size = cache_size

    def __len__(self) -> int:
        return len(self.sequences) * self.cfg.frames

    def __getitem__(self, i: int) -> dict:
        return self.sample(i)

    def static(self, s: int, cam_index: int) -> tuple:
        key = (s, cam_index)
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        value = render_static(self.sequences[s], cam_index)
        self._cache[key] = value
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return value

    def render(self, s: int, cam_index: int, frame: int, rng: np.random.Generator | None = None) -> RenderedView:
        return render_view(self.sequences[s], cam_index, frame, rng, self.static(s, cam_index), self.cfg.noise)

    def sample(self, i: int) -> dict:
        """dict of numpy arrays (V = cfg.views, S = image_size):
        images [V, 3, S, S] uint8 RGB; points_2d [V, 17, 2] float32 distorted pixels;
        points_2d_undistorted [V, 17, 2] float32; visibility [V, 17] float32 0/1;
        joints_3d [17, 3] float32 world mm; projections [V, 3, 4] float32 K [R | t];
        K [V, 3, 3], dist [V, 5], R [V, 3, 3], t [V, 3] (mm) float32; view_mask [V] float32;
        camera_index [V] int64; sequence, frame int64 scalars."""
        i = int(i)
        if not 0 <= i < len(self):
            raise IndexError(f"sample {i} out of range [0, {len(self)})")
        s, f = divmod(i, self.cfg.frames)
        seq = self.sequences[s]
        rng = np.random.default_rng([self.seed, 1_000_003, i])
        v, size = self.cfg.views, self.cfg.image_size
        order = rng.permutation(seq.num_cameras)[:v]
        out = {
            "images": np.zeros((v, 3, size, size), np.uint8),
            "points_2d": np.zeros((v, NUM_JOINTS, 2), np.float32),
            "points_2d_undistorted": np.zeros((v, NUM_JOINTS, 2), np.float32),
            "visibility": np.zeros((v, NUM_JOINTS), np.float32),
            "joints_3d": seq.joints_3d[f].astype(np.float32),
            "projections": np.zeros((v, 3, 4), np.float32),
            "K": np.tile(np.eye(3, dtype=np.float32), (v, 1, 1)),
            "dist": np.zeros((v, 5), np.float32),
            "R": np.tile(np.eye(3, dtype=np.float32), (v, 1, 1)),
            "t": np.zeros((v, 3), np.float32),
            "view_mask": np.zeros(v, np.float32),
            "camera_index": np.full(v, -1, np.int64),
            "sequence": np.int64(s),
            "frame": np.int64(f),
        }
        for slot, c in enumerate(order):
            cam = seq.cameras[c]
            view = self.render(s, int(c), f, rng)
            out["images"][slot] = view.image.transpose(2, 0, 1)
            out["points_2d"][slot] = view.points_2d
            out["points_2d_undistorted"][slot] = view.points_2d_undistorted
            out["visibility"][slot] = view.visibility
            out["projections"][slot] = cam.projection()
            out["K"][slot], out["dist"][slot], out["R"][slot], out["t"][slot] = cam.K, cam.dist, cam.R, cam.t
            out["view_mask"][slot] = 1.0
            out["camera_index"][slot] = c
        return out


def contact_sheet(sample: dict, scale: int = 3, labels: bool = True) -> np.ndarray:
    """(H * scale, V * W * scale, 3) uint8 RGB: a sample's views side by side, with its 2D labels
    (bones in white, visible joints green, invisible joints red) when `labels`."""
    tiles = []
    for v in range(len(sample["images"])):
        img = cv2.resize(sample["images"][v].transpose(1, 2, 0), None, fx=scale, fy=scale,
                         interpolation=cv2.INTER_NEAREST)
        if labels and sample.get("view_mask", np.ones(len(sample["images"])))[v] > 0:
            pts = (sample["points_2d"][v] + 0.5) * scale - 0.5  # pixel centres of the upscaled image
            for a, b in H36M.bone_indices():
                ends = np.round(pts[[a, b]]).astype(int).tolist()
                cv2.line(img, tuple(ends[0]), tuple(ends[1]), (255, 255, 255), 1, cv2.LINE_AA)
            for j, p in enumerate(pts):
                colour = (0, 255, 0) if sample["visibility"][v, j] > 0 else (255, 0, 0)
                cv2.circle(img, tuple(np.round(p).astype(int).tolist()), 2, colour, -1, cv2.LINE_AA)
        tiles.append(np.pad(img, ((0, 0), (0, 2), (0, 0)), constant_values=255))
    return np.concatenate(tiles, axis=1)
