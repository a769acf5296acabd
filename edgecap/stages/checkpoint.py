"""Checkpoints as safetensors plus a JSON spec, written atomically; resumable training state.

Layout of a run directory:
    run.json                      family name + full frozen config (written at start)
    checkpoints/step-000500/      model.safetensors, optimizer.safetensors (+ optimizer-<phase>.safetensors
                                  for a family with several training phases), state.json
    model.safetensors, model.json the final weights and their spec (config, metrics)
A checkpoint directory is complete once renamed from its temp name; resume takes the newest.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from edgecap import EdgecapError
from edgecap.core.io import atomic_path, read_json
from edgecap.core.weights import load_weights


def _optimizer_tensors(optimizer: torch.optim.Optimizer) -> tuple[dict, dict]:
    sd = optimizer.state_dict()
    tensors = {}
    for idx, state in sd["state"].items():
        for name, value in state.items():
            tensors[f"{idx}.{name}"] = value.detach().cpu().contiguous() if torch.is_tensor(value) else torch.tensor(value)
    return tensors, {"param_groups": sd["param_groups"]}


def _restore_optimizer(optimizer: torch.optim.Optimizer, tensors: dict, groups: dict) -> None:
    state: dict = {}
    for key, value in tensors.items():
        idx, name = key.split(".", 1)
        state.setdefault(int(idx), {})[name] = value
    optimizer.load_state_dict({"state": state, "param_groups": groups["param_groups"]})


def _optimizer_file(name: str, first: bool) -> str:
    return "optimizer.safetensors" if first else f"optimizer-{name}.safetensors"


def save_checkpoint(root: Path, step: int, model: torch.nn.Module, optimizers: dict[str, torch.optim.Optimizer],
                    state: dict, keep: int = 2) -> Path:
    """optimizers: {phase name: optimizer}, in phase order (the first keeps the file name
    optimizer.safetensors)."""
    final = Path(root) / f"step-{step:07d}"
    with atomic_path(final, suffix=".dir") as tmp:
        tmp.mkdir()
        save_file({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}, str(tmp / "model.safetensors"))
        groups = {}
        for i, (name, optimizer) in enumerate(optimizers.items()):
            opt_tensors, groups[name] = _optimizer_tensors(optimizer)
            save_file(opt_tensors, str(tmp / _optimizer_file(name, i == 0)))
        first = next(iter(groups))
        (tmp / "state.json").write_text(json.dumps({**state, "step": step, "optimizer": groups[first],
                                                    "optimizers": groups}))
    for old in sorted(Path(root).glob("step-*"))[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def latest_checkpoint(root: Path) -> Path | None:
    done = sorted(p for p in Path(root).glob("step-*") if (p / "state.json").exists())
    return done[-1] if done else None


def load_checkpoint(path: Path, model: torch.nn.Module, optimizers: dict[str, torch.optim.Optimizer]) -> dict:
    load_weights(path / "model.safetensors", model)
    state = read_json(path / "state.json", "checkpoint state")
    groups = state.get("optimizers") or {next(iter(optimizers)): state["optimizer"]}  # one-optimizer checkpoints
    if list(groups) != list(optimizers):
        raise EdgecapError(f"checkpoint {path} holds the optimizers {list(groups)}, this model trains "
                           f"{list(optimizers)}; choose another --out")
    for i, (name, optimizer) in enumerate(optimizers.items()):
        file = path / _optimizer_file(name, i == 0)
        try:
            opt_tensors = load_file(str(file))
        except (SafetensorError, OSError) as e:
            raise EdgecapError(f"checkpoint {path}: {file.name} is corrupt: {e}") from None
        _restore_optimizer(optimizer, opt_tensors, groups[name])
    return state


def rng_state(rng: np.random.Generator) -> dict:
    return rng.bit_generator.state


def restore_rng(state: dict) -> np.random.Generator:
    rng = np.random.default_rng()
    rng.bit_generator.state = state
    return rng
