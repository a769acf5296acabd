"""Head reenactment, measured: the trained model against the trivial baselines, the disentanglement
ablation, parity of every artifact, and per-frame speed with the compute it does.

    python benchmarks/reenactment.py RUN [--ablation NAME=RUN ...] [--readme]
        [--out docs/results/benchmarks/reenactment.json]

RUN is a finished `edgecap pipeline reenactment` run (model.json, validate.json, bench.json). Each
--ablation names a run trained with one change (e.g. `no_augmentation=runs/reenact_noaug`); a
`reference=RUN` ablation is the short run they are compared with (same steps, default settings).

Speed: the pipeline's bench rows (interleaved, 1 and 2 threads). A multi-part layout is timed
through the streaming runner with one avatar, so its per-call time is the per-frame cost (the
identity encoder runs once); "whole" re-encodes the K identity frames on every call. MACs are
counted by torch.utils.flop_counter on the export form's parts (convolutions and matrix
products; 1 MAC = 2 FLOPs), and GFLOP/s = per-call FLOPs / p50.

Writes --out; with --readme, also the tables into docs/reenactment.md and a short version into
README.md (between their `reenactment` markers).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from edgecap import EdgecapError
from edgecap.core.io import read_json, write_json
from edgecap.runs import load_trained_model
from readme_markers import write_between

REPO = Path(__file__).resolve().parent.parent
START, END = ("<!-- reenactment:start (written by benchmarks/reenactment.py --readme) -->",
              "<!-- reenactment:end -->")
FULL_START, FULL_END = ("<!-- reenactment-full:start (written by benchmarks/reenactment.py --readme) -->",
                        "<!-- reenactment-full:end -->")
DOCS = REPO / "docs/reenactment.md"
METRICS = ("pose_error", "identity_error", "psnr_db", "ssim", "mask_iou", "pose_error_cross")


def part_macs(run_dir: Path) -> dict[str, int]:
    """MACs of each deployable graph (batch 1) and of each layout's per-call path."""
    from torch.utils.flop_counter import FlopCounterMode

    family, run, model = load_trained_model(run_dir, "reenactment")
    form = family.export_form(model)
    example = family.calibration_inputs(family.load_data(run, "train"), 1, seed=0)[0]
    macs = {}
    for layout in ("fused", "parts"):
        parts = family.parts(form, run.model, layout)
        feeds = family.part_inputs(parts, [example])
        for part in parts:
            counter = FlopCounterMode(display=False)
            with counter:  # (not under no_grad: its module tracker hooks autograd)
                part.module(*(torch.from_numpy(feeds[part.name][0][n]) for n in part.input_names))
            macs[part.name] = counter.get_total_flops() // 2
    per_frame = macs["pose_encoder"] + macs["generator"]
    return {**macs, "layout_fused": macs["per_frame"], "layout_parts": per_frame,
            "layout_whole": macs["identity_encoder"] + per_frame}


def folded_identity(run_dir: Path, out_dir: Path, rounds: int = 7, runs: int = 200) -> list[dict]:
    """The per-frame graph with the identity embedding as an input against the same graph with one
    avatar's embedding folded in as a constant (model.AvatarPart), fp32, exported by edgecap's
    ONNX and LiteRT exporters and timed in turn (A B A B, `rounds` rounds, 1 thread, this process)."""
    import time

    import numpy as np

    from edgecap.backends import get_exporter
    from edgecap.backends.base import ExportRequest
    from edgecap.models.reenactment.model import AvatarPart, PerFramePart
    from edgecap.runs import open_artifact

    family, run, model = load_trained_model(run_dir, "reenactment")
    form = family.export_form(model)
    x = family.calibration_inputs(family.load_data(run, "train"), 1, seed=0)[0]
    with torch.no_grad():
        identity = family.parts(form, run.model, "fused")[0].module(torch.from_numpy(x["identity_frames"]))
    graphs = {"identity input": (PerFramePart(form), {"driver": x["driver"], "identity": identity.numpy()}),
              "identity folded": (AvatarPart(form, identity), {"driver": x["driver"]})}
    runners, rows = {}, []
    for fmt, suffix in (("onnx", ".onnx"), ("tflite", ".tflite")):
        for name, (module, inputs) in graphs.items():
            path = out_dir / f"per_frame_{name.split()[1]}{suffix}"
            get_exporter(fmt)(ExportRequest(module.eval(), inputs, ["image", "mask"], "fp32",
                                            {"model": "reenactment", "variant": name}), path)
            runners[fmt, name] = (open_artifact(path, threads=1), inputs)
    times: dict = {key: [] for key in runners}
    for _ in range(rounds):
        for key, (runner, inputs) in runners.items():
            for _ in range(10):
                runner.run(inputs)
            for _ in range(runs // rounds):
                t0 = time.perf_counter()
                runner.run(inputs)
                times[key].append((time.perf_counter() - t0) * 1000)
    for (fmt, name), values in times.items():
        rows.append({"format": fmt, "variant": name, "p50_ms_1t": float(np.median(values)), "runs": len(values)})
    return rows


def speed_rows(run_dir: Path, macs: dict) -> list[dict]:
    bench = read_json(run_dir / "bench.json", "bench results")
    by_name: dict[str, dict] = {}
    for r in bench["rows"]:
        by_name.setdefault(r["name"], {"name": r["name"], "layout": r.get("layout", "whole"), "format": r["format"],
                                       "precision": r["precision"], "size_mb": r["size_bytes"] / 1e6})
        row = by_name[r["name"]]
        row[f"p50_ms_{r['threads']}t"] = r["p50_ms"]
        row[f"fps_{r['threads']}t"] = 1000 / r["p50_ms"]
        if "speedup_vs_pytorch" in r:
            row[f"x_eager_{r['threads']}t"] = r["speedup_vs_pytorch"]
    if any("p50_ms_1t" not in row for row in by_name.values()):
        raise EdgecapError(f"{run_dir}/bench.json has no 1-thread rows; run `edgecap bench {run_dir} --threads 1,2`")
    for row in by_name.values():
        row["macs"] = macs[f"layout_{row['layout']}"]
        row["gflops_per_s_1t"] = 2 * row["macs"] / (row["p50_ms_1t"] / 1000) / 1e9
    return list(by_name.values())


def collect(run_dir: Path, ablations: dict[str, Path]) -> dict:
    import tempfile

    model = read_json(run_dir / "model.json", "training record")
    if model["val"].get("identity_error") is None:
        raise EdgecapError(f"{run_dir}: trained on a folder of real faces, where the identity error is not measured; "
                           "this benchmark compares runs on the synthetic heads")
    validate = read_json(run_dir / "validate.json", "validation results")
    macs = part_macs(run_dir)
    with tempfile.TemporaryDirectory() as tmp:
        folded = folded_identity(run_dir, Path(tmp))
    parity = [{"name": a["name"], "status": a["status"], **({k: a["task"][k] for k in METRICS} if "task" in a else {}),
               **({"psnr_vs_pytorch_db": a["tensor"]["psnr_db"]} if "tensor" in a else {}),
               **({"reason": a["reason"]} if a["status"] == "skipped" else {})} for a in validate["artifacts"]]
    ablation = {}
    for name, path in ablations.items():
        record = read_json(path / "model.json", f"ablation {name}")
        ablation[name] = {"run": str(path), "steps": record["steps"], "config": record["config"]["model"],
                          **{k: record["val"][k] for k in METRICS}}
    return {"run": str(run_dir), "steps": model["steps"], "model": model["config"]["model"],
            "data": model["config"]["data"], "val": {k: model["val"][k] for k in METRICS},
            "baselines": {n: {k: b[k] for k in METRICS} for n, b in model["baselines"].items()},
            "reference": {k: validate["reference"]["task"][k] for k in METRICS}, "parity": parity,
            "macs": macs, "speed": speed_rows(run_dir, macs), "ablation": ablation, "folded_identity": folded,
            "bench_device": read_json(run_dir / "bench.json", "bench results").get("device", {})}


def print_tables(result: dict, short: bool = False) -> list[str]:
    """The tables in markdown; short (the README's, whose Results table has the speed): accuracy,
    ablation and one line of per-frame compute."""
    lines = ["| | pose error (self) | identity error (cross) | PSNR dB | SSIM | mask IoU |", "|---|---|---|---|---|---|"]
    rows = {"mobile model (PyTorch)": result["val"], **{f"baseline: {n}": b for n, b in result["baselines"].items()}}
    for name, m in rows.items():
        lines.append(f"| {name} | {m['pose_error']:.3f} | {m['identity_error']:.3f} | {m['psnr_db']:.1f} | "
                     f"{m['ssim']:.3f} | {m['mask_iou']:.3f} |")
    if result["ablation"] and short:
        ab = result["ablation"]
        lines += ["", "Disentanglement ablation, identity error in cross-reenactment after short runs: "
                  + ", ".join(f"{name} {a['identity_error']:.3f}" for name, a in ab.items()) + "."]
    elif result["ablation"]:
        lines += ["", "| ablation (short runs) | steps | identity error (cross) | pose error (self) |", "|---|---|---|---|"]
        for name, a in result["ablation"].items():
            lines.append(f"| {name} | {a['steps']} | {a['identity_error']:.3f} | {a['pose_error']:.3f} |")
    if short:
        best = min((r for r in result["speed"] if r["layout"] == "fused"), key=lambda r: r["p50_ms_1t"])
        return lines + ["", f"Per frame (fused layout): {result['macs']['layout_fused'] / 1e6:.0f} MMACs; the fastest "
                        f"artifact here, {best['name']}, {best['p50_ms_1t']:.2f} ms at 1 thread ({best['fps_1t']:.0f} FPS, "
                        f"{best['gflops_per_s_1t']:.0f} GFLOP/s), {best.get('x_eager_1t', float('nan')):.1f}x PyTorch eager."]
    lines += ["", "| per call | MMACs | p50 ms 1T | p50 ms 2T | FPS 1T | GFLOP/s 1T | x eager 1T |",
              "|---|---|---|---|---|---|---|"]
    for r in result["speed"]:
        lines.append(f"| {r['name']} | {r['macs'] / 1e6:.1f} | {r['p50_ms_1t']:.3f} | {r.get('p50_ms_2t', float('nan')):.3f}"
                     f" | {r['fps_1t']:.0f} | {r['gflops_per_s_1t']:.2f} | {r.get('x_eager_1t', float('nan')):.2f} |")
    lines += ["", "| per-frame graph, fp32, 1 thread | " + " | ".join(sorted({r["format"] for r in result["folded_identity"]}))
              + " |", "|---|---|---|"]
    for variant in ("identity input", "identity folded"):
        cells = [f"{r['p50_ms_1t']:.3f} ms" for r in result["folded_identity"] if r["variant"] == variant]
        lines.append(f"| {variant} | " + " | ".join(cells) + " |")
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run", type=Path)
    ap.add_argument("--ablation", action="append", default=[], metavar="NAME=RUN")
    ap.add_argument("--out", type=Path, default=REPO / "docs/results/benchmarks/reenactment.json")
    ap.add_argument("--readme", action="store_true")
    ap.add_argument("--from-json", type=Path, help="rewrite the tables from a result this script wrote, measuring nothing")
    a = ap.parse_args(argv)
    try:
        ablations = {}
        for item in a.ablation:
            if "=" not in item:
                raise EdgecapError(f"--ablation {item!r}: expected NAME=RUN")
            name, path = item.split("=", 1)
            ablations[name] = Path(path)
        if a.from_json:
            result = read_json(a.from_json, "benchmark result")
        else:
            result = collect(a.run, ablations)
            write_json(a.out, result)
            print(f"wrote {a.out}")
        lines = print_tables(result)
        print("\n".join(lines))
        if a.readme:
            runs = [str(a.run)] + [f"--ablation {name}={r['run']}" for name, r in result["ablation"].items()]
            command = "`python benchmarks/reenactment.py " + " ".join(runs) + "`"
            where = f"Measured on {result['bench_device'].get('cpu', '?')}, {result['bench_device'].get('cores', '?')} cores ({command}):"
            write_between(START, END, [where, ""] + print_tables(result, short=True))
            write_between(FULL_START, FULL_END, [where, ""] + lines, DOCS)
            print("wrote the reenactment tables of README.md and docs/reenactment.md")
    except EdgecapError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
