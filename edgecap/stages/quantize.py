"""`edgecap quantize`: fix the int8 recipe of a trained run before any backend sees it.

Writes RUN/quantize/:
    calibration.npz   the calibration inputs (the family's `calibration_split`, validation by
                      default), used by every int8 exporter
    quant.json        method, calibration size, fp32 modules, and the eager int8 simulation's
                      task metrics beside fp32 (quantization error, apart from backend error)
    qat.safetensors   with --method qat: export-form weights fine-tuned under fake quantization;
                      int8 exporters start from them and re-calibrate activation ranges
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from edgecap import EdgecapError
from edgecap.core.io import atomic_path, load_arrays, read_json, write_json
from edgecap.core.runner import TorchRunner, batched
from edgecap.core.weights import load_weights, save_weights
from edgecap.runs import load_trained_model

METHODS = ("ptq", "qat")


def quantize(run_dir: Path, method: str = "ptq", calibration: int | None = None, qat_steps: int = 300,
             qat_lr: float | None = None, seed: int = 0, progress: bool = True) -> dict:
    """`calibration`: number of inputs (default: the family's `calibration_count`);
    `qat_lr`: QAT's peak learning rate (default: the family's `qat_lr`)."""
    if method not in METHODS:
        raise EdgecapError(f"unknown quantization method {method!r}; choose one of {METHODS}")
    run_dir = Path(run_dir)
    family, run, model = load_trained_model(run_dir)
    facts = family.facts
    out = run_dir / "quantize"
    out.mkdir(exist_ok=True)
    val = family.load_data(run, "val")
    calibration = calibration or facts.calibration_count
    if qat_lr is None:  # an explicit 0 or negative lr reaches QAT and is refused there, with its value
        qat_lr = facts.qat_lr
    split = facts.calibration_split
    calib = family.calibration_inputs(val if split == "val" else family.load_data(run, split), calibration, seed)
    names = list(family.input_spec(run.model))
    with atomic_path(out / "calibration.npz") as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, **{n: np.concatenate([c[n] for c in calib]) for n in names})

    t0 = time.time()
    export_model = family.export_form(model)
    if method == "qat":
        export_model = family.qat_finetune(export_model, run, family.load_data(run, "train"), qat_steps, qat_lr,
                                           seed, progress)
        save_weights(out / "qat.safetensors", export_model, {"family": family.name, "method": "qat"})
    elif (out / "qat.safetensors").exists():
        (out / "qat.safetensors").unlink()  # a PTQ recipe replaces an older QAT one

    float_modules = family.float_modules(run.model)
    report = {
        "family": family.name, "method": method, "calibration_windows": len(calib), "seed": seed,
        "float_modules": float_modules, "scheme": "int8 symmetric per-channel weights, int8 activations",
        "calibration_split": split, "qat_steps": qat_steps if method == "qat" else 0,
        "qat_lr": qat_lr if method == "qat" else None,
        "qat_objective": facts.qat_objective if method == "qat" else None, "seconds": None,
        "fp32": family.evaluate(batched(TorchRunner(export_model, names, family.output_names(run.model)), None), val),
        "int8_simulated": simulate_int8(family, run, export_model, calib, val, float_modules, progress),
    }
    report["seconds"] = round(time.time() - t0, 1)
    write_json(out / "quant.json", report)
    return report


def simulate_int8(family, run, export_model, calib, val, float_modules: list[str], progress: bool = False) -> dict:
    """Task metrics of the eager PT2E simulation (XNNPACK scheme) with `float_modules` kept fp32:
    the quantization error alone, apart from any backend's."""
    from edgecap.quantization.pt2e import ptq_pt2e, xnnpack_quantizer

    names = list(family.input_spec(run.model))
    batchable = family.facts.batchable  # False: the model takes exactly one input row
    # Two rows, so torch.export does not specialise the dynamic batch dimension to 1.
    rows = [calib[0], calib[-1]] if batchable else [calib[0]]
    example = tuple(torch.from_numpy(np.concatenate([r[n] for r in rows])) for n in names)
    sim = ptq_pt2e(export_model, example, [tuple(torch.from_numpy(c[n]) for n in names) for c in calib],
                   xnnpack_quantizer(float_modules), dynamic_batch=batchable)
    runner = TorchRunner(sim, names, family.output_names(run.model))
    return family.evaluate(batched(runner, None), val, progress="int8 simulation" if progress else None)


def load_recipe(run_dir: Path, export_model: torch.nn.Module) -> tuple[dict, list[dict], torch.nn.Module]:
    """For the export stage: (quant.json, calibration inputs, the model int8 exporters start from:
    a copy of `export_model` with the QAT weights, or `export_model` itself after PTQ)."""
    import copy

    qdir = Path(run_dir) / "quantize"
    if not (qdir / "quant.json").exists():
        raise EdgecapError(f"int8 export needs a quantization recipe: run `edgecap quantize {run_dir}` first")
    spec = read_json(qdir / "quant.json", "quantization recipe")
    arrays = load_arrays(qdir / "calibration.npz", "calibration inputs")
    if not arrays or not len(next(iter(arrays.values()))):
        raise EdgecapError(f"{qdir / 'calibration.npz'} holds no calibration inputs; run `edgecap quantize` again")
    count = len(next(iter(arrays.values())))
    calib = [{k: v[i : i + 1] for k, v in arrays.items()} for i in range(count)]
    if spec.get("method") == "qat":
        export_model = copy.deepcopy(export_model)
        load_weights(qdir / "qat.safetensors", export_model)
    return spec, calib, export_model
