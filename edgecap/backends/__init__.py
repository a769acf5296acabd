"""Backends by format: one package each, with the same inner layout (`export.py`: the exporter,
`runner.py`: the runtime). A plain dict, imported lazily so that a converter or runtime is only
loaded when its format is used.

    exporter: export(ExportRequest, out_path) -> ArtifactRecord   (edgecap.backends.base)
    runner:   Runner(path, threads, input_names, output_names)   (edgecap.core.runner.Runner)
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path

from edgecap import EdgecapError
from edgecap.core.parts import is_multipart, read_parts_spec


@dataclass(frozen=True)
class Backend:
    name: str
    suffix: str
    exporter: str  # "module:function"
    runner: str  # "module:class"


BACKENDS = {
    "onnx": Backend("onnx", ".onnx", "edgecap.backends.onnx.export:export_onnx", "edgecap.backends.onnx.runner:OnnxRunner"),
    "tflite": Backend("tflite", ".tflite", "edgecap.backends.tflite.export:export_tflite",
                      "edgecap.backends.tflite.runner:TFLiteRunner"),
    "executorch": Backend("executorch", ".pte", "edgecap.backends.executorch.export:export_executorch",
                          "edgecap.backends.executorch.runner:ExecuTorchRunner"),
    "coreml": Backend("coreml", ".mlpackage", "edgecap.backends.coreml.export:export_coreml",
                      "edgecap.backends.coreml.runner:CoreMLRunner"),
}
PRECISIONS = ("fp32", "int8")


def _load(ref: str):
    module, name = ref.split(":")
    return getattr(importlib.import_module(module), name)


def get_backend(fmt: str) -> Backend:
    if fmt not in BACKENDS:
        raise EdgecapError(f"unknown format {fmt!r}; available: {sorted(BACKENDS)}")
    return BACKENDS[fmt]


def get_exporter(fmt: str):
    return _load(get_backend(fmt).exporter)


def format_of(path: Path) -> str:
    """The format of an artifact file by its suffix (a multi-part folder: its parts.json)."""
    path = Path(path)
    if is_multipart(path):
        return read_parts_spec(path)["format"]
    for backend in BACKENDS.values():
        if path.name.endswith(backend.suffix):
            return backend.name
    raise EdgecapError(f"{path}: unknown model format; expected one of "
                       f"{', '.join(b.suffix for b in BACKENDS.values())}")


def open_runner(path: Path, fmt: str | None = None, threads: int = 1, input_names: list[str] | None = None,
                output_names: list[str] | None = None):
    """Open one artifact file as an edgecap.core.runner.Runner. Names are needed only where the
    format stores none (.pte)."""
    path = Path(path)
    if not path.exists():
        raise EdgecapError(f"artifact not found: {path}")
    fmt = fmt or format_of(path)
    return _load(get_backend(fmt).runner)(path, threads=threads, input_names=input_names, output_names=output_names)


def open_parts(path: Path, threads: int = 1) -> tuple[dict, dict]:
    """(parts.json, {part name: runner}) of a multi-part artifact folder."""
    spec = read_parts_spec(path)
    runners = {p["name"]: open_runner(Path(path) / p["file"], spec["format"], threads, p["inputs"], p["outputs"])
               for p in spec["parts"]}
    return spec, runners
