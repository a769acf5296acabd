"""Weights as safetensors: written atomically, loaded strictly (no pickle, so no code runs)."""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from edgecap import EdgecapError
from edgecap.core.io import atomic_path


def save_weights(path: Path, module: torch.nn.Module, metadata: dict | None = None) -> None:
    tensors = {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata={k: str(v) for k, v in (metadata or {}).items()})


def load_weights(path: Path, module: torch.nn.Module) -> None:
    """Strict load: every tensor present with the right shape, or a message naming it."""
    path = Path(path)
    if not path.exists():
        raise EdgecapError(f"weights file not found: {path}")
    try:
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as e:
        raise EdgecapError(f"weights file {path} is corrupt or not safetensors: {e}") from None
    expected = module.state_dict()
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    if missing or unexpected:
        raise EdgecapError(f"{path}: missing tensors {missing[:5]}, unexpected tensors {unexpected[:5]}")
    for k, v in expected.items():
        if tensors[k].shape != v.shape:
            raise EdgecapError(f"{path}: tensor {k!r} has shape {tuple(tensors[k].shape)}, model expects {tuple(v.shape)}")
        if tensors[k].dtype != v.dtype:
            raise EdgecapError(f"{path}: tensor {k!r} is {tensors[k].dtype}, model expects {v.dtype}")
        if tensors[k].is_floating_point() and not torch.isfinite(tensors[k]).all():
            raise EdgecapError(f"{path}: tensor {k!r} holds NaN or inf values")
    module.load_state_dict(tensors)
