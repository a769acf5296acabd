"""Exporters by format: a plain dict of lazily imported `export(request, out) -> ArtifactRecord`."""

from __future__ import annotations

import importlib

from edgecap import EdgecapError

EXPORTERS = {
    "onnx": ("edgecap.export.onnx", "export_onnx", ".onnx"),
    "tflite": ("edgecap.export.tflite", "export_tflite", ".tflite"),
    "executorch": ("edgecap.export.executorch", "export_executorch", ".pte"),
    "coreml": ("edgecap.export.coreml", "export_coreml", ".mlpackage"),
}
PRECISIONS = ("fp32", "int8")


def get_exporter(fmt: str):
    if fmt not in EXPORTERS:
        raise EdgecapError(f"unknown format {fmt!r}; available: {sorted(EXPORTERS)}")
    module, func, _ = EXPORTERS[fmt]
    return getattr(importlib.import_module(module), func)
