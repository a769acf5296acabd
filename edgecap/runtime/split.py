"""Run a split artifact (a detector graph + a per-RoI dense graph) as one model.

A split artifact is a directory holding `split.json` and one file per part in the artifact's
format (`detector.onnx` + `dense.onnx`, ...). `split.json`:

    {"format": "onnx", "outputs": [whole-model output names],
     "parts": {"detector": {"file": ..., "inputs": [...], "outputs": [...]},
               "dense": {"file": ..., "inputs": [...features..., "box"], "outputs": [...],
                         "output_shapes": {name: [1, C, M, M]}}}}

`SplitRunner.run` is the runtime glue: run the detector, then the dense graph once per slot
whose score is above `min_score` (default 0: every real detection; an app passes its display
threshold to skip low scores), and assemble the whole model's outputs. Slots the dense graph
did not run for hold zero maps; decoding ignores them (score 0, or under the threshold).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from edgecap import EdgecapError
from edgecap.export.base import Arrays, Runner

SPLIT_FILE = "split.json"


def is_split_artifact(path: Path) -> bool:
    return Path(path).is_dir() and (Path(path) / SPLIT_FILE).exists()


def read_split_spec(path: Path) -> dict:
    spec_path = Path(path) / SPLIT_FILE
    try:
        spec = json.loads(spec_path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise EdgecapError(f"{spec_path}: missing or not JSON: {e}") from None
    for key in ("format", "outputs", "parts"):
        if key not in spec:
            raise EdgecapError(f"{spec_path}: missing field {key!r}")
    for part in ("detector", "dense"):
        if part not in spec["parts"]:
            raise EdgecapError(f"{spec_path}: missing part {part!r}")
    return spec


class SplitRunner(Runner):
    """The glue over two part runners (any format, PyTorch included); `open` reads a directory."""

    def __init__(self, detector: Runner, dense: Runner, spec: dict, min_score: float = 0.0):
        self.detector, self.dense = detector, dense
        self.format = spec["format"]
        self.min_score = float(min_score)
        det, dense = spec["parts"]["detector"], spec["parts"]["dense"]
        self.input_names, self.output_names = list(det["inputs"]), list(spec["outputs"])
        self.feature_names, self.box_input = list(dense["inputs"][:-1]), dense["inputs"][-1]
        self.dense_outputs = list(dense["outputs"])
        self.dense_shapes = {n: tuple(s) for n, s in dense["output_shapes"].items()}
        self.dense_runs = 0  # dense-graph calls of the last run()

    @classmethod
    def open(cls, path: str | Path, threads: int = 1, min_score: float = 0.0) -> "SplitRunner":
        from edgecap.runtime import open_runner

        path = Path(path)
        spec = read_split_spec(path)
        det, dense = spec["parts"]["detector"], spec["parts"]["dense"]
        runners = [open_runner(path / p["file"], spec["format"], threads, p["inputs"], p["outputs"]) for p in (det, dense)]
        return cls(*runners, spec, min_score)

    def run(self, inputs: Arrays) -> Arrays:
        det = self.detector.run(inputs)
        boxes, scores = np.asarray(det["boxes"]), np.asarray(det["scores"])
        d = scores.shape[0]
        out = {"boxes": boxes, "scores": scores}
        out.update({n: np.zeros((d, *self.dense_shapes[n][1:]), np.float32) for n in self.dense_outputs})
        features = {n: det[n] for n in self.feature_names}
        run_for = np.nonzero(np.isfinite(scores) & (scores > 0) & (scores >= self.min_score))[0]
        for k in run_for:
            maps = self.dense.run({**features, self.box_input: boxes[k : k + 1].astype(np.float32)})
            for n in self.dense_outputs:
                out[n][k] = maps[n][0]
        self.dense_runs = len(run_for)
        return {n: out[n] for n in self.output_names}

    def metadata(self) -> dict:
        return self.detector.metadata() if hasattr(self.detector, "metadata") else {}
