"""How the triangulation solvers compare on the same 2D: the trained model's confidence-weighted
DLT against the unweighted DLT, RANSAC (Iskakov et al.'s baseline) and the float64 SVD, on the
default validation rigs and on the same rigs without occluders or cameras that cut the subject.

    python benchmarks/triangulation_solvers.py RUN [--out docs/results/benchmarks/triangulation_solvers.json]

Every solver triangulates the PyTorch fp32 model's own per-view outputs (points and confidences),
so the rows differ only in how the 3D point is solved:
  weighted    the model's graph: confidence-weighted DLT (SVD-free, what the artifacts run)
  unweighted  the same DLT with every real view weighted 1 (the same 2D model with plain DLT)
  ransac      10 drawn view pairs, 15 px inliers, Huber least squares at 1 px (the reference's)
  svd64       the float64 SVD of exactly the weighted problem
and beside them `gt_2d` (the DLT on the true 2D points of the views that see each joint) and
`mean_pose` (the training mean pose at the world origin). Prints one table per rig set and
writes them to --out; with --readme, also a short table (and the op's latency from
docs/results/benchmarks/triangulation_op.json, if there) between README.md's
`triangulation-solvers` markers.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import torch

from edgecap import EdgecapError
from edgecap.core.io import write_json
from edgecap.core.runner import TorchRunner
from edgecap.runs import load_trained_model
from readme_markers import write_between

SETS = {
    "default": {},  # occluders, cameras aimed off the subject, lens distortion
    "clean": {"occluders": False, "cut_prob": 0.0},  # the same motions and rigs, every camera on the subject
}
METRICS = ("mpjpe_mm", "mpjpe_abs_mm", "reprojection_px", "invalid_share")
REPO = Path(__file__).resolve().parent.parent
START, END = ("<!-- triangulation-solvers:start (written by benchmarks/triangulation_solvers.py --readme) -->",
              "<!-- triangulation-solvers:end -->")


def evaluate(run_dir: Path) -> dict:
    family, run, model = load_trained_model(run_dir, "triangulation")
    form = family.export_form(model)
    runner = TorchRunner(form, list(family.input_spec(run.model)), family.output_names(run.model))
    train = family.load_data(run, "train")
    out = {}
    for name, change in SETS.items():
        cfg = dataclasses.replace(run, data=dataclasses.replace(run.data, **change))
        val = family.load_data(cfg, "val")
        with torch.no_grad():
            metrics = family.evaluate(runner.run, val)
        rows = {"weighted": {k: metrics[k] for k in METRICS}, **metrics["same_2d"],
                **family.baselines(cfg, train, val)}
        out[name] = {"data": {**dataclasses.asdict(cfg.data), **change}, "samples": metrics["samples"],
                     "rows": {solver: {k: r[k] for k in METRICS} for solver, r in rows.items()}}
    return out


def readme_block(sets: dict, command: str) -> list[str]:
    solvers = list(sets["default"]["rows"])
    lines = [f"MPJPE (mm, root-relative) of the PyTorch model's own 2D solved each way (`{command}`):", "",
             "| validation rigs | " + " | ".join(solvers) + " |", "|---|" + "---|" * len(solvers)]
    lines += [f"| {name} | " + " | ".join(f"{s['rows'][k]['mpjpe_mm']:.1f}" for k in solvers) + " |"
              for name, s in sets.items()]
    op = REPO / "docs" / "results" / "benchmarks" / "triangulation_op.json"
    if op.exists():
        import json

        rows = json.loads(op.read_text())
        best = min((r for r in rows["latency"] if r["artifact"] != "pytorch eager"), key=lambda r: r["p50_ms"])
        worst = max(r["max_mm"] for r in rows["accuracy"] if r["angle_deg"] >= 10)
        lines += ["", (f"The DLT op alone (17 joints, 4 views, {rows['threads']} thread): {best['p50_ms']:.3f} ms p50 "
                       f"in {best['artifact']}, {best['x_vs_eager']:.1f}x PyTorch eager; at most {worst:.3f} mm from "
                       "the float64 SVD with cameras 10 degrees or more apart "
                       "(`python benchmarks/triangulation_op.py`).")]
    return lines


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", type=Path)
    p.add_argument("--out", type=Path, default=Path("docs/results/benchmarks/triangulation_solvers.json"))
    p.add_argument("--readme", action="store_true", help="also write the short table into README.md")
    a = p.parse_args()
    try:
        sets = evaluate(a.run)
    except EdgecapError as e:
        print(f"triangulation_solvers: error: {e}", file=sys.stderr)
        return 2
    for name, s in sets.items():
        print(f"\n{name} validation rigs ({s['samples']} samples): MPJPE root-relative and absolute (mm), "
              "reprojection (px), share of joints not triangulated")
        print(f"{'solver':<12} {'mpjpe':>8} {'abs':>8} {'reproj':>8} {'invalid':>8}")
        for solver, r in s["rows"].items():
            print(f"{solver:<12} {r['mpjpe_mm']:>8.1f} {r['mpjpe_abs_mm']:>8.1f} {r['reprojection_px']:>8.2f} "
                  f"{r['invalid_share']:>8.3f}")
    write_json(a.out, {"run": str(a.run), "command": " ".join(sys.argv), "date": time.strftime("%Y-%m-%d"),
                       "sets": sets})
    print(f"wrote {a.out}")
    if a.readme:
        try:
            write_between(START, END, readme_block(sets, f"python benchmarks/triangulation_solvers.py {a.run}"))
        except EdgecapError as e:
            print(f"triangulation_solvers: error: {e}", file=sys.stderr)
            return 2
        print("wrote README.md's triangulation table")
    return 0


if __name__ == "__main__":
    sys.exit(main())
