"""Built-in synthetic talking heads: procedural faces rendered with numpy and OpenCV, with exact
labels, deterministic from a seed.

- **Identity** (per person, `IDENTITY_FIELDS`): head shape (the ellipsoid's width and depth),
  skin tone, hair colour, hairline and how far the hair comes down the sides, eye spacing and
  size, iris colour, nose length and width, mouth width and height, lip colour, brow thickness.
- **Pose** (per frame, `POSE_FIELDS`): yaw, pitch, roll (degrees), jaw opening, blink and gaze
  (x, y), on smooth trajectories: a short "video" talks, blinks, looks around and turns.
- **Per video:** the background (colour, gradient, texture), the light direction, clothing
  colour, and a slow drift of the head's position and size in the frame.

Rendering. The head is an ellipsoid under an orthographic camera: each pixel's ray meets it in
closed form, the hit point is turned back into the head's own frame, and the face is painted
there by position (so features turn with the head and hide behind it), with Lambert shading.
The nose is a 3D wedge in front of the surface, drawn as a polygon (parallax with pose). A neck
and shoulders complete the foreground mask.

Each image comes with its foreground mask, 2D landmarks (`LANDMARKS`, pixels, visibility) and the
pose and identity parameters, so any identity can be rendered in any pose (`render`): exact
cross-reenactment targets.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

IDENTITY_FIELDS = ("width", "depth", "skin_r", "skin_g", "skin_b", "hair_r", "hair_g", "hair_b", "hairline",
                   "hair_sides", "eye_spacing", "eye_size", "iris_r", "iris_g", "iris_b", "nose_length",
                   "nose_width", "mouth_width", "mouth_y", "lip_r", "lip_g", "lip_b", "brow")
POSE_FIELDS = ("yaw", "pitch", "roll", "jaw", "blink", "gaze_x", "gaze_y")
LANDMARKS = ("r_eye_outer", "r_eye_inner", "l_eye_inner", "l_eye_outer", "r_pupil", "l_pupil", "r_brow", "l_brow",
             "nose_tip", "nose_r", "nose_l", "mouth_r", "mouth_l", "lip_top", "lip_bottom", "chin")
EYES = (LANDMARKS.index("r_pupil"), LANDMARKS.index("l_pupil"))  # the interocular distance's ends
_EYE_Y, _BROW_Y, _NOSE_Y, _CHIN_Y = -0.12, -0.33, 0.28, 0.78  # in head units (half-height 1), y down


@dataclass
class TalkingHeads:
    """V videos of F frames at S px. images (V,F,S,S,3) uint8 RGB; masks (V,F,S,S) uint8 {0,1};
    landmarks (V,F,L,3) = (x px, y px, visible); pose (V,F,len(POSE_FIELDS)); identity
    (V,len(IDENTITY_FIELDS)); person (V,) the identity index of each video."""

    images: np.ndarray
    masks: np.ndarray
    landmarks: np.ndarray
    pose: np.ndarray
    identity: np.ndarray
    person: np.ndarray


def draw_identities(rng: np.random.Generator, n: int) -> np.ndarray:
    """(n, len(IDENTITY_FIELDS)) identity parameters."""
    skin = np.array([[0.95, 0.80, 0.68], [0.85, 0.64, 0.50], [0.65, 0.45, 0.32], [0.42, 0.28, 0.20]])
    t = rng.uniform(0, len(skin) - 1, n)
    lo = np.floor(t).astype(int)
    tone = skin[lo] + (skin[np.minimum(lo + 1, len(skin) - 1)] - skin[lo]) * (t - lo)[:, None]
    hair = rng.uniform(0.03, 0.6, (n, 1)) * rng.uniform(0.7, 1.3, (n, 3))  # dark to light, tinted
    iris = rng.uniform(0.1, 0.6, (n, 3))
    lip = tone * rng.uniform(0.6, 0.85, (n, 1)) + np.array([0.12, 0.0, 0.0])
    cols = {
        "width": rng.uniform(0.7, 0.9, n), "depth": rng.uniform(0.8, 1.0, n),
        "skin_r": tone[:, 0], "skin_g": tone[:, 1], "skin_b": tone[:, 2],
        "hair_r": hair[:, 0], "hair_g": hair[:, 1], "hair_b": hair[:, 2],
        "hairline": rng.uniform(-0.75, -0.45, n), "hair_sides": rng.uniform(0.0, 1.0, n),
        "eye_spacing": rng.uniform(0.28, 0.4, n), "eye_size": rng.uniform(0.09, 0.14, n),
        "iris_r": iris[:, 0], "iris_g": iris[:, 1], "iris_b": iris[:, 2],
        "nose_length": rng.uniform(0.15, 0.35, n), "nose_width": rng.uniform(0.1, 0.18, n),
        "mouth_width": rng.uniform(0.2, 0.32, n), "mouth_y": rng.uniform(0.48, 0.58, n),
        "lip_r": lip[:, 0], "lip_g": lip[:, 1], "lip_b": lip[:, 2], "brow": rng.uniform(0.02, 0.05, n),
    }
    return np.clip(np.stack([cols[f] for f in IDENTITY_FIELDS], 1), -1.0, 1.0).astype(np.float32)


def _smooth(rng: np.random.Generator, n: int, t: np.ndarray, amplitude: float, freq=(0.1, 0.6)) -> np.ndarray:
    """(n, F) a sum of three slow sinusoids with total amplitude about `amplitude`."""
    out = np.zeros((n, len(t)))
    for _ in range(3):
        f = rng.uniform(*freq, (n, 1))
        out += rng.uniform(0.2, 0.6, (n, 1)) * np.sin(2 * np.pi * f * t + rng.uniform(0, 2 * np.pi, (n, 1)))
    return amplitude * out / 1.2


def draw_poses(rng: np.random.Generator, n: int, frames: int, fps: float = 25.0) -> np.ndarray:
    """(n, frames, len(POSE_FIELDS)) smooth pose trajectories of n videos."""
    t = np.arange(frames) / fps
    yaw = rng.uniform(-25, 25, (n, 1)) + _smooth(rng, n, t, 25)
    pitch = rng.uniform(-10, 10, (n, 1)) + _smooth(rng, n, t, 12)
    roll = rng.uniform(-6, 6, (n, 1)) + _smooth(rng, n, t, 8)
    talk = np.clip(np.abs(np.sin(2 * np.pi * rng.uniform(1.5, 3.0, (n, 1)) * t + rng.uniform(0, 6, (n, 1)))), 0, 1)
    envelope = (np.sin(2 * np.pi * rng.uniform(0.1, 0.4, (n, 1)) * t + rng.uniform(0, 6, (n, 1))) > -0.3)
    jaw = np.clip(talk * envelope * rng.uniform(0.4, 1.0, (n, 1)), 0, 1)
    blink = np.zeros((n, frames))
    for i in range(n):  # blinks: ~0.3 s closures every 1-4 s
        start = rng.uniform(0, 1.5)
        while start < t[-1]:
            blink[i] = np.maximum(blink[i], np.clip(1 - np.abs(t - start) / 0.15, 0, 1))
            start += rng.uniform(1.0, 4.0)
    gaze = np.stack([_smooth(rng, n, t, 0.8, (0.2, 1.0)), _smooth(rng, n, t, 0.5, (0.2, 1.0))], -1)
    pose = np.stack([np.clip(yaw, -60, 60), np.clip(pitch, -30, 30), np.clip(roll, -20, 20), jaw, blink,
                     np.clip(gaze[..., 0], -1, 1), np.clip(gaze[..., 1], -1, 1)], -1)
    return pose.astype(np.float32)


def _rotation(pose: np.ndarray) -> np.ndarray:
    """(N, 3, 3) head -> camera rotation from yaw, pitch, roll in degrees (camera: x right, y
    down, z away from the viewer; the face looks along -z at rest)."""
    y, p, r = (np.deg2rad(pose[:, i]) for i in range(3))
    y = -y  # yaw > 0 turns the face towards the image's right, pitch > 0 down, roll > 0 clockwise
    c, s = np.cos, np.sin
    one, zero = np.ones_like(y), np.zeros_like(y)
    ry = np.stack([c(y), zero, s(y), zero, one, zero, -s(y), zero, c(y)], -1).reshape(-1, 3, 3)
    rx = np.stack([one, zero, zero, zero, c(p), -s(p), zero, s(p), c(p)], -1).reshape(-1, 3, 3)
    rz = np.stack([c(r), -s(r), zero, s(r), c(r), zero, zero, zero, one], -1).reshape(-1, 3, 3)
    return rz @ rx @ ry


def _field(identity: np.ndarray, name: str) -> np.ndarray:
    return identity[:, IDENTITY_FIELDS.index(name)]


def _surface_point(identity: np.ndarray, u: np.ndarray, v: np.ndarray, lift: float | np.ndarray = 0.0) -> np.ndarray:
    """(N, 3) head-frame point on the face side of the ellipsoid at normalised (u, v) (u in units
    of the half-width, v of the half-height), `lift` head units in front of the surface."""
    a, c = _field(identity, "width"), _field(identity, "depth")
    z = -np.sqrt(np.clip(1 - u**2 - v**2, 0, 1))
    return np.stack([u * a, v, z * c - lift], -1)


def _landmarks_3d(identity: np.ndarray, pose: np.ndarray) -> np.ndarray:
    """(N, L, 3) head-frame landmark positions."""
    f = lambda name: _field(identity, name)  # noqa: E731
    es, ew = f("eye_spacing"), f("eye_size")
    gx, gy = pose[:, 5], pose[:, 6]
    jaw = pose[:, 3]
    mw, my = f("mouth_width"), f("mouth_y")
    open_h = 0.02 + 0.12 * jaw
    nl, nw = f("nose_length"), f("nose_width")
    zero = np.zeros_like(es)
    pts = {
        "r_eye_outer": (-es - ew * 1.3, _EYE_Y + zero), "r_eye_inner": (-es + ew * 1.3, _EYE_Y + zero),
        "l_eye_inner": (es - ew * 1.3, _EYE_Y + zero), "l_eye_outer": (es + ew * 1.3, _EYE_Y + zero),
        "r_pupil": (-es + gx * ew * 0.6, _EYE_Y + gy * ew * 0.35),
        "l_pupil": (es + gx * ew * 0.6, _EYE_Y + gy * ew * 0.35),
        "r_brow": (-es, _BROW_Y + zero), "l_brow": (es, _BROW_Y + zero),
        "nose_r": (-nw, _NOSE_Y + zero), "nose_l": (nw, _NOSE_Y + zero),
        "mouth_r": (-mw, my), "mouth_l": (mw, my), "lip_top": (zero, my - open_h), "lip_bottom": (zero, my + open_h),
        "chin": (zero, _CHIN_Y + 0.08 * jaw),
    }
    out = np.zeros((len(identity), len(LANDMARKS), 3))
    for i, name in enumerate(LANDMARKS):
        if name == "nose_tip":
            out[:, i] = _surface_point(identity, zero, _NOSE_Y - 0.05 + zero, nl)
        else:
            u, v = pts[name]
            out[:, i] = _surface_point(identity, u, v)
    return out


def render(identity: np.ndarray, pose: np.ndarray, size: int, scene: dict | None = None,
           rng: np.random.Generator | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Render N frames: identity (N, P), pose (N, 7) -> images (N,S,S,3) uint8, masks (N,S,S)
    uint8, landmarks (N,L,3) float32. `scene` (per frame, N rows each): background colours
    "bg0"/"bg1" (N,3), "light" (N,3), "cloth" (N,3), "centre" (N,2) px and "scale" (N,) px per
    head unit; drawn from `rng` when not given."""
    n, s = len(identity), size
    rng = rng or np.random.default_rng(0)
    scene = scene or draw_scenes(rng, n, size)
    rot = _rotation(pose)
    centre, scale = scene["centre"], scene["scale"]
    a, c = _field(identity, "width"), _field(identity, "depth")
    radii = np.stack([a, np.ones_like(a), c], -1)  # (N, 3)

    ys, xs = np.mgrid[0:s, 0:s].astype(np.float64) + 0.5
    x = (xs[None] - centre[:, 0, None, None]) / scale[:, None, None]  # (N, S, S) head units, camera frame
    y = (ys[None] - centre[:, 1, None, None]) / scale[:, None, None]
    # Ray (x, y, t) in the camera frame -> head frame o + t d; on the ellipsoid |(o + t d) / radii| = 1.
    rt = np.transpose(rot, (0, 2, 1))  # camera -> head
    o = (rt[:, None, None, :, 0] * x[..., None] + rt[:, None, None, :, 1] * y[..., None]) / radii[:, None, None]
    d = (rt[:, :, 2] / radii)[:, None, None, :]
    qa = (d * d).sum(-1)
    qb = 2 * (o * d).sum(-1)
    qc = (o * o).sum(-1) - 1
    disc = qb * qb - 4 * qa * qc
    hit = disc > 0
    tt = (-qb - np.sqrt(np.maximum(disc, 0))) / (2 * qa)  # the nearer hit (the camera looks along +z)
    p = (o + tt[..., None] * d) * radii[:, None, None]  # head frame point
    normal_head = p / (radii[:, None, None] ** 2)
    normal = np.einsum("nab,nhwb->nhwa", rot, normal_head)
    normal /= np.linalg.norm(normal, axis=-1, keepdims=True) + 1e-9
    shade = 0.45 + 0.55 * np.clip(-(normal * scene["light"][:, None, None]).sum(-1), 0, 1)

    u, v = p[..., 0] / a[:, None, None], p[..., 1]
    front = -p[..., 2] / c[:, None, None]  # 1 at the face's centre, <0 behind
    f = lambda name: _field(identity, name)[:, None, None]  # noqa: E731
    colour = np.broadcast_to(np.stack([f("skin_r"), f("skin_g"), f("skin_b")], -1), p.shape).copy()

    es, ew = f("eye_spacing"), f("eye_size")
    blink, jaw = pose[:, 4, None, None], pose[:, 3, None, None]
    gx, gy = pose[:, 5, None, None], pose[:, 6, None, None]
    for side in (-1.0, 1.0):
        ex = side * es
        eh = ew * 0.55 * (1 - blink) + 1e-4
        eye = ((u - ex) / (ew * 1.3)) ** 2 + ((v - _EYE_Y) / eh) ** 2 < 1
        colour[eye & (front > 0)] = 0.95
        iris = ((u - ex - gx * ew * 0.6) ** 2 + (v - _EYE_Y - gy * ew * 0.35) ** 2 < (ew * 0.5) ** 2) & eye
        colour[iris] = np.broadcast_to(np.stack([f("iris_r"), f("iris_g"), f("iris_b")], -1), p.shape)[iris]
        pupil = ((u - ex - gx * ew * 0.6) ** 2 + (v - _EYE_Y - gy * ew * 0.35) ** 2 < (ew * 0.22) ** 2) & eye
        colour[pupil] = 0.05
        lid = (np.abs(v - _EYE_Y) < 0.012 + 0.0 * u) & (np.abs(u - ex) < ew * 1.3) & (blink > 0.6)
        colour[lid] *= 0.6
        brow = (np.abs(v - _BROW_Y + 0.04 * (u - ex) ** 2 / ew) < f("brow")) & (np.abs(u - ex) < ew * 1.6)
        colour[brow & (front > 0)] = (np.stack([f("hair_r"), f("hair_g"), f("hair_b")], -1) * 0.7 + 0.02).repeat(
            s, 1).repeat(s, 2)[brow & (front > 0)]
    mw, my = f("mouth_width"), f("mouth_y")
    open_h = 0.02 + 0.12 * jaw
    lips = ((u / (mw * 1.1)) ** 2 + ((v - my) / (open_h + 0.05)) ** 2 < 1) & (front > 0)
    colour[lips] = np.broadcast_to(np.stack([f("lip_r"), f("lip_g"), f("lip_b")], -1), p.shape)[lips]
    inside = ((u / mw) ** 2 + ((v - my) / open_h) ** 2 < 1) & (front > 0)
    colour[inside] = np.array([0.25, 0.05, 0.05])
    hair_rgb = np.stack([f("hair_r"), f("hair_g"), f("hair_b")], -1)
    hairline = f("hairline") + 0.04 * np.cos(6 * u)
    sides = (np.abs(u) > 0.78) & (v < -0.1 + 0.5 * f("hair_sides"))
    hair = (v < hairline) | (front < -0.15) | sides
    texture = 0.85 + 0.15 * np.sin(40 * u + 7 * np.sin(9 * v))
    colour = np.where(hair[..., None], hair_rgb * texture[..., None], colour)
    head_rgb = colour * shade[..., None]

    # neck and shoulders (2D, behind the head), then the background
    img = _background(scene, s)
    mask = np.zeros((n, s, s), np.uint8)
    skin = np.stack([_field(identity, k) for k in ("skin_r", "skin_g", "skin_b")], -1)
    for i in range(n):
        cx, cy, sc = centre[i, 0], centre[i, 1], scale[i]
        body = np.zeros((s, s), np.uint8)
        cv2.ellipse(body, (int(cx), int(cy + 2.0 * sc)), (int(1.9 * sc), int(0.7 * sc)), 0, 180, 360, 1, -1)
        cv2.rectangle(body, (int(cx - 1.9 * sc), int(cy + 2.0 * sc)), (s, s), 0, -1)
        cv2.rectangle(body, (int(cx - 1.9 * sc), int(cy + 2.0 * sc)), (int(cx + 1.9 * sc), s), 1, -1)
        neck = np.zeros((s, s), np.uint8)
        cv2.rectangle(neck, (int(cx - 0.38 * sc), int(cy + 0.3 * sc)), (int(cx + 0.38 * sc), int(cy + 1.6 * sc)), 1, -1)
        img[i][body > 0] = scene["cloth"][i]
        img[i][neck > 0] = skin[i] * 0.75
        mask[i] = body | neck
    img = np.where(hit[..., None], head_rgb, img)
    mask |= hit.astype(np.uint8)

    # the nose: a wedge in front of the face, drawn over it
    lm3 = _landmarks_3d(identity, pose)
    cam = np.einsum("nab,nlb->nla", rot, lm3)
    px = cam[..., :2] * scale[:, None, None] + centre[:, None, :]
    normal_lm = np.einsum("nab,nlb->nla", rot, lm3 / radii[:, None, :] ** 2)
    visible = normal_lm[..., 2] < 0.05
    tip, nr, nl_ = (LANDMARKS.index(k) for k in ("nose_tip", "nose_r", "nose_l"))
    bridge = _surface_point(identity, np.zeros(n), np.full(n, _EYE_Y + 0.05))
    bridge_px = np.einsum("nab,nb->na", rot, bridge)[:, :2] * scale[:, None] + centre
    for i in range(n):
        poly = np.stack([bridge_px[i], px[i, nr], px[i, tip], px[i, nl_]]).astype(np.float32)
        nose = np.zeros((s, s), np.uint8)
        cv2.fillConvexPoly(nose, np.round(poly * 16).astype(np.int32), 1, lineType=cv2.LINE_8, shift=4)
        side_light = 0.8 + 0.2 * np.sign(px[i, tip, 0] - bridge_px[i, 0])
        img[i][nose > 0] = skin[i] * 0.85 * side_light * shade[i][nose > 0][:, None]
        mask[i] |= nose
    visible[:, tip] = cam[:, tip, 2] < cam[:, LANDMARKS.index("chin"), 2] + 0.3  # the tip faces the camera
    landmarks = np.concatenate([px, visible[..., None]], -1).astype(np.float32)
    images = np.clip(img * 255 + 0.5, 0, 255).astype(np.uint8)
    return images, mask, landmarks


def draw_scenes(rng: np.random.Generator, n: int, size: int) -> dict:
    """Per-video scene parameters, one row per video (repeat them over its frames)."""
    light = np.stack([rng.uniform(-0.6, 0.6, n), rng.uniform(-0.6, 0.1, n), np.ones(n)], -1)
    return {"bg0": rng.uniform(0.1, 0.9, (n, 3)), "bg1": rng.uniform(0.1, 0.9, (n, 3)),
            "light": light / np.linalg.norm(light, axis=-1, keepdims=True), "cloth": rng.uniform(0.1, 0.8, (n, 3)),
            "centre": np.stack([rng.uniform(0.45, 0.55, n), rng.uniform(0.4, 0.48, n)], -1) * size,
            "scale": rng.uniform(0.28, 0.34, n) * size}


def _background(scene: dict, s: int) -> np.ndarray:
    t = np.linspace(0, 1, s)[None, :, None, None]  # a vertical gradient between two colours
    grad = scene["bg0"][:, None, None] * (1 - t) + scene["bg1"][:, None, None] * t
    return np.broadcast_to(grad, (len(scene["bg0"]), s, s, 3)).copy()


def generate_talking_heads(identities: int, videos_per_identity: int, frames: int, size: int,
                           seed: int = 0, fps: float = 25.0) -> TalkingHeads:
    """`identities` people, each in `videos_per_identity` videos of `frames` frames at `size` px."""
    rng = np.random.default_rng(seed)
    ids = draw_identities(rng, identities)
    v = identities * videos_per_identity
    person = np.repeat(np.arange(identities), videos_per_identity)
    pose = draw_poses(rng, v, frames, fps)
    scene = draw_scenes(rng, v, size)
    drift = {"centre": rng.normal(0, 0.01, (v, 1, 2)) * size * np.linspace(0, 1, frames)[None, :, None],
             "scale": 1 + rng.normal(0, 0.03, (v, 1)) * np.linspace(0, 1, frames)[None]}
    images = np.zeros((v, frames, size, size, 3), np.uint8)
    masks = np.zeros((v, frames, size, size), np.uint8)
    landmarks = np.zeros((v, frames, len(LANDMARKS), 3), np.float32)
    for k in range(v):  # one video at a time bounds the renderer's per-pixel buffers
        per_frame = {key: np.repeat(val[k : k + 1], frames, 0) for key, val in scene.items()}
        per_frame["centre"] = per_frame["centre"] + drift["centre"][k]
        per_frame["scale"] = per_frame["scale"] * drift["scale"][k]
        images[k], masks[k], landmarks[k] = render(np.repeat(ids[person[k] : person[k] + 1], frames, 0), pose[k],
                                                   size, per_frame)
    return TalkingHeads(images, masks, landmarks, pose, ids[person], person)
