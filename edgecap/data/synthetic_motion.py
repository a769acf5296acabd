"""Built-in synthetic human motion: skeletons, joint-angle trajectories, cameras, 2D detections.

Deterministic from a seed and vectorised over sequences and frames, so a few hundred
sequences come out in about a second. Pipeline per sequence:
1. A kinematic skeleton (22 joints: the H36M 17 plus nose, eyes and ears for COCO) with
   a sampled body height and per-bone length jitter.
2. Joint-angle trajectories mixing motion primitives (walking, reaching, turning,
   crouching, idle sway; with motions="extended" also running, dancing and free motion off
   the feet) plus smooth random perturbations, clipped to anatomical limits.
3. Forward kinematics in a y-up world; the lowest ankle is kept on the ground.
4. A random camera (focal length, distance chosen for a random on-screen person height,
   azimuth, elevation, roll, principal point offset); OpenCV convention (x right, y down).
5. Detector-like 2D: Gaussian pixel noise scaled with the person's size, rare outliers,
   independently dropped joints, occlusion bursts on limbs, and off-screen joints, all
   with validity 0 and zeroed coordinates.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgecap.data.skeletons import get_skeleton

# name, parent, rest offset from parent (mm) in the body frame: x = person's left, y = up,
# z = forward. Rotations at a joint move its children's offsets.
_JOINTS = [
    ("pelvis", None, (0, 0, 0)),
    ("r_hip", "pelvis", (-130, 0, 0)),
    ("r_knee", "r_hip", (0, -440, 0)),
    ("r_ankle", "r_knee", (0, -430, 0)),
    ("l_hip", "pelvis", (130, 0, 0)),
    ("l_knee", "l_hip", (0, -440, 0)),
    ("l_ankle", "l_knee", (0, -430, 0)),
    ("spine", "pelvis", (0, 230, 10)),
    ("thorax", "spine", (0, 250, 0)),
    ("neck", "thorax", (0, 110, 10)),
    ("head", "neck", (0, 120, 0)),
    ("l_shoulder", "thorax", (150, -20, 0)),
    ("l_elbow", "l_shoulder", (0, -280, 0)),
    ("l_wrist", "l_elbow", (0, -250, 0)),
    ("r_shoulder", "thorax", (-150, -20, 0)),
    ("r_elbow", "r_shoulder", (0, -280, 0)),
    ("r_wrist", "r_elbow", (0, -250, 0)),
    ("nose", "neck", (0, 50, 95)),
    ("l_eye", "neck", (32, 85, 80)),
    ("r_eye", "neck", (-32, 85, 80)),
    ("l_ear", "neck", (75, 70, 0)),
    ("r_ear", "neck", (-75, 70, 0)),
]
_NAMES = [j[0] for j in _JOINTS]
_PARENTS = [(-1 if p is None else _NAMES.index(p)) for _, p, _ in _JOINTS]
_OFFSETS = np.array([o for _, _, o in _JOINTS], dtype=np.float64)
_ANKLE_HEIGHT_MM = 80.0

# Channel limits in degrees (flexion positive forward for hips/shoulders/elbows, backward for
# knees; abduction positive away from the body).
_LIMITS = {
    "hip_flex": (-30, 120), "hip_abd": (-10, 45), "hip_twist": (-30, 30),
    "knee_flex": (0, 145),
    "shoulder_flex": (-50, 170), "shoulder_abd": (-10, 160), "elbow_flex": (0, 145),
    "spine_flex": (-20, 60), "spine_twist": (-40, 40), "spine_side": (-25, 25),
    "neck_flex": (-40, 50), "neck_twist": (-60, 60),
    "pelvis_pitch": (-15, 45), "pelvis_roll": (-10, 10),
    # internal rotation positive; moved only by the extended mix. +-90 (was -60..80): a dancer's
    # hold (upper arm out, forearm across the chest or raised) needs the full range (docs/lifting.md)
    "shoulder_twist": (-90, 90),
    # the whole body's lean forward and sideways (lying, crawling, cartwheels); extended mix only
    "body_pitch": (-120, 120), "body_roll": (-180, 180),
}
_SIDE_CHANNELS = ["hip_flex", "hip_abd", "hip_twist", "knee_flex", "shoulder_flex", "shoulder_abd", "elbow_flex"]
_CENTRE_CHANNELS = ["spine_flex", "spine_twist", "spine_side", "neck_flex", "neck_twist", "pelvis_pitch", "pelvis_roll"]
_LIMB_GROUPS = [
    ["l_shoulder", "l_elbow", "l_wrist"], ["r_shoulder", "r_elbow", "r_wrist"],
    ["l_hip", "l_knee", "l_ankle"], ["r_hip", "r_knee", "r_ankle"], ["l_wrist"], ["r_wrist"],
    ["l_elbow", "l_wrist"], ["r_elbow", "r_wrist"], ["l_ankle"], ["r_ankle"],
    ["nose", "l_eye", "r_eye", "l_ear", "r_ear", "head"],
]


@dataclass
class MotionSequences:
    """Equal-length sequences. keypoints_2d (S,F,J,3) = (x_px, y_px, validity);
    joints_3d_mm (S,F,J,3) root-relative, camera frame; image_size (S,2) = (width, height)."""

    keypoints_2d: np.ndarray
    joints_3d_mm: np.ndarray
    image_size: np.ndarray
    fps: float


def _rot(axis: int, angle: np.ndarray) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    out = np.zeros(angle.shape + (3, 3))
    i, j = [(1, 2), (0, 2), (0, 1)][axis]
    out[..., axis, axis] = 1.0
    out[..., i, i] = c
    out[..., j, j] = c
    sign = -1.0 if axis == 1 else 1.0  # rotation about y has the sine signs swapped
    out[..., i, j] = -s * sign
    out[..., j, i] = s * sign
    return out


def _smooth_noise(rng: np.random.Generator, shape: tuple, t: np.ndarray, amp_deg: float) -> np.ndarray:
    """Sum of two random low-frequency sinusoids per channel, shape + (F,)."""
    out = np.zeros(shape + t.shape)
    for _ in range(2):
        amp = rng.uniform(0, amp_deg, shape)[..., None]
        freq = rng.uniform(0.1, 0.8, shape)[..., None]
        phase = rng.uniform(0, 2 * np.pi, shape)[..., None]
        out += amp * np.sin(2 * np.pi * freq * t + phase)
    return out


def _trajectories(rng: np.random.Generator, n: int, t: np.ndarray,
                  extended: bool = False) -> tuple[dict, np.ndarray, np.ndarray]:
    """Joint-angle channels in degrees (each (n, F); sided ones (n, 2, F) for left/right),
    the heading yaw (n, F) in radians, and the planar root displacement (n, F, 2) in mm.
    extended: running, dancing and free motion join the mix, and the upper arm twists (drawn only
    then, so the classic mix is unchanged)."""
    f = len(t)
    ch = {k: np.zeros((n, 2, f)) for k in _SIDE_CHANNELS + ["shoulder_twist"]}
    ch.update({k: np.zeros((n, f)) for k in _CENTRE_CHANNELS + ["body_pitch", "body_roll"]})
    yaw = np.zeros((n, f))
    speed = np.zeros((n, 1))

    # Motion mix: one primary primitive at weight 1, others sometimes blended in.
    kinds = ["walk", "reach", "turn", "crouch", "idle"]
    weights = np.where(rng.random((n, len(kinds))) < 0.3, rng.uniform(0.2, 0.6, (n, len(kinds))), 0.0)
    weights[np.arange(n), rng.integers(0, len(kinds), n)] = 1.0
    w = {k: weights[:, i : i + 1] for i, k in enumerate(kinds)}
    side = np.array([1.0, -1.0])[None, :, None]  # left, right
    if extended:  # a quarter of the sequences run instead of walking, a quarter dance, a sixth move freely
        pick = rng.random((n, 1))
        w["run"] = (pick < 1 / 4).astype(float)
        w["dance"] = ((pick >= 1 / 4) & (pick < 1 / 2)).astype(float) * rng.uniform(0.6, 1.0, (n, 1))
        w["free"] = ((pick >= 1 / 2) & (pick < 2 / 3)).astype(float)
        w["walk"] = w["walk"] * (1 - w["run"])

    # Walking: hips swing in antiphase, knees flex in swing, arms counter-swing.
    freq = rng.uniform(0.7, 1.1, (n, 1))
    phase = rng.uniform(0, 2 * np.pi, (n, 1))
    gait = 2 * np.pi * freq * t + phase  # (n, F)
    g = gait[:, None, :] + np.array([0.0, np.pi])[None, :, None]
    a_hip = rng.uniform(15, 35, (n, 1, 1))
    ww = w["walk"][:, :, None]
    ch["hip_flex"] += ww * (a_hip * np.sin(g) + 5)
    ch["knee_flex"] += ww * (5 + rng.uniform(30, 60, (n, 1, 1)) * 0.5 * (1 + np.sin(g + np.pi / 2)))
    ch["shoulder_flex"] += ww * (-rng.uniform(10, 30, (n, 1, 1)) * np.sin(g))
    ch["elbow_flex"] += ww * (15 + 15 * 0.5 * (1 + np.sin(g)))
    speed += w["walk"] * rng.uniform(700, 1500, (n, 1))

    # Turning: a smooth heading change, with a little stepping.
    t0 = rng.uniform(0, t[-1] * 0.6, (n, 1))
    dur = rng.uniform(0.5, 1.5, (n, 1))
    u = np.clip((t - t0) / dur, 0, 1)
    delta = rng.choice([-1, 1], (n, 1)) * rng.uniform(60, 180, (n, 1))
    yaw_deg = w["turn"] * delta * (3 * u**2 - 2 * u**3)
    ch["hip_flex"] += w["turn"][:, :, None] * 10 * np.abs(np.sin(g))
    ch["spine_twist"] += w["turn"] * 0.2 * delta * np.sin(np.pi * u)

    # Reaching: one or both arms rise forward/sideways and return, repeatedly.
    period = rng.uniform(1.0, 3.0, (n, 1))
    bump = 0.5 * (1 - np.cos(2 * np.pi * t / period + rng.uniform(0, 2 * np.pi, (n, 1))))
    arms = rng.choice([[1, 0], [0, 1], [1, 1]], n)[:, :, None].astype(float)
    wr = w["reach"][:, :, None] * arms
    ch["shoulder_flex"] += wr * rng.uniform(40, 150, (n, 2, 1)) * bump[:, None, :]
    ch["shoulder_abd"] += wr * rng.uniform(0, 80, (n, 2, 1)) * bump[:, None, :]
    ch["elbow_flex"] += wr * rng.uniform(20, 90, (n, 2, 1)) * (1 - bump[:, None, :])
    ch["spine_flex"] += w["reach"] * rng.uniform(0, 25, (n, 1)) * bump

    # Crouching: hips and knees flex together, trunk leans, arms come forward for balance.
    cperiod = rng.uniform(2.0, 4.0, (n, 1))
    c = 0.5 * (1 - np.cos(2 * np.pi * t / cperiod + rng.uniform(0, 2 * np.pi, (n, 1))))
    depth = rng.uniform(0.3, 1.0, (n, 1)) * w["crouch"]
    ch["hip_flex"] += (100 * depth * c)[:, None, :]
    ch["knee_flex"] += (130 * depth * c)[:, None, :]
    ch["spine_flex"] += 25 * depth * c
    ch["shoulder_flex"] += (45 * depth * c)[:, None, :]

    if extended:
        _run_dance_free(rng, ch, w, t, side)
        speed += w["run"] * rng.uniform(2500, 4000, (n, 1)) + w["dance"] * rng.uniform(0, 300, (n, 1))

    # Idle sway and small random perturbations on every channel.
    for k in _SIDE_CHANNELS:
        ch[k] += _smooth_noise(rng, (n, 2), t, 6.0) + np.where(k.endswith("abd"), 8.0, 0.0)
    for k in _CENTRE_CHANNELS:
        ch[k] += _smooth_noise(rng, (n,), t, 5.0) * (1 + w["idle"])
    for k, (lo, hi) in _LIMITS.items():
        ch[k] = np.clip(ch[k], lo, hi)
    ch["side"] = side

    yaw = np.deg2rad(yaw_deg + rng.uniform(-180, 180, (n, 1)))
    dt = np.diff(t, prepend=t[0])
    step = speed * dt  # (n, F) mm per frame along the heading
    disp = np.cumsum(np.stack([np.sin(yaw) * step, np.cos(yaw) * step], -1), axis=1)
    return ch, yaw, disp


def _run_dance_free(rng: np.random.Generator, ch: dict, w: dict, t: np.ndarray, side: np.ndarray) -> None:
    """Running (a fast gait: large hip and knee flexion, bent elbows swinging, a forward lean),
    dancing (arms raised, swung and spread at 0.3-2 Hz, hips and trunk twisting and swaying), free
    motion (every channel anywhere in its range, drifting slowly) and, for every sequence, the
    upper arm's twist (without it a bent elbow only ever folds the forearm forward)."""
    n = len(w["run"])
    freq = rng.uniform(1.3, 1.8, (n, 1))
    g = (2 * np.pi * freq * t + rng.uniform(0, 2 * np.pi, (n, 1)))[:, None, :] + np.array([0.0, np.pi])[None, :, None]
    wr = w["run"][:, :, None]
    ch["hip_flex"] += wr * (rng.uniform(30, 55, (n, 1, 1)) * np.sin(g) + 15)
    ch["knee_flex"] += wr * (20 + rng.uniform(60, 110, (n, 1, 1)) * 0.5 * (1 + np.sin(g + np.pi / 2)))
    ch["shoulder_flex"] += wr * (-rng.uniform(25, 55, (n, 1, 1)) * np.sin(g))
    ch["elbow_flex"] += wr * (rng.uniform(60, 100, (n, 1, 1)) + 15 * np.sin(g))
    ch["spine_flex"] += w["run"] * rng.uniform(5, 20, (n, 1))

    def wave(shape, low, high):  # a 0.3-2 Hz oscillation per channel, amplitude in [low, high] degrees
        f = rng.uniform(0.3, 2.0, shape + (1,))
        amplitude = rng.uniform(low, high, shape + (1,))
        return amplitude * np.sin(2 * np.pi * f * t + rng.uniform(0, 2 * np.pi, shape + (1,)))

    wd, wd1 = w["dance"][:, :, None], w["dance"]
    ch["shoulder_abd"] += wd * (rng.uniform(0, 90, (n, 2, 1)) + wave((n, 2), 20, 70))
    ch["shoulder_flex"] += wd * (rng.uniform(-20, 90, (n, 2, 1)) + wave((n, 2), 20, 80))
    ch["elbow_flex"] += wd * (rng.uniform(0, 60, (n, 2, 1)) + np.abs(wave((n, 2), 20, 70)))
    ch["hip_abd"] += wd * np.abs(wave((n, 2), 0, 25))
    ch["hip_flex"] += wd * np.abs(wave((n, 2), 0, 50))
    ch["knee_flex"] += wd * np.abs(wave((n, 2), 5, 60))
    ch["spine_twist"] += wd1 * wave((n,), 5, 35)
    ch["spine_side"] += wd1 * wave((n,), 0, 20)
    ch["pelvis_roll"] += wd1 * wave((n,), 0, 8)
    ch["neck_flex"] += wd1 * wave((n,), 0, 25)

    ch["shoulder_twist"] += rng.uniform(-70, 80, (n, 2, 1)) + wave((n, 2), 0, 30)
    wf = w["free"]
    for k, (lo, hi) in _LIMITS.items():  # the clip to the limits comes after, in _trajectories
        shape = (n, 2) if k in _SIDE_CHANNELS + ["shoulder_twist"] else (n,)
        weight = wf[:, :, None] if len(shape) == 2 else wf
        base = rng.uniform(lo, hi, shape + (1,))
        ch[k] = ch[k] * (1 - weight) + weight * (base + wave(shape, 0, 0.3 * (hi - lo)))
    upright = rng.random((n, 1)) < 0.5  # half the free sequences stay on their feet
    ch["body_pitch"] *= ~upright
    ch["body_roll"] *= ~upright


def _local_rotations(ch: dict, yaw: np.ndarray, n: int, f: int) -> np.ndarray:
    rad = {k: np.deg2rad(v) for k, v in ch.items() if k != "side"}
    rot = np.tile(np.eye(3), (n, f, len(_NAMES), 1, 1))
    rot[:, :, 0] = (_rot(1, yaw) @ _rot(0, rad["body_pitch"]) @ _rot(2, rad["body_roll"])
                    @ _rot(0, rad["pelvis_pitch"] * 0.2) @ _rot(2, rad["pelvis_roll"]))
    rot[:, :, _NAMES.index("spine")] = (
        _rot(1, rad["spine_twist"]) @ _rot(0, rad["spine_flex"] * 0.6) @ _rot(2, rad["spine_side"])
    )
    rot[:, :, _NAMES.index("thorax")] = _rot(0, rad["spine_flex"] * 0.4)
    rot[:, :, _NAMES.index("neck")] = _rot(1, rad["neck_twist"]) @ _rot(0, rad["neck_flex"])
    for s, prefix in enumerate(["l_", "r_"]):
        sign = 1.0 if s == 0 else -1.0
        # Body frame: x left, y up, z forward. Rotating -y towards +z is a negative x-rotation.
        rot[:, :, _NAMES.index(prefix + "hip")] = (
            _rot(1, sign * rad["hip_twist"][:, s]) @ _rot(0, -rad["hip_flex"][:, s]) @ _rot(2, sign * rad["hip_abd"][:, s])
        )
        rot[:, :, _NAMES.index(prefix + "knee")] = _rot(0, rad["knee_flex"][:, s])
        rot[:, :, _NAMES.index(prefix + "shoulder")] = (
            _rot(0, -rad["shoulder_flex"][:, s]) @ _rot(2, sign * rad["shoulder_abd"][:, s])
            @ _rot(1, sign * rad["shoulder_twist"][:, s])
        )
        rot[:, :, _NAMES.index(prefix + "elbow")] = _rot(0, -rad["elbow_flex"][:, s])
    return rot


def _forward_kinematics(local: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """local (n,F,J,3,3), offsets (n,J,3) -> positions (n,F,J,3), root at origin."""
    n, f, j = local.shape[:3]
    glob = np.zeros_like(local)
    pos = np.zeros((n, f, j, 3))
    for i, p in enumerate(_PARENTS):
        if p < 0:
            glob[:, :, i] = local[:, :, i]
            continue
        pos[:, :, i] = pos[:, :, p] + np.einsum("nfab,nb->nfa", glob[:, :, p], offsets[:, i])
        glob[:, :, i] = glob[:, :, p] @ local[:, :, i]
    return pos


def _look_at(cam_pos: np.ndarray, target: np.ndarray, roll: np.ndarray) -> np.ndarray:
    """World (y up) to camera (x right, y down, z forward) rotation, (n,3,3)."""
    z = target - cam_pos
    z /= np.linalg.norm(z, axis=-1, keepdims=True)
    down = np.array([0.0, -1.0, 0.0])
    y = down - (z @ down)[:, None] * z
    y /= np.linalg.norm(y, axis=-1, keepdims=True)
    x = np.cross(y, z)
    r = np.stack([x, y, z], axis=1)
    return _rot(2, roll) @ r


# Anthropometric ranges (factor on the rest offset of each joint from its parent) spanning the
# joint definitions of real mocap (AMP/DeepMimic humanoid, a solved optical-mocap skeleton) and
# of Human3.6M: e.g. hip width 150-260 mm, shoulder width 300-375 mm, pelvis to thorax 360-600 mm.
_PROPORTIONS = {
    "r_hip": (0.58, 1.0), "l_hip": (0.58, 1.0), "r_knee": (0.84, 1.05), "l_knee": (0.84, 1.05),
    "r_ankle": (0.9, 1.08), "l_ankle": (0.9, 1.08), "spine": (0.8, 1.4), "thorax": (0.7, 1.1),
    "neck": (0.8, 1.25), "head": (0.8, 1.3), "l_shoulder": (1.0, 1.25), "r_shoulder": (1.0, 1.25),
    "l_elbow": (0.92, 1.16), "r_elbow": (0.92, 1.16), "l_wrist": (0.86, 1.2), "r_wrist": (0.86, 1.2),
}


def _anthropometric_offsets(rng: np.random.Generator, n: int, height: np.ndarray) -> np.ndarray:
    """(n, J, 3) offsets: each bone scaled within its _PROPORTIONS range, left and right alike."""
    scale = np.ones((n, len(_NAMES), 1))
    for name, (lo, hi) in _PROPORTIONS.items():
        if name.startswith("r_") and "l_" + name[2:] in _PROPORTIONS:
            continue  # drawn with its left twin below
        s = rng.uniform(lo, hi, (n, 1))
        scale[:, _NAMES.index(name)] = s
        if name.startswith("l_"):
            scale[:, _NAMES.index("r_" + name[2:])] = s
    return _OFFSETS[None] * height * scale * rng.uniform(0.98, 1.02, (n, len(_NAMES), 1))


def generate_motion(
    num_sequences: int,
    frames: int = 100,
    fps: float = 50.0,
    skeleton: str = "h36m",
    seed: int = 0,
    noise_px: float = 2.0,
    drop_prob: float = 0.03,
    occlusion_rate: float = 0.5,
    proportions: str = "fixed",
    motions: str = "classic",
) -> MotionSequences:
    """Generate `num_sequences` clips of `frames` frames; see the module docstring. proportions:
    "fixed" (the rest skeleton +-5% per bone) or "anthropometric" (_PROPORTIONS); motions:
    "classic" (walk, reach, turn, crouch, idle) or "extended" (also running, dancing and free
    motion, some of it lying or upside down)."""
    rng = np.random.default_rng(seed)
    n, f = num_sequences, frames
    t = np.arange(f) / fps
    layout = get_skeleton(skeleton)

    height = rng.uniform(0.85, 1.15, (n, 1, 1))
    if proportions == "anthropometric":
        offsets = _anthropometric_offsets(rng, n, height)
    else:
        offsets = _OFFSETS[None] * height * rng.uniform(0.95, 1.05, (n, len(_NAMES), 1))
    ch, yaw, disp = _trajectories(rng, n, t, extended=motions == "extended")
    body = _forward_kinematics(_local_rotations(ch, yaw, n, f), offsets)  # pelvis at origin
    # the lowest ankle on the ground; the lowest joint in the extended mix, where people also lie and roll
    lowest = slice(None) if motions == "extended" else [_NAMES.index("l_ankle"), _NAMES.index("r_ankle")]
    foot = body[:, :, lowest, 1].min(-1)
    world = body.copy()
    world[..., 1] += (_ANKLE_HEIGHT_MM - foot)[..., None]
    world[..., 0] += disp[..., 0:1]
    world[..., 2] += disp[..., 1:2]
    idx = [_NAMES.index(name) for name in layout.joints]
    return observe_motion(world[:, :, idx], world[:, :, 0], skeleton, rng, fps, noise_px, drop_prob, occlusion_rate)


def observe_motion(world: np.ndarray, pelvis: np.ndarray, skeleton: str, rng: np.random.Generator, fps: float,
                   noise_px: float = 2.0, drop_prob: float = 0.03, occlusion_rate: float = 0.5) -> MotionSequences:
    """Film 3D motion with the synthetic data's random cameras and detector-like 2D (steps 4 and 5
    of the module docstring). world (n, F, J, 3) mm in a y-up world, joints in `skeleton`'s order;
    pelvis (n, F, 3) mm (what the camera aims at). Any motion, synthetic or real, is observed the
    same way; noise_px = drop_prob = occlusion_rate = 0 gives exact 2D."""
    layout = get_skeleton(skeleton)
    n, f = world.shape[:2]
    sizes = np.array([(1000, 1000), (1920, 1080), (1280, 720), (1080, 1920)])
    image_size = sizes[rng.integers(0, len(sizes), n)].astype(np.float64)
    focal = rng.uniform(0.7, 1.3, n) * image_size.max(1)
    person_frac = rng.uniform(0.3, 0.85, n)
    dist = np.clip(focal * 1700 / (person_frac * image_size[:, 1]), 2500, 15000)
    centre = pelvis.mean(1)  # (n,3)
    target = centre * np.array([1, 0, 1]) + np.array([0, 1, 0]) * rng.uniform(700, 1100, (n, 1))
    az = rng.uniform(0, 2 * np.pi, n)
    elev = np.deg2rad(rng.uniform(-5, 30, n))
    cam_pos = target + dist[:, None] * np.stack(
        [np.cos(elev) * np.sin(az), np.sin(elev), np.cos(elev) * np.cos(az)], -1
    )
    r = _look_at(cam_pos, target, np.deg2rad(rng.uniform(-8, 8, n)))
    cam = np.einsum("nab,nfjb->nfja", r, world - cam_pos[:, None, None])
    principal = image_size / 2 + rng.normal(0, 0.02, (n, 2)) * image_size
    z = np.maximum(cam[..., 2:3], 1.0)
    uv = focal[:, None, None, None] * cam[..., :2] / z + principal[:, None, None]

    zz = cam[..., 2]
    root = (cam * np.array(layout.root_weight_vector())[None, None, :, None]).sum(2, keepdims=True)
    joints_3d = cam - root

    person_px = focal * 1700 / dist
    sigma = noise_px * rng.uniform(0.5, 1.5, n) * person_px / 500
    uv = uv + rng.normal(0, 1, uv.shape) * sigma[:, None, None, None]
    outlier = rng.random(uv.shape[:3]) < 0.01
    uv += outlier[..., None] * rng.normal(0, 10, uv.shape) * sigma[:, None, None, None]

    valid = rng.random(uv.shape[:3]) >= drop_prob
    for s in range(n):
        for _ in range(rng.poisson(occlusion_rate * f / 50)):
            group = _LIMB_GROUPS[rng.integers(len(_LIMB_GROUPS))]
            cols = [layout.joints.index(g) for g in group if g in layout.joints]
            start = rng.integers(0, f)
            valid[s, start : start + rng.integers(5, 40), cols] = False
    inside = (uv[..., 0] >= 0) & (uv[..., 0] < image_size[:, None, None, 0])
    inside &= (uv[..., 1] >= 0) & (uv[..., 1] < image_size[:, None, None, 1]) & (zz > 100)
    valid &= inside
    keypoints = np.concatenate([uv * valid[..., None], valid[..., None]], -1)
    return MotionSequences(
        keypoints_2d=keypoints.astype(np.float32),
        joints_3d_mm=joints_3d.astype(np.float32),
        image_size=image_size.astype(np.float32),
        fps=fps,
    )
