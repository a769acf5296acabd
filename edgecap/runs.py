"""A run directory is the hand-off between stages: every stage reads what the last one wrote."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from edgecap import EdgecapError
from edgecap.config import from_dict
from edgecap.io import read_json
from edgecap.models import get_family
from edgecap.train.checkpoint import load_weights


def load_run(run_dir: Path, expect_family: str | None = None) -> tuple[Any, Any]:
    """(family, run config) from RUN/run.json; refuses a run of another model."""
    spec = read_json(Path(run_dir) / "run.json", "run spec")
    if "family" not in spec or "config" not in spec:
        raise EdgecapError(f"{run_dir}/run.json: missing field 'family' or 'config'")
    if expect_family is not None and spec["family"] != expect_family:
        raise EdgecapError(
            f"run directory {run_dir} holds a {spec['family']!r} run, not {expect_family!r}; use another --out"
        )
    family = get_family(spec["family"])
    return family, from_dict(family.run_config, spec["config"], f"{run_dir}/run.json config")


def load_trained_model(run_dir: Path, expect_family: str | None = None) -> tuple[Any, Any, torch.nn.Module]:
    family, run = load_run(run_dir, expect_family)
    weights = Path(run_dir) / "model.safetensors"
    if not weights.exists():
        raise EdgecapError(f"{weights} not found: train the model first (edgecap train {family.name} --out {run_dir})")
    model = family.build(run.model)
    load_weights(weights, model)
    return family, run, model.eval()
