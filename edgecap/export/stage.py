"""`edgecap export`: a trained run -> artifacts + manifest.json in RUN/export/.

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

import torch
from tqdm import tqdm

from edgecap import EdgecapError, __version__
from edgecap.config import to_dict
from edgecap.export import EXPORTERS, PRECISIONS, get_exporter
from edgecap.export.base import ArtifactRecord, ExportRequest, sha256_of, size_of
from edgecap.io import atomic_path, read_json, write_json
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


LAYOUTS = ("whole", "split")


def artifact_name(family: str, fmt: str, precision: str, layout: str = "whole") -> str:
    """e.g. parsing_rcnn_int8.tflite; a split artifact is a directory parsing_rcnn_int8_split.tflite/."""
    return f"{family}_{precision}{'_split' if layout == 'split' else ''}{EXPORTERS[fmt][2]}"


def export(run_dir: Path, formats: list[str] | None = None, precisions: list[str] | None = None,
           layouts: list[str] | None = None, progress: bool = True) -> dict:
    """Export the run's model to every (format, precision, layout). layout "whole": one graph;
    "split": the family's two-graph form (detector + per-RoI head, see `split_model`)."""
    run_dir = Path(run_dir)
    formats = formats or list(EXPORTERS)
    precisions = precisions or list(PRECISIONS)
    layouts = layouts or ["whole"]
    for p in precisions:
        if p not in PRECISIONS:
            raise EdgecapError(f"unknown precision {p!r}; choose from {PRECISIONS}")
    for layout in layouts:
        if layout not in LAYOUTS:
            raise EdgecapError(f"unknown layout {layout!r}; choose from {LAYOUTS}")
    exporters = {f: get_exporter(f) for f in formats}  # fails fast on an unknown format
    family, run, model = load_trained_model(run_dir)
    if "split" in layouts and not hasattr(family, "split_model"):
        raise EdgecapError(f"{family.name} has no split form; use --layout whole")
    out_dir = run_dir / "export"
    manifest_path = out_dir / "manifest.json"
    spec = family.input_spec(run.model)
    manifest = {
        "edgecap_version": __version__, "family": family.name, "model_config": to_dict(run.model),
        "inputs": {k: v.to_json() for k, v in spec.items()}, "outputs": family.output_names(run.model),
        "metadata": family.metadata(run.model), "tolerances": family.tolerances(),
        "tool_versions": tool_versions(), "artifacts": [], "failures": [],
    }
    if manifest_path.exists():  # keep entries of formats/precisions not re-exported now
        old = read_json(manifest_path, "manifest")
        if old.get("family") == family.name:
            manifest["artifacts"] = [a for a in old.get("artifacts", [])
                                     if not (a["format"] in formats and a["precision"] in precisions
                                             and a.get("layout", "whole") in layouts)]

    fp32_model = family.export_form(model)
    int8_model, calib, quant = None, [], None
    if "int8" in precisions:
        from edgecap.quantize.stage import load_quantization

        int8_model = family.export_form(model)
        quant, calib = load_quantization(run_dir, family, int8_model)  # QAT weights, if any
    # Tracing and conversion see a real validation window, never zeros.
    example = family.calibration_inputs(family.load_split(run, "val"), 1, 0)[0]

    jobs = [(f, p, layout) for layout in layouts for f in formats for p in precisions]
    for fmt, precision, layout in tqdm(jobs, desc="export", disable=not progress):
        name = artifact_name(family.name, fmt, precision, layout)
        request = ExportRequest(
            model=int8_model if precision == "int8" else fp32_model, example_inputs=example,
            output_names=family.output_names(run.model), precision=precision,
            metadata={**family.metadata(run.model), "precision": precision, "format": fmt, "layout": layout},
            calibration=calib if precision == "int8" else [], float_modules=family.float_modules(),
        )
        t0 = time.time()
        try:
            with atomic_path(out_dir / name) as tmp:
                if layout == "split":
                    record = export_split(family, request, fmt, exporters[fmt], tmp)
                else:
                    record = exporters[fmt](request, tmp)
        except Exception as e:  # one backend failing must not lose the others
            manifest["failures"].append({"format": fmt, "precision": precision,
                                         "error": f"{type(e).__name__}: {e}", "trace": traceback.format_exc(limit=3)})
            tqdm.write(f"export {fmt}/{precision} FAILED: {type(e).__name__}: {e}")
            write_json(manifest_path, manifest)
            continue
        entry = {"name": name, "file": name, "layout": layout, **asdict(record), "sha256": sha256_of(out_dir / name),
                 "size_bytes": size_of(out_dir / name), "export_seconds": round(time.time() - t0, 1)}
        if precision == "int8" and quant is not None:
            entry["quantization"] = {k: quant[k] for k in ("method", "calibration_windows", "float_modules")}
        manifest["artifacts"].append(entry)
        write_json(manifest_path, manifest)
    if manifest["failures"]:
        failed = ", ".join(f"{f['format']}/{f['precision']}" for f in manifest["failures"])
        raise EdgecapError(f"export failed for {failed}; see {manifest_path} 'failures'")
    return manifest


def export_split(family, request: ExportRequest, fmt: str, exporter, out: Path) -> ArtifactRecord:
    """The family's two-graph form as a directory: one artifact per part plus split.json
    (edgecap.runtime.split). Each part gets its own request: example and calibration inputs of
    the dense part come from running the float detector part on the request's images."""
    from edgecap.runtime.split import SPLIT_FILE

    parts = family.split_model(request.model)
    images = [request.example_inputs] + list(request.calibration)
    inputs = family.split_inputs(parts, images)
    out.mkdir(parents=True)
    spec = {"format": fmt, "outputs": list(request.output_names), "parts": {}}
    records = {}
    for part, (module, in_names, out_names) in parts.items():
        known = dict(module.named_modules())
        part_request = ExportRequest(
            model=module, example_inputs=inputs[part][0], output_names=out_names, precision=request.precision,
            metadata={**request.metadata, "split_part": part, "input_names": ",".join(in_names),
                      "output_names": ",".join(out_names)},
            calibration=inputs[part][1:] if request.precision == "int8" else [],
            float_modules=[m for m in request.float_modules if m in known],
            # Tensors handed to another part may stay int8 (the runner dequantizes them).
            quantized_outputs=[n for n in out_names if any(n in ins for _, ins, _ in parts.values())],
        )
        file = f"{part}{EXPORTERS[fmt][2]}"
        records[part] = exporter(part_request, out / file)
        spec["parts"][part] = {"file": file, "inputs": in_names, "outputs": out_names}
        if part == "dense":
            with torch.no_grad():
                ref = module(*part_request.example_args())
            spec["parts"][part]["output_shapes"] = {n: list(t.shape) for n, t in zip(out_names, ref)}
    write_json(out / SPLIT_FILE, spec)
    first = records["detector"]
    return ArtifactRecord(
        format=fmt, precision=request.precision, scheme=first.scheme, runnable_here=first.runnable_here,
        notes=[f"split: {', '.join(parts)} ({SPLIT_FILE}); the runner runs the dense graph once per detection"]
        + first.notes,
        details={part: r.details for part, r in records.items()},
    )


def load_manifest(run_dir: Path) -> dict:
    path = Path(run_dir) / "export" / "manifest.json"
    if not path.exists():
        raise EdgecapError(f"{path} not found: run `edgecap export {run_dir}` first")
    manifest = read_json(path, "manifest")
    for field in ("family", "artifacts", "inputs", "outputs"):
        if field not in manifest:
            raise EdgecapError(f"{path}: missing field {field!r}")
    return manifest


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
