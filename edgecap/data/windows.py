"""Sliding windows of T frames over variable-length keypoint sequences.

Frames outside a sequence are padding: zeros with validity 0, exactly what the streaming
helper feeds before the first frame (and after the last, for centre-frame targets). So the
batch path and the streaming path see the same windows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgecap import EdgecapError


def window_offsets(window: int, target: str) -> np.ndarray:
    """Frame offsets of a window relative to its target frame."""
    if target == "last":
        return np.arange(-(window - 1), 1)
    if target != "centre" or window % 2 == 0:
        raise EdgecapError(f"window target {target!r} with {window} frames: use 'last', or 'centre' with an odd window")
    half = (window - 1) // 2
    return np.arange(-half, half + 1)


@dataclass
class PoseWindows:
    """All target frames of a set of sequences, gathered into windows on demand.

    keypoints: flat padded array (N_padded, J, 3); joints_3d_mm: (N_padded, J, 3);
    targets: index into the flat arrays of every real frame; sequence_ids / frame_ids per target.
    """

    keypoints: np.ndarray
    joints_3d_mm: np.ndarray
    targets: np.ndarray
    sequence_ids: np.ndarray
    frame_ids: np.ndarray
    offsets: np.ndarray

    @classmethod
    def from_sequences(cls, keypoints_seqs, joints_seqs, window: int, target: str) -> "PoseWindows":
        offsets = window_offsets(window, target)
        if not keypoints_seqs:
            raise EdgecapError("no sequences to window: the data source returned none")
        before, after = -offsets.min(), offsets.max()
        kp_parts, gt_parts, tgt, sid, fid = [], [], [], [], []
        pos = 0
        for s, (kp, gt) in enumerate(zip(keypoints_seqs, joints_seqs)):
            if kp.ndim != 3 or kp.shape[-1] != 3 or gt.shape != kp.shape:
                raise EdgecapError(
                    f"sequence {s}: keypoints {kp.shape} and joints {gt.shape} must both be (frames, J, 3)"
                )
            f, j, _ = kp.shape
            kp_parts += [np.zeros((before, j, 3), np.float32), kp.astype(np.float32), np.zeros((after, j, 3), np.float32)]
            gt_parts += [np.zeros((before, j, 3), np.float32), gt.astype(np.float32), np.zeros((after, j, 3), np.float32)]
            tgt.append(pos + before + np.arange(f))
            sid.append(np.full(f, s))
            fid.append(np.arange(f))
            pos += before + f + after
        return cls(
            keypoints=np.concatenate(kp_parts),
            joints_3d_mm=np.concatenate(gt_parts),
            targets=np.concatenate(tgt),
            sequence_ids=np.concatenate(sid),
            frame_ids=np.concatenate(fid),
            offsets=offsets,
        )

    def __len__(self) -> int:
        return len(self.targets)

    @property
    def num_joints(self) -> int:
        return self.keypoints.shape[1]

    def windows(self, index: np.ndarray | slice) -> tuple[np.ndarray, np.ndarray]:
        """(B, T, J, 3) keypoint windows and (B, J, 3) target-frame 3D joints."""
        t = self.targets[index]
        return self.keypoints[t[:, None] + self.offsets[None, :]], self.joints_3d_mm[t]

    def target_poses(self) -> np.ndarray:
        return self.joints_3d_mm[self.targets]

    def batches(self, batch_size: int):
        for start in range(0, len(self), batch_size):
            yield self.windows(slice(start, start + batch_size))
