"""Runners: one per format, all mapping named numpy arrays to named numpy arrays."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from edgecap import EdgecapError
from edgecap.export.base import Arrays, Runner

FORMATS = {"onnx": ".onnx", "tflite": ".tflite", "executorch": ".pte", "coreml": ".mlpackage"}


class TorchRunner(Runner):
    """PyTorch eager, the reference every artifact is compared with."""

    format = "pytorch"

    def __init__(self, model: torch.nn.Module, input_names: list[str], output_names: list[str], threads: int | None = None):
        # Graph modules from torch.export/PT2E refuse .eval(); they were exported in eval mode.
        self.model = model if isinstance(model, torch.fx.GraphModule) else model.eval()
        self.input_names, self.output_names = list(input_names), list(output_names)
        if threads:
            torch.set_num_threads(threads)

    @torch.no_grad()
    def run(self, inputs: Arrays) -> Arrays:
        outs = self.model(*[torch.from_numpy(np.ascontiguousarray(inputs[n])) for n in self.input_names])
        outs = outs if isinstance(outs, (tuple, list)) else (outs,)
        return {n: o.numpy() for n, o in zip(self.output_names, outs)}


def open_runner(path: Path, fmt: str, threads: int = 1, input_names=None, output_names=None) -> Runner:
    """Open an exported artifact. Names are needed only where the format stores none (.pte)."""
    path = Path(path)
    if not path.exists():
        raise EdgecapError(f"artifact not found: {path}")
    from edgecap.runtime.split import SplitRunner, is_split_artifact

    if is_split_artifact(path):  # detector + per-RoI dense graph, run as one model
        return SplitRunner.open(path, threads)
    if fmt == "onnx":
        from edgecap.runtime.onnx import OnnxRunner

        return OnnxRunner(path, threads)
    if fmt == "tflite":
        from edgecap.runtime.tflite import TFLiteRunner

        return TFLiteRunner(path, threads)
    if fmt == "executorch":
        from edgecap.runtime.executorch import ExecuTorchRunner

        return ExecuTorchRunner(path, threads, input_names=input_names, output_names=output_names)
    if fmt == "coreml":
        from edgecap.runtime.coreml import CoreMLRunner

        return CoreMLRunner(path, threads)
    raise EdgecapError(f"unknown format {fmt!r}; available: {sorted(FORMATS)}")


def check_artifact_model(runner: Runner, family: str, path: Path) -> None:
    """Refuse an artifact whose metadata names another model family (e.g. a lifter's .tflite
    copied over a DensePose artifact)."""
    meta = runner.metadata() if hasattr(runner, "metadata") else {}
    if meta and meta.get("model") not in (None, family):
        raise EdgecapError(f"artifact {path} holds a {meta.get('model')!r} model, not {family!r}")


def batched(runner: Runner, static_batch: int | None = 1):
    """A predictor for any batch size over a runner whose artifact takes `static_batch` rows."""

    def predict(arrays: Arrays) -> Arrays:
        n = len(next(iter(arrays.values())))
        if static_batch is None or n == static_batch:
            return runner.run(arrays)
        parts = [runner.run({k: v[i : i + static_batch] for k, v in arrays.items()}) for i in range(0, n, static_batch)]
        return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}

    return predict


class CheckedRunner(Runner):
    """Checks names, shapes, dtype and finiteness of every input before the runtime sees it."""

    def __init__(self, runner: Runner, shapes: dict[str, tuple], where: str):
        from edgecap.runtime.checks import check_named_arrays

        self._check = lambda arrays: check_named_arrays(arrays, shapes, where)
        self.runner, self.format = runner, runner.format
        self.input_names, self.output_names = runner.input_names, runner.output_names

    def run(self, inputs: Arrays) -> Arrays:
        self._check(inputs)
        return self.runner.run({k: np.asarray(v, np.float32) for k, v in inputs.items()})
