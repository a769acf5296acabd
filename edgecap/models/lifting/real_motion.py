"""The lifter on real human motion: mocap clips (edgecap.data.real_motion) filmed by the synthetic
data's random virtual cameras, windowed like the validation set, and scored on the direct
joints (the joint centres every source defines alike; spine, thorax, neck and head are derived
and left out of these numbers).

Each clip is cut into shots no longer than a synthetic sequence (2 s, the default data.frames at
data.fps), and each shot is filmed by `cameras` virtual cameras (16 by default: a few would make
the score depend on the viewpoints drawn) aimed at it, as a synthetic sequence is: one static
camera aimed at a whole 15 s dance loses the dancer as she crosses the floor. 2D exact by
default, or with the synthetic data's detector-like noise (`noise=True`). Frames whose direct
joints are not all in the picture (the person walked out of a camera's view: no 2D to lift, as
in a real video) are not scored; each group reports the fraction scored (`in_view`).
Metrics on the direct joints: P-MPJPE (similarity
aligned on them), MPJPE (root-relative, the pelvis is the root) and the acceleration error, per
clip, source, motion type and overall, beside two baselines:
- `rest_pose`: the synthetic skeleton standing at rest, facing the camera;
- `flat_2d`: the 2D keypoints themselves with zero depth (root-relative pixels, unseen joints at
  the root; scale-free, so only its P-MPJPE is meaningful and its MPJPE is not reported).
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from edgecap.data.real_motion import DIRECT_MASK, RealClip
from edgecap.data.real_motion.clips import resample, unit
from edgecap.data.skeletons import H36M
from edgecap.data.windows import PoseWindows
from edgecap.metrics.pose3d import pose_metrics
from edgecap.models.lifting.app import INPUT, OUTPUT

FOCUS = ("walk", "run", "dance")  # the motion types the headline aims at
CAMERAS = 16  # virtual cameras per shot by default
SHOT_SECONDS = 2.0  # the longest shot: a synthetic sequence at the defaults (100 frames at 50 fps)


def film(clips: list[RealClip], fps: float, window: int, target: str, cameras: int = CAMERAS, noise: bool = False,
         seed: int = 0) -> tuple[PoseWindows, list[str], np.ndarray]:
    """Windows over every clip, cut into equal shots of at most SHOT_SECONDS, each seen by `cameras`
    cameras; the clip name of each sequence (one per shot and camera); and per window whether
    its target frame has every direct joint in the picture (from the exact projection, so
    detector-like noise does not change which frames count)."""
    import copy

    from edgecap.data.synthetic_motion import observe_motion

    rng = np.random.default_rng(seed)
    exact = {"noise_px": 0.0, "drop_prob": 0.0, "occlusion_rate": 0.0}
    kps, gts, names, seen = [], [], [], []
    for clip in clips:
        world = resample(clip, fps).astype(np.float64)
        for shot in np.array_split(world, int(np.ceil(len(world) / (SHOT_SECONDS * fps)))):
            shot = np.broadcast_to(shot, (cameras,) + shot.shape)
            twin = copy.deepcopy(rng) if noise else None  # the same cameras, drawn first, for the exact projection
            seqs = observe_motion(shot, shot[:, :, 0], "h36m", rng, fps, **({} if noise else exact))
            seen_2d = observe_motion(shot, shot[:, :, 0], "h36m", twin, fps, **exact) if noise else seqs
            in_view = seen_2d.keypoints_2d[..., 2] > 0
            kps += list(seqs.keypoints_2d)
            gts += list(seqs.joints_3d_mm)
            seen += list(in_view[..., DIRECT_MASK].all(-1))
            names += [clip.name] * cameras
    data = PoseWindows.from_sequences(kps, gts, window, target)
    return data, names, np.concatenate(seen)


LIMBS = {"arm": ("shoulder", "elbow", "wrist"), "leg": ("hip", "knee", "ankle")}


def limb_poses(poses: np.ndarray, limb: str) -> np.ndarray:
    """(N, 17, 3) h36m poses in any right-handed frame -> (2N, 6): each frame's right then left
    limb ("arm" or "leg") as its two bone directions in the torso's frame (outward from the
    body's midline, up, forward), so a left limb reads like its mirrored right twin. What
    benchmarks/lifting_pose_coverage.py compares between real and training poses."""
    ix = H36M.index
    up = unit(poses[:, ix("thorax")] - poses[:, ix("pelvis")])
    forward = unit(np.cross(poses[:, ix("l_shoulder")] - poses[:, ix("r_shoulder")], up))
    left = np.cross(up, forward)
    out = []
    for side, outward in (("r", -left), ("l", left)):
        names = [f"{side}_{j}" for j in LIMBS[limb]]
        bones = [unit(poses[:, ix(b)] - poses[:, ix(a)]) for a, b in zip(names[:-1], names[1:])]
        out.append(np.concatenate([np.stack([(v * outward).sum(-1), (v * up).sum(-1), (v * forward).sum(-1)], -1)
                                   for v in bones], -1))
    return np.concatenate(out)


def rest_pose_mm() -> np.ndarray:
    """(17, 3) the synthetic skeleton at rest (standing, arms down), pelvis-relative, facing the
    camera in camera axes (x right, y down, z away)."""
    from edgecap.data.skeletons import H36M
    from edgecap.data.synthetic_motion import _NAMES, _OFFSETS, _PARENTS

    pos = np.zeros((len(_NAMES), 3))
    for j, parent in enumerate(_PARENTS):
        if parent >= 0:
            pos[j] = pos[parent] + _OFFSETS[j]
    body = pos[[_NAMES.index(n) for n in H36M.joints]]
    return body * np.array([1.0, -1.0, -1.0])  # body (x left, y up, z forward) -> camera, facing it


def flat_2d(keypoints: np.ndarray) -> np.ndarray:
    """(N, J, 3) the 2D keypoints (x, y, validity) as a pose with zero depth, relative to the
    pelvis (or the mean of the valid joints where the pelvis is not seen); a joint not seen is
    put at that root, since the baseline cannot know where it is."""
    valid = keypoints[..., 2:3] > 0
    xy = keypoints[..., :2]
    mean = (xy * valid).sum(1, keepdims=True) / np.maximum(valid.sum(1, keepdims=True), 1)
    root = np.where(valid[:, :1], xy[:, :1], mean)
    rel = np.where(valid, xy - root, 0.0)
    return np.concatenate([rel, np.zeros_like(rel[..., :1])], -1)


def _scores(pred: np.ndarray, gt: np.ndarray, seq_ids: np.ndarray, with_mpjpe: bool = True) -> dict:
    """pose_metrics on the direct joints; a scale-free prediction keeps only its P-MPJPE."""
    out = {**pose_metrics(pred[:, DIRECT_MASK], gt[:, DIRECT_MASK], seq_ids), "frames": len(pred)}
    return out if with_mpjpe else {"p_mpjpe_mm": out["p_mpjpe_mm"], "frames": len(pred)}


def evaluate_real_motion(predict, clips: list[RealClip], fps: float, window: int, target: str, cameras: int = CAMERAS,
                         noise: bool = False, seed: int = 0) -> dict:
    """{"groups": {group: {"model": scores, "rest_pose": ..., "flat_2d": ..., "in_view": fraction}},
    "clips": [...], settings}, scored on the frames in view (film).
    Groups: "all", "walk+run+dance", "source:<name>", "motion:<type>", "clip:<name>"."""
    data, names, in_view = film(clips, fps, window, target, cameras, noise, seed)
    preds = np.concatenate([predict({INPUT: kp})[OUTPUT] for kp, _ in data.batches(1024)])
    gt = data.target_poses()
    flat = flat_2d(data.keypoints[data.targets])
    rest = np.broadcast_to(rest_pose_mm(), gt.shape)
    # a run of consecutive scored frames is one sequence for the acceleration error
    breaks = np.r_[True, (np.diff(data.sequence_ids) != 0) | ~in_view[1:] | ~in_view[:-1]]
    runs = np.cumsum(breaks)
    by_clip = {c.name: c for c in clips}
    seq_clip = np.array(names)[data.sequence_ids]
    members = defaultdict(list)
    for i, name in enumerate(seq_clip):
        clip = by_clip[name]
        keys = ["all", f"source:{clip.source}", f"motion:{clip.motion}", f"clip:{name}"]
        if clip.motion in FOCUS:
            keys.append("+".join(FOCUS))
        for k in keys:
            members[k].append(i)
    groups = {}
    for key, idx in members.items():
        idx = np.asarray(idx)
        scored = idx[in_view[idx]]
        sid = runs[scored]
        groups[key] = {"model": _scores(preds[scored], gt[scored], sid),
                       "rest_pose": _scores(rest[scored], gt[scored], sid),
                       "flat_2d": _scores(flat[scored], gt[scored], sid, with_mpjpe=False),
                       "in_view": float(in_view[idx].mean())}
    return {"groups": groups, "clips": [c.name for c in clips], "cameras_per_shot": cameras, "noise": noise,
            "fps": fps, "shot_seconds": SHOT_SECONDS, "direct_joints": int(DIRECT_MASK.sum()), "seed": seed}


def format_table(result: dict) -> str:
    order = sorted(result["groups"], key=lambda k: (k != "all", k != "+".join(FOCUS), k.split(":")[0], k))
    lines = [(f"real motion: {len(result['clips'])} clips in shots of up to {result['shot_seconds']:g} s x "
              f"{result['cameras_per_shot']} virtual cameras, "
              f"{'detector-like noise' if result['noise'] else 'exact 2D'}; errors on the "
              f"{result['direct_joints']} direct joints (mm)"),
             f"{'group':<28} {'frames':>7} {'in view':>8} {'P-MPJPE':>8} {'MPJPE':>7} {'accel':>6} {'rest P':>7} "
             f"{'flat2D P':>9}"]
    for key in order:
        g = result["groups"][key]
        m = g["model"]
        lines.append(f"{key:<28} {m['frames']:>7} {g.get('in_view', 1.0):>8.0%} {m['p_mpjpe_mm']:>8.1f} {m['mpjpe_mm']:>7.1f} "
                     f"{m.get('accel_error_mm', float('nan')):>6.1f} {g['rest_pose']['p_mpjpe_mm']:>7.1f} "
                     f"{g['flat_2d']['p_mpjpe_mm']:>9.1f}")
    return "\n".join(lines)
