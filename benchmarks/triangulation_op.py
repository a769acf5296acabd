"""WeightedDLT (SVD-free triangulation): accuracy against the float64 SVD and latency per backend.

    python benchmarks/triangulation_op.py [--out docs/results/triangulation_op.json] [--threads 1]

1. Error of the fp32 op against the float64 SVD of the same weighted, conditioned DLT, by angle
   between neighbouring cameras (random arcs, subjects 2-4 m away, 1.5 px noise, random
   confidences): median, 99th percentile and max mm over all joints, and the SVD point's own
   median error to the truth for scale.
2. Latency of one call, 17 joints x 4 views, batch 1, `--threads` threads: PyTorch eager and
   each exported fp32 artifact through edgecap's runners (Python call overhead included, as
   edgecap's bench measures), timed interleaved in round-robin rounds; p50 and ratio to eager.
   Each artifact's largest error against the float64 SVD over 64 rigs (4 cameras 30 degrees
   apart) is in the same table.
Prints both tables and writes them to --out.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from edgecap.backends import get_exporter, open_runner
from edgecap.backends.base import ExportRequest
from edgecap.core.console import quiet_to
from edgecap.core.io import write_json
from edgecap.core.runner import TorchRunner
from edgecap.models.triangulation.dlt import WeightedDLT, triangulate_svd_reference
from edgecap.models.triangulation.geometry import project, random_joints, random_rig

NAMES = ["points", "confidences", "projections"]
OUTPUTS = ["joints", "valid"]
SUFFIX = {"onnx": ".onnx", "tflite": ".tflite", "executorch": ".pte"}


def problem(seed: int, cameras: int, angle_deg: float, batch: int, joints: int = 17, noise_px: float = 1.5):
    rng = np.random.default_rng(seed)
    P = np.stack([random_rig(rng, cameras, angle_deg) for _ in range(batch)])
    X = random_joints(rng, batch, joints)
    uv = project(P[:, :, None], X[:, None]) + rng.normal(0.0, noise_px, (batch, cameras, joints, 2))
    conf = rng.uniform(0.2, 1.0, (batch, cameras, joints))
    inputs = {"points": uv, "confidences": conf, "projections": P}
    return {k: v.astype(np.float32) for k, v in inputs.items()}, X


def accuracy(angles: list[float], cameras: list[int], samples: int) -> list[dict]:
    op = WeightedDLT()
    rows = []
    for c in cameras:
        for angle in angles:
            inputs, truth = problem(int(angle * 100) + c, c, angle, samples)
            with torch.no_grad():
                joints = op(*(torch.from_numpy(inputs[n]) for n in NAMES))[0].double().numpy()
            ref = triangulate_svd_reference(*(inputs[n].astype(np.float64) for n in NAMES))
            err = np.linalg.norm(joints - ref, axis=-1)
            rows.append({"cameras": c, "angle_deg": angle, "joints": int(err.size),
                         "median_mm": float(np.median(err)), "p99_mm": float(np.percentile(err, 99)),
                         "max_mm": float(err.max()),
                         "svd_vs_truth_median_mm": float(np.median(np.linalg.norm(ref - truth, axis=-1)))})
    return rows


def latency(formats: list[str], threads: int, rounds: int, runs: int, folder: Path) -> tuple[list[dict], dict]:
    inputs, _ = problem(0, 4, 30.0, 1)
    model = WeightedDLT().eval()
    runners = {"pytorch eager": TorchRunner(model, NAMES, OUTPUTS, threads=threads)}
    # accuracy of each artifact: 64 random rigs, 4 cameras 30 degrees apart, against the float64 SVD
    check, _ = problem(1, 4, 30.0, 64)
    check_ref = triangulate_svd_reference(*(check[n].astype(np.float64) for n in NAMES))
    export_info = {}
    for fmt in formats:
        path = folder / f"weighted_dlt{SUFFIX[fmt]}"
        request = ExportRequest(model=model, example_inputs=inputs, output_names=OUTPUTS, precision="fp32",
                                metadata={"model": "weighted_dlt", "cameras": "4", "joints": "17"})
        start = time.perf_counter()
        with quiet_to(folder / "convert.log"):  # the converters' and runtimes' own output
            record = get_exporter(fmt)(request, path)
            runners[path.name] = open_runner(path, threads=threads, input_names=NAMES, output_names=OUTPUTS)
        export_s = time.perf_counter() - start
        err = [np.linalg.norm(runners[path.name].run({n: a[i : i + 1] for n, a in check.items()})["joints"]
                              - check_ref[i : i + 1], axis=-1) for i in range(len(check_ref))]
        export_info[path.name] = {"export_s": round(export_s, 1), "checked_rigs": len(check_ref),
                                  "max_mm_vs_svd": float(np.max(err)),
                                  "nodes": record.details.get("nodes") or record.details.get("op_total"),
                                  **{k: record.details[k] for k in ("xnnpack", "portable_ops") if k in record.details}}
    times: dict[str, list[float]] = {name: [] for name in runners}
    names = list(runners)
    for r in range(rounds):
        for name in names[r % len(names):] + names[: r % len(names)]:  # rotate who goes first
            run = runners[name].run
            run(inputs)
            for _ in range(runs):
                t0 = time.perf_counter()
                run(inputs)
                times[name].append((time.perf_counter() - t0) * 1e3)
    eager = float(np.median(times["pytorch eager"]))
    rows = [{"artifact": name, "p50_ms": float(np.median(t)), "p90_ms": float(np.percentile(t, 90)),
             "x_vs_eager": eager / float(np.median(t)), **export_info.get(name, {})} for name, t in times.items()]
    return rows, {"rounds": rounds, "runs_per_round": runs}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="docs/results/benchmarks/triangulation_op.json")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--angles", type=float, nargs="+", default=[1, 2, 5, 10, 20, 45, 90])
    p.add_argument("--cameras", type=int, nargs="+", default=[2, 4])
    p.add_argument("--samples", type=int, default=64, help="random rigs per angle (17 joints each)")
    p.add_argument("--formats", nargs="+", default=list(SUFFIX), choices=list(SUFFIX))
    p.add_argument("--rounds", type=int, default=30)
    p.add_argument("--runs", type=int, default=50, help="timed calls per artifact per round")
    a = p.parse_args()

    acc = accuracy(a.angles, a.cameras, a.samples)
    print(f"WeightedDLT fp32 vs float64 SVD, {a.samples} rigs x 17 joints per row, 1.5 px noise")
    print(f"{'cams':>4} {'angle':>6} {'median mm':>10} {'p99 mm':>9} {'max mm':>9} {'SVD-truth mm':>13}")
    for r in acc:
        print(f"{r['cameras']:>4} {r['angle_deg']:>6g} {r['median_mm']:>10.2e} {r['p99_mm']:>9.2e} {r['max_mm']:>9.2e} "
              f"{r['svd_vs_truth_median_mm']:>13.1f}")

    with tempfile.TemporaryDirectory() as tmp:
        lat, timing = latency(a.formats, a.threads, a.rounds, a.runs, Path(tmp))
    cpu = platform.processor() or platform.machine()
    print(f"\nlatency, 4 views x 17 joints, batch 1, {a.threads} thread(s), {timing['rounds']} interleaved rounds "
          f"x {timing['runs_per_round']} calls ({cpu})")
    print(f"{'artifact':<24} {'p50 ms':>8} {'p90 ms':>8} {'x eager':>8} {'max mm vs SVD':>14}")
    for r in lat:
        err = f"{r['max_mm_vs_svd']:.1e}" if "max_mm_vs_svd" in r else "-"
        print(f"{r['artifact']:<24} {r['p50_ms']:>8.4f} {r['p90_ms']:>8.4f} {r['x_vs_eager']:>8.2f} {err:>14}")
    write_json(Path(a.out), {"op": "edgecap.models.triangulation.dlt.WeightedDLT", "command": " ".join(sys.argv),
                             "date": time.strftime("%Y-%m-%d"), "cpu": cpu, "threads": a.threads,
                             "load_average_1m": os.getloadavg()[0],
                             "torch": torch.__version__, "accuracy": acc, "latency": lat, **timing})
    print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
