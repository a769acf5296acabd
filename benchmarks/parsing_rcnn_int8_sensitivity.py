"""Which part of Parsing R-CNN loses DensePose AP in int8: keep one module group fp32 at a time.

    python benchmarks/parsing_rcnn_int8_sensitivity.py --run runs/long [--groups backbone,neck]

Needs a quantized run (`edgecap quantize RUN`): its calibration images are reused. For each
group, the eager PT2E simulation (XNNPACK scheme, `edgecap quantize`'s own) is rebuilt with that
group added to the recipe's fp32 modules and evaluated on the validation set. The row "(none)"
is the recipe as quantized (quant.json's simulation). A group whose row recovers most of the fp32 AP is where
int8 loses it. Prints the table and writes RUN/int8_sensitivity.json (rows added as they finish,
so an interrupted sweep keeps its rows; a rerun with the same recipe skips groups
already measured).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from edgecap.core.io import read_json, write_json
from edgecap.runs import load_trained_model
from edgecap.stages.quantize import load_recipe, simulate_int8

GROUPS = ["backbone", "neck", "rpn.head", "box_head", "dense_head", "dense_predictor",
          "dense_predictor.deconvs.0", "dense_predictor.deconvs.1", "dense_predictor.deconvs.2",
          "dense_predictor.deconvs.3"]
METRICS = ["dp_AP", "dp_gpsm_AP", "box_AP"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", type=Path, required=True)
    ap.add_argument("--groups", default=",".join(GROUPS), help="comma-separated module paths")
    args = ap.parse_args()

    family, run, model = load_trained_model(args.run, expect_family="parsing_rcnn")
    export_model = family.export_form(model)
    spec, calib, export_model = load_recipe(args.run, export_model)
    val = family.load_data(run, "val")
    out = args.run / "int8_sensitivity.json"
    # The recipe as `edgecap quantize` recorded it: its fp32 and int8 simulation are the
    # reference and the "(none)" row, so they are not computed again.
    recipe = {"float_modules": spec["float_modules"], "calibration_images": len(calib)}
    report = read_json(out, "sensitivity report") if out.exists() else {}
    if report.get("recipe") != recipe:  # rows of another recipe (or of none) are not reused
        report = {"recipe": recipe, "fp32": spec["fp32"],
                  "rows": {"(none)": {m: spec["int8_simulated"][m] for m in METRICS}}}
        write_json(out, report)
    for group in args.groups.split(","):
        if group in report["rows"]:
            continue
        t0 = time.time()
        task = simulate_int8(family, run, export_model, calib, val, recipe["float_modules"] + [group])
        report["rows"][group] = {**{m: task[m] for m in METRICS}, "seconds": round(time.time() - t0, 1)}
        write_json(out, report)
        print(f"{group}: " + ", ".join(f"{m} {task[m]:.3f}" for m in METRICS), flush=True)

    ref = report["fp32"]
    print(f"\nint8 simulation, one group kept fp32 ({recipe['calibration_images']} calibration images); "
          "points against fp32")
    print(f"{'kept fp32':<28}" + "".join(f"{m:>12}" for m in METRICS))
    print(f"{'fp32 (reference)':<28}" + "".join(f"{ref[m]:12.3f}" for m in METRICS))
    for group, row in report["rows"].items():
        print(f"{group:<28}" + "".join(f"{100 * (row[m] - ref[m]):+12.1f}" for m in METRICS))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
