"""The exporter interface every backend implements: `export(request, out_path) -> ArtifactRecord`.

The request carries the export-form model (eval mode, BN folded), named example inputs at the
static shapes, output names, precision, the int8 recipe (calibration inputs and the modules
kept in fp32), and the metadata each artifact stores in its format's native place. Runners
implement `edgecap.core.runner.Runner`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from edgecap import EdgecapError
from edgecap.core.arrays import Arrays, check_named_arrays


@dataclass
class ExportRequest:
    model: torch.nn.Module
    example_inputs: Arrays
    output_names: list[str]
    precision: str  # "fp32" | "int8"
    metadata: dict[str, str]
    calibration: list[Arrays] = field(default_factory=list)
    float_modules: list[str] = field(default_factory=list)
    # Outputs that may stay int8: a split graph's features handed to the next graph. A runner
    # returns them dequantized; every other output must come out float.
    quantized_outputs: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.precision not in ("fp32", "int8"):
            raise EdgecapError(f"export precision must be 'fp32' or 'int8', got {self.precision!r}")
        known = dict(self.model.named_modules())
        missing = [m for m in self.float_modules if m not in known]
        if missing:
            raise EdgecapError(f"float_modules {missing} are not submodules of {type(self.model).__name__}")
        unknown = [n for n in self.quantized_outputs if n not in self.output_names]
        if unknown:
            raise EdgecapError(f"quantized_outputs {unknown} are not outputs {self.output_names}")

    def example_args(self) -> tuple[torch.Tensor, ...]:
        return tuple(torch.from_numpy(np.ascontiguousarray(a)) for a in self.example_inputs.values())

    def check_calibration(self) -> list[Arrays]:
        """The calibration inputs, after checking each has the example's names and shapes."""
        if not self.calibration:
            raise EdgecapError(f"int8 export of {type(self.model).__name__} needs calibration inputs; the request has none")
        shapes = {n: a.shape for n, a in self.example_inputs.items()}
        for i, sample in enumerate(self.calibration):
            check_named_arrays(sample, shapes, f"calibration sample {i}")
        return self.calibration

    def calibration_args(self) -> list[tuple[torch.Tensor, ...]]:
        """Checked calibration inputs as tensor tuples in input order (for PT2E)."""
        return [tuple(torch.from_numpy(np.ascontiguousarray(s[n], dtype=np.float32)) for n in self.example_inputs)
                for s in self.check_calibration()]


@dataclass
class ArtifactRecord:
    """What the manifest records of one artifact (sha256 and size are added by the stage)."""

    format: str  # "onnx" | "tflite" | "executorch" | "coreml"
    precision: str  # "fp32" | "int8"
    scheme: str  # e.g. "ORT static QDQ, per-channel int8 weights, int8 activations"
    runnable_here: bool = True  # False for Core ML on Linux
    notes: list[str] = field(default_factory=list)
    details: dict = field(default_factory=dict)  # backend facts: delegated nodes, opset, ...
