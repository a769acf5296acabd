"""Deployable parts, and the on-disk form of a multi-part artifact.

A family deploys a model as one graph ("whole") or as several parts (e.g. one graph per image and
one per person found; or an encoder run once per user and a decoder run per frame). A multi-part artifact
is a folder with one file per part in one format, plus `parts.json`:

    {"layout": "...", "format": "onnx", "inputs": [whole-model inputs], "outputs": [whole-model outputs],
     "parts": [{"name": ..., "file": ..., "inputs": [...], "outputs": [...], "precision": "fp32"|"int8",
                "output_shapes": {name: [...]}}, ...]}

Backends open each file; the family's `compose` glues the part runners into one runner.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgecap import EdgecapError

PARTS_FILE = "parts.json"


@dataclass(frozen=True)
class Part:
    """One deployable graph: a module with named inputs and outputs."""

    name: str
    module: Any  # torch.nn.Module (torch is imported only where a graph is run)
    input_names: list[str]
    output_names: list[str]
    # A part that stays fp32 in an int8 artifact: a small exact computation (a geometric solve) that
    # int8 would ruin and that has nothing worth quantizing.
    float_only: bool = False


def parts_spec(layout: str, fmt: str, parts: list[Part], outputs: list[str], examples: dict,
               suffix: str = "", inputs: list[str] | None = None, precision: str = "fp32") -> dict:
    """The parts.json of a layout; each part's output shapes come from running it on its example
    inputs (`examples[part name]`, named arrays). `inputs`: the whole model's (default: the first part's)."""
    import numpy as np
    import torch

    spec = {"layout": layout, "format": fmt, "inputs": list(inputs or parts[0].input_names), "outputs": list(outputs),
            "parts": []}
    for part in parts:
        args = [torch.from_numpy(np.ascontiguousarray(examples[part.name][n])) for n in part.input_names]
        with torch.no_grad():
            ref = part.module(*args)
        ref = ref if isinstance(ref, (tuple, list)) else (ref,)
        spec["parts"].append({"name": part.name, "file": f"{part.name}{suffix}", "inputs": list(part.input_names),
                              "outputs": list(part.output_names),
                              "precision": "fp32" if part.float_only else precision,
                              "output_shapes": {n: list(t.shape) for n, t in zip(part.output_names, ref)}})
    return spec


def is_multipart(path: Path) -> bool:
    return Path(path).is_dir() and (Path(path) / PARTS_FILE).exists()


def read_parts_spec(path: Path) -> dict:
    spec_path = Path(path) / PARTS_FILE
    try:
        spec = json.loads(spec_path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise EdgecapError(f"{spec_path}: missing or not JSON: {e}") from None
    if not isinstance(spec, dict):
        raise EdgecapError(f"{spec_path}: expected a JSON object")
    for key in ("layout", "format", "inputs", "outputs", "parts"):
        if key not in spec:
            raise EdgecapError(f"{spec_path}: missing field {key!r}")
    for i, part in enumerate(spec["parts"]):
        for key in ("name", "file", "inputs", "outputs"):
            if not isinstance(part, dict) or key not in part:
                raise EdgecapError(f"{spec_path}: part {i} lacks field {key!r}")
    return spec
