"""Lifters side by side on real motion: each RUN's PyTorch model on the held-out real-motion clips
(`edgecap evaluate RUN --on real-motion`), P-MPJPE on the direct joints per motion type, beside
the flat-2D and rest-pose baselines.

    python benchmarks/lifting_real_motion.py RUN [RUN ...] [--noise] [--out docs/results/benchmarks/lifting_real_motion.json]

Needs the real-motion cache (`make real-motion`). Each run's training settings that matter for
transfer (data.proportions, data.motions, data.real_sequences, train.steps) are recorded beside
its row, so the table says what each model saw.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

from edgecap import EdgecapError
from edgecap.core.io import write_json
from edgecap.core.runner import TorchRunner, batched
from edgecap.runs import load_trained_model

GROUPS = ("all", "walk+run+dance", "motion:walk", "motion:run", "motion:dance", "motion:climb", "motion:acrobatic",
          "motion:floor")


def evaluate(run_dir: Path, noise: bool, cameras: int) -> dict:
    family, run, model = load_trained_model(run_dir, "lifting")
    runner = TorchRunner(family.export_form(model), list(family.input_spec(run.model)), family.output_names(run.model))
    result, _ = family.evaluate_on("real-motion", batched(runner, None), run, {"noise": noise, "cameras": cameras})
    data = dataclasses.asdict(run.data)
    return {"run": str(run_dir), "training": {k: data[k] for k in ("proportions", "motions", "real_sequences")}
            | {"steps": run.train.steps}, **result}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", type=Path, nargs="+")
    p.add_argument("--noise", action="store_true", help="the synthetic detector-like 2D noise (default exact 2D)")
    p.add_argument("--cameras", type=int, default=4)
    p.add_argument("--out", type=Path, default=Path("docs/results/benchmarks/lifting_real_motion.json"))
    a = p.parse_args()
    try:
        rows = [evaluate(r, a.noise, a.cameras) for r in a.runs]
    except EdgecapError as e:
        print(f"lifting_real_motion: error: {e}", file=sys.stderr)
        return 2
    short = [g.replace("motion:", "") for g in GROUPS]
    print(f"P-MPJPE (mm) on the direct joints, held-out real clips, {'noisy' if a.noise else 'exact'} 2D")
    print(f"{'model':<44} " + " ".join(f"{s:>14}" for s in short))
    for r in rows:
        t = r["training"]
        label = f"{t['proportions']}/{t['motions']}/real {t['real_sequences']}/{t['steps']} steps"
        print(f"{label:<44} " + " ".join(f"{r['groups'][g]['model']['p_mpjpe_mm']:>14.1f}" for g in GROUPS))
    for base in ("flat_2d", "rest_pose"):
        print(f"{'baseline: ' + base:<44} " + " ".join(f"{rows[0]['groups'][g][base]['p_mpjpe_mm']:>14.1f}"
                                                      for g in GROUPS))
    write_json(a.out, {"command": " ".join(sys.argv), "date": time.strftime("%Y-%m-%d"), "noise": a.noise,
                       "rows": rows})
    print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
