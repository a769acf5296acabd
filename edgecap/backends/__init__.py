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
    # False where the runtime may abort the process on a corrupt file instead of raising: a file
    # that no manifest's sha256 vouches for is then first opened in a throwaway process.
    opens_corrupt_files_safely: bool = True


BACKENDS = {
    "onnx": Backend("onnx", ".onnx", "edgecap.backends.onnx.export:export_onnx",
                    "edgecap.backends.onnx.runner:OnnxRunner"),
    "tflite": Backend("tflite", ".tflite", "edgecap.backends.tflite.export:export_tflite",
                      "edgecap.backends.tflite.runner:TFLiteRunner"),
    "executorch": Backend("executorch", ".pte", "edgecap.backends.executorch.export:export_executorch",
                          "edgecap.backends.executorch.runner:ExecuTorchRunner", opens_corrupt_files_safely=False),
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
                output_names: list[str] | None = None, trusted: bool = False):
    """Open one artifact file as an edgecap.core.runner.Runner. Names are needed only where the
    format stores none (.pte). `trusted`: the file's sha256 matched its manifest entry."""
    path = Path(path)
    if not path.exists():
        raise EdgecapError(f"artifact not found: {path}")
    backend = get_backend(fmt or format_of(path))
    if not trusted and not backend.opens_corrupt_files_safely:
        _probe(backend, path)
    return _load(backend.runner)(path, threads=threads, input_names=input_names, output_names=output_names)


def _probe(backend: Backend, path: Path) -> None:
    """Open `path` in a throwaway process first: a runtime that aborts on a corrupt file takes
    that process down, not this one, and the user gets a message instead of a dead process."""
    import subprocess
    import sys

    code = (f"import sys; from edgecap.backends import _load; "
            f"_load({backend.runner!r})(sys.argv[1], threads=1)")
    proc = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True)
    if proc.returncode != 0:
        lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
        last = next((ln for ln in reversed(lines) if "Error" in ln or "error" in ln), lines[-1] if lines else "")
        raise EdgecapError(f"{path}: the {backend.name} runtime cannot load it (exit {proc.returncode}): "
                           f"{last.strip()[:300]}")


def open_parts(path: Path, threads: int = 1, trusted: bool = False) -> tuple[dict, dict]:
    """(parts.json, {part name: runner}) of a multi-part artifact folder."""
    spec = read_parts_spec(path)
    runners = {p["name"]: open_runner(Path(path) / p["file"], spec["format"], threads, p["inputs"], p["outputs"],
                                      trusted) for p in spec["parts"]}
    return spec, runners
