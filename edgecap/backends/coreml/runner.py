"""Run a Core ML `.mlpackage` (macOS only: the Core ML runtime exists nowhere else)."""

from __future__ import annotations

import platform
from pathlib import Path

import numpy as np

from edgecap import EdgecapError
from edgecap.core.arrays import Arrays, check_named_arrays
from edgecap.core.runner import Runner, RunnerUnavailable


class CoreMLRunner(Runner):
    format = "coreml"

    def __init__(self, path: str | Path, threads: int = 1, input_names=None, output_names=None):
        self.path = Path(path)
        if platform.system() != "Darwin":
            raise RunnerUnavailable(
                f"Core ML runs only on macOS; this host is {platform.system()}: artifact {self.path} "
                "was converted and its spec checked, not executed"
            )
        import coremltools as ct  # imported here: it takes ~20 s and is useless off macOS

        # CPU_ONLY keeps results comparable with the other CPU runners; Core ML sets its own
        # thread count, so `threads` is accepted only for the common Runner signature.
        self._model = ct.models.MLModel(str(self.path), compute_units=ct.ComputeUnit.CPU_ONLY)
        spec = self._model.get_spec()
        self.input_names = [f.name for f in spec.description.input]
        self.output_names = [f.name for f in spec.description.output]
        self.input_shapes = {f.name: tuple(f.type.multiArrayType.shape) for f in spec.description.input}

    def run(self, inputs: Arrays) -> Arrays:
        check_named_arrays(inputs, self.input_shapes, f"Core ML runner ({self.path.name})")
        feeds = {n: np.ascontiguousarray(inputs[n], dtype=np.float32) for n in self.input_names}
        try:
            outs = self._model.predict(feeds)
        except Exception as e:
            raise EdgecapError(f"Core ML predict failed on {self.path}: {e}") from e
        return {n: np.asarray(outs[n], dtype=np.float32) for n in self.output_names}

    def metadata(self) -> dict:
        return dict(self._model.user_defined_metadata)
