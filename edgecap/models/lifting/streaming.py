"""Frame-by-frame lifting: a ring buffer of the last T frames in front of any predictor.

An app feeds one frame of 2D keypoints (J, 3) at a time and gets a 3D pose per frame. Before
the first T frames the buffer holds zeros with validity 0, the same padding the batch path
(`edgecap.data.windows`) uses, so streaming and batch results are identical. With a
centre-frame model the pose lags by (T-1)/2 frames; `flush()` returns the trailing poses.
"""

from __future__ import annotations

import numpy as np

from edgecap import EdgecapError
from edgecap.core.arrays import check_named_arrays
from edgecap.core.runner import Runner


class StreamingLifter:
    def __init__(self, runner: Runner, window: int, num_joints: int, target: str = "last"):
        self.runner = runner
        self.window, self.num_joints = window, num_joints
        self.latency = 0 if target == "last" else (window - 1) // 2
        self.input_name, self.output_name = runner.input_names[0], runner.output_names[0]
        self.reset()

    def reset(self) -> None:
        self._buffer = np.zeros((self.window, self.num_joints, 3), np.float32)
        self._next = 0  # ring position of the next frame to write
        self._frames = 0

    def push(self, keypoints: np.ndarray) -> tuple[int, np.ndarray] | None:
        """Add one frame (J, 3) = (x_px, y_px, validity). Returns (frame index, pose (J, 3) mm)
        for the frame `latency` frames back, or None while that frame does not exist yet."""
        keypoints = np.asarray(keypoints, dtype=np.float32)
        check_named_arrays({"frame": keypoints}, {"frame": (self.num_joints, 3)}, "StreamingLifter.push")
        return self._append(keypoints)

    def flush(self) -> list[tuple[int, np.ndarray]]:
        """End the stream: the poses a centre-frame model still owes, then a reset."""
        pad = np.zeros((self.num_joints, 3), np.float32)
        real = self._frames
        outs = [self._append(pad) for _ in range(self.latency)]
        self.reset()
        return [o for o in outs if o is not None and o[0] < real]

    def _append(self, frame: np.ndarray) -> tuple[int, np.ndarray] | None:
        self._buffer[self._next] = frame
        self._next = (self._next + 1) % self.window
        self._frames += 1
        index = self._frames - 1 - self.latency
        if index < 0:
            return None
        ordered = self._buffer[(self._next + np.arange(self.window)) % self.window]
        pose = self.runner.run({self.input_name: ordered[None]})[self.output_name][0]
        return index, pose

    def run_sequence(self, keypoints: np.ndarray) -> np.ndarray:
        """Stream a whole sequence (F, J, 3); returns poses (F, J, 3)."""
        if keypoints.ndim != 3:
            raise EdgecapError(f"run_sequence expects (frames, J, 3), got {keypoints.shape}")
        self.reset()
        outs = [self.push(f) for f in keypoints]
        outs = [o for o in outs if o is not None] + self.flush()
        return np.stack([pose for _, pose in outs])
