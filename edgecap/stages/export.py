"""`edgecap export`: a trained run -> artifacts + manifest.json in RUN/export/.

For each (layout, format, precision): the family's parts of that layout (one graph for "whole"),
each exported by the format's backend from the same export-form model and the same int8 recipe
(RUN/quantize/, read once). A layout of several parts becomes a folder with one file per part
and parts.json (edgecap.core.parts).

Every artifact is written to a temp path and renamed into place only after its exporter
returned; the manifest is rewritten atomically after each artifact, so neither ever holds a
half-written entry. A failed artifact is listed under `failures` and the stage exits non-zero.
"""

from __future__ import annotations

import importlib.metadata
import platform
import time
import traceback
from dataclasses import asdict
from pathlib import Path

import numpy as np

from edgecap.core.console import progress as progress_bar, say

from edgecap import EdgecapError, __version__
from edgecap.backends import BACKENDS, PRECISIONS, get_backend, get_exporter
from edgecap.backends.base import ArtifactRecord, ExportRequest
from edgecap.core.config import to_dict
from edgecap.core.io import atomic_path, read_json, sha256_of, size_of, write_json
from edgecap.core.parts import PARTS_FILE, Part, parts_spec
from edgecap.models.contract import WHOLE
from edgecap.runs import load_trained_model

TOOLS = ["torch", "torchao", "onnx", "onnxruntime", "onnxscript", "executorch", "litert-torch",
         "ai-edge-litert", "ai-edge-quantizer", "coremltools", "numpy"]


def tool_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in TOOLS:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def artifact_name(family: str, fmt: str, precision: str, layout: str = WHOLE) -> str:
    """FAMILY_PRECISION[_LAYOUT].SUFFIX; a layout of several parts is a folder of that name."""
    return f"{family}_{precision}{'' if layout == WHOLE else '_' + layout}{BACKENDS[fmt].suffix}"


def check_options(family, formats: list[str] | None, precisions: list[str] | None,
                  layouts: list[str] | None) -> tuple[list[str], list[str], list[str]]:
    """The export options with defaults filled in, or a clear error before any work starts."""
    formats = formats or list(BACKENDS)
    precisions = precisions or list(PRECISIONS)
    layouts = layouts or list(family.facts.default_layouts)
    for fmt in formats:
        get_backend(fmt)
    for p in precisions:
        if p not in PRECISIONS:
            raise EdgecapError(f"unknown precision {p!r}; choose from {PRECISIONS}")
    for layout in layouts:
        if layout not in family.facts.layouts:
            raise EdgecapError(f"{family.name} has no layout {layout!r}; layouts: {list(family.facts.layouts)}")
    return formats, precisions, layouts


def export(run_dir: Path, formats: list[str] | None = None, precisions: list[str] | None = None,
           layouts: list[str] | None = None, progress: bool = True) -> dict:
    """Export the run's model to every (format, precision, layout)."""
    from edgecap.stages.quantize import load_recipe

    run_dir = Path(run_dir)
    family, run, model = load_trained_model(run_dir)
    formats, precisions, layouts = check_options(family, formats, precisions, layouts)
    exporters = {f: get_exporter(f) for f in formats}
    out_dir = run_dir / "export"
    manifest_path = out_dir / "manifest.json"
    manifest = {
        "edgecap_version": __version__, "family": family.name, "model_config": to_dict(run.model),
        "inputs": {k: v.to_json() for k, v in family.input_spec(run.model).items()},
        "outputs": family.output_names(run.model), "metadata": family.metadata(run.model),
        "tolerances": family.facts.tolerances, "tool_versions": tool_versions(), "artifacts": [], "failures": [],
    }
    if manifest_path.exists():  # keep entries of formats/precisions/layouts not re-exported now
        old = read_json(manifest_path, "manifest")
        if old.get("family") == family.name:
            manifest["artifacts"] = [a for a in old.get("artifacts", [])
                                     if not (a["format"] in formats and a["precision"] in precisions
                                             and a.get("layout", WHOLE) in layouts)]

    models = {"fp32": family.export_form(model)}
    calibration, recipe = [], None
    if "int8" in precisions:  # the recipe's weights (QAT's, else the float ones) and calibration inputs
        recipe, calibration, models["int8"] = load_recipe(run_dir, models["fp32"])
    # Tracing and conversion see a real validation input, never zeros.
    example = family.calibration_inputs(family.load_data(run, "val"), 1, 0)[0]
    parts = {(layout, p): family.parts(models[p], run.model, layout) for layout in layouts for p in precisions}
    feeds = {key: family.part_inputs(ps, [example] + (calibration if key[1] == "int8" else []))
             for key, ps in parts.items()}

    jobs = [(f, p, layout) for layout in layouts for f in formats for p in precisions]
    for fmt, precision, layout in progress_bar(jobs, desc="export", disable=not progress):
        name = artifact_name(family.name, fmt, precision, layout)
        metadata = {**family.metadata(run.model), "precision": precision, "format": fmt, "layout": layout}
        t0 = time.time()
        try:
            with atomic_path(out_dir / name) as tmp:
                record = _export_layout(parts[layout, precision], feeds[layout, precision], layout, fmt, precision,
                                        metadata, family.float_modules(run.model), family.output_names(run.model),
                                        exporters[fmt], tmp, list(family.input_spec(run.model)))
        except Exception as e:  # one backend failing must not lose the others
            manifest["failures"].append({"format": fmt, "precision": precision, "layout": layout,
                                         "error": f"{type(e).__name__}: {e}", "trace": traceback.format_exc(limit=3)})
            say(f"export {fmt}/{precision}/{layout} FAILED: {type(e).__name__}: {e}")
            write_json(manifest_path, manifest)
            continue
        entry = {"name": name, "file": name, "layout": layout, **asdict(record), "sha256": sha256_of(out_dir / name),
                 "size_bytes": size_of(out_dir / name), "export_seconds": round(time.time() - t0, 1)}
        if precision == "int8":
            entry["quantization"] = {k: recipe[k] for k in ("method", "calibration_windows", "float_modules")}
        manifest["artifacts"].append(entry)
        write_json(manifest_path, manifest)
    if manifest["failures"]:
        failed = ", ".join(f"{f['format']}/{f['precision']}" for f in manifest["failures"])
        raise EdgecapError(f"export failed for {failed}; see {manifest_path} 'failures'")
    return manifest


def _export_layout(parts: list[Part], feeds: dict, layout: str, fmt: str, precision: str, metadata: dict,
                   float_modules: list[str], outputs: list[str], exporter, out: Path,
                   inputs: list[str]) -> ArtifactRecord:
    """One artifact: a single file for "whole", else a folder of one file per part + parts.json.
    Each part's example and calibration inputs come from the family's `part_inputs`; a
    `float_only` part is exported at fp32 in an int8 artifact."""
    if layout == WHOLE:
        (part,) = parts
        return exporter(_request(part, feeds[part.name], precision, metadata, float_modules, []), out)
    out.mkdir(parents=True)
    # Tensors one part hands to another may stay int8, unless the part taking them is float-only.
    handed_on = {n for p in parts if not p.float_only for n in p.input_names}
    records = []
    for part in parts:
        part_precision = "fp32" if part.float_only else precision
        request = _request(part, feeds[part.name], part_precision,
                           {**metadata, "precision": part_precision, "part": part.name,
                            "input_names": ",".join(part.input_names), "output_names": ",".join(part.output_names)},
                           float_modules, [n for n in part.output_names if n in handed_on and part_precision == "int8"])
        records.append(exporter(request, out / f"{part.name}{BACKENDS[fmt].suffix}"))
    spec = parts_spec(layout, fmt, parts, outputs, {p.name: feeds[p.name][0] for p in parts}, BACKENDS[fmt].suffix,
                      inputs, precision)
    write_json(out / PARTS_FILE, spec)
    first = records[0]
    return ArtifactRecord(
        format=fmt, precision=precision, scheme=first.scheme, runnable_here=first.runnable_here,
        notes=[f"layout {layout}: {', '.join(p.name for p in parts)} ({PARTS_FILE}), composed by the family's app"]
        + first.notes,
        details={p.name: r.details for p, r in zip(parts, records)},
    )


def _request(part: Part, inputs: list, precision: str, metadata: dict, float_modules: list[str],
             quantized_outputs: list[str]) -> ExportRequest:
    known = dict(part.module.named_modules())
    # Fresh copies: a family may hand on views with a zero stride (a broadcast, or a size-1 axis of a
    # slice, which numpy still calls contiguous), and ExecuTorch refuses zero strides.
    inputs = [{k: np.array(v, order="C", copy=True) for k, v in x.items()} for x in inputs]
    return ExportRequest(
        model=part.module, example_inputs=inputs[0], output_names=list(part.output_names), precision=precision,
        metadata=metadata, calibration=inputs[1:] if precision == "int8" else [],
        float_modules=[m for m in float_modules if m in known], quantized_outputs=quantized_outputs,
    )
