"""ONNX Runtime runner: CPU provider, fixed thread count, sequential execution."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgecap import EdgecapError
from edgecap.core.arrays import Arrays, check_named_arrays
from edgecap.core.runner import Runner


class OnnxRunner(Runner):
    format = "onnx"

    def __init__(self, path: str | Path, threads: int = 1, input_names=None, output_names=None):
        # The graph names its own inputs and outputs; `input_names`/`output_names` are not needed.
        import onnxruntime as ort

        self.path = Path(path)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        try:
            self.session = ort.InferenceSession(str(self.path), opts, providers=["CPUExecutionProvider"])
        except Exception as e:  # ORT raises its own Fail/InvalidGraph types
            raise EdgecapError(f"{self.path}: ONNX Runtime cannot load the model: {e}") from e
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.output_names = [o.name for o in self.session.get_outputs()]
        # Static artifacts: every dim is an int; a symbolic dim (str) accepts any size.
        self.input_shapes = {
            i.name: tuple(d if isinstance(d, int) else None for d in i.shape) for i in self.session.get_inputs()
        }

    def run(self, inputs: Arrays) -> Arrays:
        check_named_arrays(inputs, self.input_shapes, f"{self.path.name}")
        feed = {n: np.ascontiguousarray(inputs[n], dtype=np.float32) for n in self.input_names}
        try:
            outs = self.session.run(self.output_names, feed)
        except Exception as e:  # ORT's own Fail/InvalidArgument types
            raise EdgecapError(f"{self.path.name}: ONNX Runtime failed to run the model: {e}") from None
        return dict(zip(self.output_names, outs))

    def metadata(self) -> dict[str, str]:
        return dict(self.session.get_modelmeta().custom_metadata_map)
