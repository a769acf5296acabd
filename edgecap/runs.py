"""A run directory is the hand-off between stages: every stage reads what the last one wrote.

    run.json            family name + the full frozen config (written when training starts)
    model.safetensors   the trained weights; model.json: their training record (metrics, steps)
    quantize/           the int8 recipe (edgecap.stages.quantize)
    export/             artifacts + manifest.json (edgecap.stages.export)
    validate.json, bench.json, report.*
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from edgecap import EdgecapError, __version__
from edgecap.core.config import from_dict
from edgecap.core.io import read_json, sha256_of, write_json
from edgecap.core.parts import is_multipart
from edgecap.core.runner import Runner
from edgecap.core.weights import load_weights
from edgecap.models import get_family


def load_run(run_dir: Path, expect_family: str | None = None) -> tuple[Any, Any]:
    """(family, run config) from RUN/run.json; refuses a run of another model."""
    spec = read_json(Path(run_dir) / "run.json", "run spec")
    if not isinstance(spec, dict) or not isinstance(spec.get("family"), str) or not isinstance(spec.get("config"), dict):
        raise EdgecapError(f"{run_dir}/run.json: field 'family' (a name) or 'config' (an object) is missing or wrong")
    if expect_family is not None and spec["family"] != expect_family:
        raise EdgecapError(
            f"run directory {run_dir} holds a {spec['family']!r} run, not {expect_family!r}; use another --out"
        )
    family = get_family(spec["family"])
    return family, from_dict(family.facts.run_config, spec["config"], f"{run_dir}/run.json config")


def load_trained_model(run_dir: Path, expect_family: str | None = None) -> tuple[Any, Any, torch.nn.Module]:
    family, run = load_run(run_dir, expect_family)
    weights = Path(run_dir) / "model.safetensors"
    if not weights.exists():
        raise EdgecapError(f"{weights} not found: train the model first (edgecap train {family.name} --out {run_dir})")
    model = family.build(run.model)
    load_weights(weights, model)
    return family, run, model.eval()


def eager_runner(run_dir: Path, inputs: dict, layout: str = "whole", threads: int | None = None) -> Runner:
    """The run's PyTorch model (its export form) as a Runner with the whole model's inputs: one
    graph for "whole", else the layout's parts, each eager, composed by the family as its artifacts
    are. `inputs` (one whole-model input) give each part's output shapes."""
    from edgecap.core.parts import parts_spec
    from edgecap.core.runner import TorchRunner

    family, run, model = load_trained_model(run_dir)
    form = family.export_form(model)
    names, outs = list(family.input_spec(run.model)), family.output_names(run.model)
    if layout == "whole":
        return TorchRunner(form, names, outs, threads)
    parts = family.parts(form, run.model, layout)
    feeds = family.part_inputs(parts, [inputs])
    spec = parts_spec(layout, "pytorch", parts, outs, {p.name: feeds[p.name][0] for p in parts}, "", names)
    return family.compose(layout, {p.name: TorchRunner(p.module, p.input_names, p.output_names, threads)
                                   for p in parts}, spec)


def derive_run(source: Path, out: Path, overrides: list[str]) -> dict:
    """A new run directory with the source run's trained weights under a changed config, e.g.
    `model.input_size=512` to export a model trained at input 320 at 512. Only settings that leave
    every weight's shape unchanged are possible (the weights are loaded strictly into the new
    model, and a mismatch names the tensor). Later stages run on the new directory as usual.
    The training record (model.json) is copied with `derived_from`; its metrics are the
    source's, measured at the source config."""
    import shutil

    from edgecap.core.config import apply_overrides, to_dict

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


def write_run_spec(run_dir: Path, family: str, config: dict) -> None:
    write_json(Path(run_dir) / "run.json", {"family": family, "edgecap_version": __version__, "config": config})


def load_manifest(run_dir: Path) -> dict:
    path = Path(run_dir) / "export" / "manifest.json"
    if not path.exists():
        raise EdgecapError(f"{path} not found: run `edgecap export {run_dir}` first")
    manifest = read_json(path, "manifest")
    if not isinstance(manifest, dict):
        raise EdgecapError(f"{path}: expected a JSON object")
    for field, kind in (("family", str), ("artifacts", list), ("inputs", dict), ("outputs", list),
                        ("tolerances", dict)):
        if not isinstance(manifest.get(field), kind):
            raise EdgecapError(f"{path}: field {field!r} is missing or not a {kind.__name__}")
    for i, entry in enumerate(manifest["artifacts"]):
        _check_entry(entry, f"{path}: artifacts[{i}]")
    return manifest


def _check_entry(entry, where: str) -> None:
    """One manifest entry: its fields and types, and a file name inside export/."""
    if not isinstance(entry, dict):
        raise EdgecapError(f"{where}: expected an object")
    for field, kind in (("name", str), ("file", str), ("format", str), ("precision", str), ("sha256", str),
                        ("size_bytes", int)):
        if not isinstance(entry.get(field), kind):
            raise EdgecapError(f"{where}: field {field!r} is missing or not a {kind.__name__}")
    if entry["file"] in ("", ".", "..") or Path(entry["file"]).name != entry["file"]:
        raise EdgecapError(f"{where}: file {entry['file']!r} is not a file name inside export/")


def verify_artifact(run_dir: Path, entry: dict) -> Path:
    """The artifact's file exists and still has the sha256 the manifest recorded."""
    path = Path(run_dir) / "export" / entry["file"]
    if not path.exists():
        raise EdgecapError(f"artifact {entry['name']}: file {path} is missing")
    digest = sha256_of(path)
    if digest != entry["sha256"]:
        raise EdgecapError(
            f"artifact {entry['name']}: {path} is truncated or modified (sha256 {digest[:12]}..., "
            f"manifest says {entry['sha256'][:12]}...); re-export it"
        )
    return path


def open_artifact(path: Path, family=None, threads: int = 1, input_names: list[str] | None = None,
                  output_names: list[str] | None = None, trusted: bool = False) -> Runner:
    """A runner over any artifact: one file of any format, or a multi-part folder composed by its
    family (`family`, else the one its parts.json names). `trusted`: verified against a manifest."""
    from edgecap.backends import open_parts, open_runner

    path = Path(path)
    if is_multipart(path):
        spec, runners = open_parts(path, threads, trusted)
        if family is None:
            named = runners[spec["parts"][0]["name"]].metadata().get("model")
            if not named:
                raise EdgecapError(f"{path}: its parts name no model family, so edgecap cannot join them; "
                                   "open each part file on its own")
            family = get_family(named)
        return family.compose(spec["layout"], runners, spec)
    return open_runner(path, None, threads, input_names, output_names, trusted)


def check_artifact_model(runner: Runner, family: str, path: Path) -> None:
    """Refuse an artifact whose metadata names another model family (e.g. a lifter's .tflite
    copied over a DensePose artifact)."""
    meta = runner.metadata()
    if meta and meta.get("model") not in (None, family):
        raise EdgecapError(f"artifact {path} holds a {meta.get('model')!r} model, not {family!r}")
