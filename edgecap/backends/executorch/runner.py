"""ExecuTorch runner over the Python runtime bindings (portable kernels + XNNPACK)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from edgecap import EdgecapError
from edgecap.core.arrays import Arrays, check_named_arrays
from edgecap.core.runner import Runner

# Constant methods edgecap's exporter adds to a program (a .pte has no metadata table or tensor names).
METADATA_METHOD = "edgecap_metadata"
INPUT_NAMES_METHOD = "input_names"
OUTPUT_NAMES_METHOD = "output_names"


class ExecuTorchRunner(Runner):
    """Runs `forward` of a .pte. Tensor names come from the arguments (e.g. the manifest), else
    from the program's `input_names()` / `output_names()` constant methods, else (a program edgecap
    did not make) they are `input_0, ...` and `output_0, ...`."""

    format = "executorch"

    def __init__(
        self,
        path: str | Path,
        threads: int = 1,
        input_names: list[str] | None = None,
        output_names: list[str] | None = None,
    ):
        from executorch.runtime import Runtime

        self.path = Path(path)
        self.threads = threads
        self._set_threads()
        try:
            self.program = Runtime.get().load_program(self.path)
            self.method = self.program.load_method("forward")
        except Exception as e:
            raise EdgecapError(f"{self.path}: ExecuTorch cannot load method 'forward': {e}") from e
        meta = self.method.metadata
        self.input_names = list(input_names or self._constant(INPUT_NAMES_METHOD)
                                or [f"input_{i}" for i in range(meta.num_inputs())])
        self.output_names = list(output_names or self._constant(OUTPUT_NAMES_METHOD)
                                 or [f"output_{i}" for i in range(meta.num_outputs())])
        if len(self.input_names) != meta.num_inputs() or len(self.output_names) != meta.num_outputs():
            raise EdgecapError(
                f"{self.path}: program has {meta.num_inputs()} input(s) and {meta.num_outputs()} output(s), "
                f"names given: {self.input_names} -> {self.output_names} (pass input_names/output_names)"
            )
        self.input_shapes = {n: tuple(meta.input_tensor_meta(i).sizes()) for i, n in enumerate(self.input_names)}

    def _set_threads(self) -> None:
        # The XNNPACK threadpool is process-global: one size for every runner in the process.
        # Re-set it before each run so runners with different thread counts can alternate.
        from executorch.extension.pybindings import portable_lib

        if portable_lib._threadpool_get_thread_count() != self.threads:
            portable_lib._unsafe_reset_threadpool(self.threads)

    def _constant(self, method: str) -> list | None:
        if method not in self.program.method_names:
            return None
        return list(self.program.load_method(method).execute([]))

    def run(self, inputs: Arrays) -> Arrays:
        check_named_arrays(inputs, self.input_shapes, self.path.name)
        self._set_threads()
        args = [torch.from_numpy(np.ascontiguousarray(inputs[n], dtype=np.float32)) for n in self.input_names]
        outs = self.method.execute(args)
        return {n: o.numpy().copy() for n, o in zip(self.output_names, outs)}

    def metadata(self) -> dict[str, str]:
        values = self._constant(METADATA_METHOD)
        return json.loads(values[0]) if values else {}
