"""The lifter's task side: motion windows in, 3D joints out; MPJPE-family metrics; streaming
prediction over a user's keypoint file. Every function takes a predictor or runner, so eager,
simulated int8 and every artifact go through the same code."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgecap import EdgecapError
from edgecap.core.arrays import Arrays
from edgecap.core.io import atomic_path, load_array
from edgecap.core.runner import Runner
from edgecap.data.skeletons import get_skeleton
from edgecap.data.windows import PoseWindows
from edgecap.metrics.pose3d import pose_metrics
from edgecap.models.lifting.model import LiftingConfig
from edgecap.models.lifting.streaming import StreamingLifter

INPUT = "keypoints_2d"
MAX_PIXELS = 1e6  # beyond this a coordinate is not a pixel position (and float32 sums would overflow)
OUTPUT = "joints_3d_mm"


def sample_batch(data: PoseWindows, rng: np.random.Generator, batch_size: int) -> tuple[Arrays, np.ndarray]:
    kp, gt = data.windows(rng.integers(0, len(data), batch_size))
    return {INPUT: kp}, gt


def calibration_inputs(data: PoseWindows, count: int, seed: int = 0) -> list[Arrays]:
    rng = np.random.default_rng(seed)
    idx = rng.choice(len(data), size=min(count, len(data)), replace=False)
    return [{INPUT: data.windows(idx[i : i + 1])[0]} for i in range(len(idx))]


def evaluate(predict, data: PoseWindows, batch_size: int = 1024, progress: str | None = None) -> dict:
    from edgecap.core.console import progress as progress_bar

    preds = []
    batches = data.batches(batch_size)
    if progress:
        batches = progress_bar(batches, total=-(-len(data) // batch_size), desc=progress, leave=False)
    for kp, _ in batches:
        preds.append(predict({INPUT: kp})[OUTPUT])
    out = pose_metrics(np.concatenate(preds), data.target_poses(), data.sequence_ids)
    out["windows"] = len(data)
    return out


def mean_pose_baseline(train_data: PoseWindows, val_data: PoseWindows) -> dict:
    """The training set's mean pose, predicted for every validation window."""
    mean_pose = train_data.target_poses().mean(0)
    pred = np.broadcast_to(mean_pose, val_data.target_poses().shape)
    return pose_metrics(pred, val_data.target_poses(), val_data.sequence_ids)


def predict_file(runner: Runner, cfg: LiftingConfig, input_path: Path, output_path: Path) -> str:
    """Stream a (F, J, 3) .npy of pixel keypoints + validity; write (F, J, 3) mm as .npy."""
    keypoints = load_array(input_path, "keypoints file")
    j = get_skeleton(cfg.skeleton).num_joints
    if keypoints.ndim != 3 or keypoints.shape[1:] != (j, 3):
        raise EdgecapError(f"{input_path}: keypoints have shape {keypoints.shape}, expected (frames, {j}, 3) "
                           f"= (x_px, y_px, validity) for the {cfg.skeleton} skeleton")
    if len(keypoints) == 0:
        raise EdgecapError(f"{input_path}: the keypoints file holds no frames (shape {keypoints.shape})")
    if not np.issubdtype(keypoints.dtype, np.number) or np.issubdtype(keypoints.dtype, np.complexfloating):
        raise EdgecapError(f"{input_path}: keypoints have dtype {keypoints.dtype}, expected float32")
    values = keypoints.astype(np.float64)
    bad = ~np.isfinite(values)
    if bad.any():
        frame, joint, channel = (int(i) for i in np.argwhere(bad)[0])
        raise EdgecapError(f"{input_path}: {int(bad.sum())} NaN/inf value(s), first at frame {frame}, joint {joint}, "
                           f"channel {channel} ({'x_px y_px validity'.split()[channel]}); mark a missing joint with "
                           "validity 0 instead of NaN")
    far = np.abs(values[..., :2]) > MAX_PIXELS
    if far.any():
        frame, joint, _ = (int(i) for i in np.argwhere(far)[0])
        raise EdgecapError(f"{input_path}: coordinates beyond {MAX_PIXELS:.0e} px, first at frame {frame}, joint "
                           f"{joint}: keypoints must be pixel positions")
    poses = StreamingLifter(runner, cfg.window, j, cfg.target).run_sequence(keypoints.astype(np.float32))
    with atomic_path(output_path) as tmp:
        with open(tmp, "wb") as f:
            np.save(f, poses)
    return f"wrote {output_path}: {poses.shape} ({runner.format})"
