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


def derive_run(source: Path, out: Path, overrides: list[str]) -> dict:
    """A new run directory with the source run's trained weights under a changed config, e.g.
    `model.input_size=512` to export a 320-trained detector at 512. Only settings that leave
    every weight's shape unchanged are possible (the weights are loaded strictly into the new
    model, and a mismatch names the tensor). Later stages run on the new directory as usual.
    The training record (model.json) is copied with `derived_from`; its metrics are the
    source's, measured at the source config."""
    import shutil

    from edgecap.config import apply_overrides, to_dict
    from edgecap.io import write_json
    from edgecap.train.checkpoint import write_run_spec

    source, out = Path(source), Path(out)
    family, run = load_run(source)
    if not overrides:
        raise EdgecapError("derive needs at least one --set key=value")
    if out.exists() and any(out.iterdir()):
        raise EdgecapError(f"{out} exists and is not empty; derive writes a new run directory")
    new = apply_overrides(run, overrides)
    new.model.validate()
    model = family.build(new.model)
    load_weights(source / "model.safetensors", model)  # raises, naming the tensor, if a shape changed
    out.mkdir(parents=True, exist_ok=True)
    write_run_spec(out, family.name, to_dict(new))
    shutil.copy(source / "model.safetensors", out / "model.safetensors")
    record = read_json(source / "model.json", "model spec") if (source / "model.json").exists() else {}
    record["derived_from"] = {"run": str(source), "overrides": list(overrides)}
    write_json(out / "model.json", record)
    return record
