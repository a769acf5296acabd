"""Lifters side by side on real motion: each RUN's PyTorch model on the held-out real-motion clips
(`edgecap evaluate RUN --on real-motion`), with exact and with detector-like noisy 2D, P-MPJPE on
the direct joints per motion type, beside the flat-2D and rest-pose baselines.

    python benchmarks/lifting_real_motion.py RUN [RUN ...] [--readme] [--out FILE.json]

(--out defaults to docs/results/benchmarks/lifting_real_motion.json.)

Needs the real-motion cache (`make real-motion`). Each run's training settings that matter for
transfer (data.proportions, data.motions, data.train_sequences, data.real_sequences, train.steps,
model.dropout, model.mirror, model.mirror_average, data.seed) are recorded beside its row, and
the row trained with edgecap's default settings is marked, so the table says what each model
saw. --readme also writes the short table between README.md's `lifting-real-motion` markers.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

from edgecap import EdgecapError
from edgecap.core.io import write_json
from edgecap.models.lifting.family import LiftingRun
from edgecap.models.lifting.real_motion import CAMERAS
from edgecap.stages.evaluate import pytorch_predictor
from readme_markers import write_between

GROUPS = ("all", "walk+run+dance", "motion:walk", "motion:run", "motion:dance", "motion:climb", "motion:acrobatic",
          "motion:floor")
SETTINGS = ("proportions", "motions", "train_sequences", "real_sequences")
START, END = ("<!-- lifting-real-motion:start (written by benchmarks/lifting_real_motion.py --readme) -->",
              "<!-- lifting-real-motion:end -->")


def evaluate(run_dir: Path, cameras: int) -> dict:
    family, run, predict = pytorch_predictor(run_dir, "lifting")
    data = dataclasses.asdict(run.data)
    row = {"run": str(run_dir), "default": run == LiftingRun(),
           "training": {k: data[k] for k in SETTINGS} | {"steps": run.train.steps, "dropout": run.model.dropout,
                                                          "mirror": run.model.mirror,
                                                          "mirror_average": run.model.mirror_average, "seed": run.data.seed,
                                                          "train_seed": run.train.seed}}
    for name, noise in (("exact", False), ("noisy", True)):
        row[name], _ = family.evaluate_on("real-motion", predict, run, {"noise": noise, "cameras": cameras})
    return row


def label(row: dict) -> str:
    t = row["training"]
    real = f"+{t['real_sequences']} real" if t["real_sequences"] else "synthetic only"
    seed = f", seed {t['seed']}" if t.get("seed") else ""
    return (f"{real} ({t['proportions']}, {t['motions']}, {t['train_sequences']} sequences, {t['steps']} steps, "
            f"dropout {t.get('dropout', 0.25)}{'' if t.get('mirror', False) else ', no mirroring'}"
            f"{', mirror average' if t.get('mirror_average') else ''}{seed})"
            + (' [default]' if row['default'] else ''))


def table(rows: list[dict], noise: str) -> list[str]:
    short = [g.replace("motion:", "") for g in GROUPS]
    lines = [f"{'model':<104} " + " ".join(f"{s:>14}" for s in short)]
    for r in rows:
        lines.append(f"{label(r):<104} " + " ".join(f"{r[noise]['groups'][g]['model']['p_mpjpe_mm']:>14.1f}"
                                                    for g in GROUPS))
    for base in ("flat_2d", "rest_pose"):
        scores = [rows[0][noise]["groups"][g][base]["p_mpjpe_mm"] for g in GROUPS]
        lines.append(f"{'baseline: ' + base:<104} " + " ".join(f"{v:>14.1f}" for v in scores))
    return lines


def readme_block(rows: list[dict], command: str) -> list[str]:
    heads = {"all": "all", "walk+run+dance": "walk+run+dance", "clip:holosoma/climb_seq_3": "climb (trained climber)",
             "clip:holosoma/climb_seq_4": "climb (new climber)", "motion:floor": "floor"}
    out = [f"P-MPJPE (mm, direct joints) on the held-out real clips, exact 2D / detector-like 2D (`{command}`):", "",
           "| lifter | " + " | ".join(heads.values()) + " |",
           "|---|" + "---|" * len(heads)]
    cell = lambda r, g, who: (f"{r['exact']['groups'][g][who]['p_mpjpe_mm']:.1f} / "  # noqa: E731
                              f"{r['noisy']['groups'][g][who]['p_mpjpe_mm']:.1f}")
    for r in rows:
        out.append(f"| {label(r)} | " + " | ".join(cell(r, g, "model") for g in heads) + " |")
    for base in ("flat_2d", "rest_pose"):
        out.append(f"| baseline: {base} | " + " | ".join(cell(rows[0], g, base) for g in heads) + " |")
    default = next((r for r in rows if r["default"]), None)
    if default:
        out += ["", "The default against its bar, half the better baseline's error (exact 2D): " + "; ".join(
            f"{g} {default['exact']['groups'][g]['model']['p_mpjpe_mm']:.1f} vs {half_better_baseline(default, g):.1f}"
            for g in list(heads)[:2]) + " mm."]
    return out


def half_better_baseline(row: dict, group: str, noise: str = "exact") -> float:
    g = row[noise]["groups"][group]
    return min(g["flat_2d"]["p_mpjpe_mm"], g["rest_pose"]["p_mpjpe_mm"]) / 2


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", type=Path, nargs="+")
    p.add_argument("--cameras", type=int, default=CAMERAS, help="virtual cameras per shot")
    p.add_argument("--out", type=Path, default=Path("docs/results/benchmarks/lifting_real_motion.json"))
    p.add_argument("--readme", action="store_true", help="also write the short table into README.md")
    a = p.parse_args()
    command = "python benchmarks/lifting_real_motion.py " + " ".join(str(r) for r in a.runs)
    try:
        rows = [evaluate(r, a.cameras) for r in a.runs]
        if a.readme:
            write_between(START, END, readme_block(rows, command))
    except EdgecapError as e:
        print(f"lifting_real_motion: error: {e}", file=sys.stderr)
        return 2
    for noise in ("exact", "noisy"):
        print(f"\nP-MPJPE (mm) on the direct joints, held-out real clips x {a.cameras} cameras, {noise} 2D")
        print("\n".join(table(rows, noise)))
    write_json(a.out, {"command": command, "date": time.strftime("%Y-%m-%d"), "cameras_per_shot": a.cameras,
                       "rows": rows})
    print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
