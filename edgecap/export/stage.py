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

from tqdm import tqdm

from edgecap import EdgecapError, __version__
from edgecap.config import to_dict
from edgecap.export import EXPORTERS, PRECISIONS, get_exporter
from edgecap.export.base import ExportRequest, sha256_of, size_of
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


def artifact_name(family: str, fmt: str, precision: str) -> str:
    return f"{family}_{precision}{EXPORTERS[fmt][2]}"


def export(run_dir: Path, formats: list[str] | None = None, precisions: list[str] | None = None,
           progress: bool = True) -> dict:
    run_dir = Path(run_dir)
    formats = formats or list(EXPORTERS)
    precisions = precisions or list(PRECISIONS)
    for p in precisions:
        if p not in PRECISIONS:
            raise EdgecapError(f"unknown precision {p!r}; choose from {PRECISIONS}")
    exporters = {f: get_exporter(f) for f in formats}  # fails fast on an unknown format
    family, run, model = load_trained_model(run_dir)
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
                                     if not (a["format"] in formats and a["precision"] in precisions)]

    fp32_model = family.export_form(model)
    int8_model, calib, quant = None, [], None
    if "int8" in precisions:
        from edgecap.quantize.stage import load_quantization

        int8_model = family.export_form(model)
        quant, calib = load_quantization(run_dir, family, int8_model)  # QAT weights, if any
    # Tracing and conversion see a real validation window, never zeros.
    example = family.calibration_inputs(family.load_split(run, "val"), 1, 0)[0]

    jobs = [(f, p) for f in formats for p in precisions]
    for fmt, precision in tqdm(jobs, desc="export", disable=not progress):
        name = artifact_name(family.name, fmt, precision)
        request = ExportRequest(
            model=int8_model if precision == "int8" else fp32_model, example_inputs=example,
            output_names=family.output_names(run.model), precision=precision,
            metadata={**family.metadata(run.model), "precision": precision, "format": fmt},
            calibration=calib if precision == "int8" else [], float_modules=family.float_modules(),
        )
        t0 = time.time()
        try:
            with atomic_path(out_dir / name) as tmp:
                record = exporters[fmt](request, tmp)
        except Exception as e:  # one backend failing must not lose the others
            manifest["failures"].append({"format": fmt, "precision": precision,
                                         "error": f"{type(e).__name__}: {e}", "trace": traceback.format_exc(limit=3)})
            tqdm.write(f"export {fmt}/{precision} FAILED: {type(e).__name__}: {e}")
            write_json(manifest_path, manifest)
            continue
        entry = {"name": name, "file": name, **asdict(record), "sha256": sha256_of(out_dir / name),
                 "size_bytes": size_of(out_dir / name), "export_seconds": round(time.time() - t0, 1)}
        if precision == "int8" and quant is not None:
            entry["quantization"] = {k: quant[k] for k in ("method", "calibration_windows", "float_modules")}
        manifest["artifacts"].append(entry)
        write_json(manifest_path, manifest)
    if manifest["failures"]:
        failed = ", ".join(f"{f['format']}/{f['precision']}" for f in manifest["failures"])
        raise EdgecapError(f"export failed for {failed}; see {manifest_path} 'failures'")
    return manifest


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
