"""Publish a finished run's measured results into the repository, on purpose:

    python benchmarks/publish_results.py RUN [--command "how RUN was made"]

Reads RUN's model.json, validate.json and bench.json (all written by edgecap's stages), and
writes docs/results/<family>.json, then regenerates docs/results/README.md from every JSON file
there and the headline table between the `results` markers of README.md. Nothing is typed by
hand: a figure in those pages comes from a run's files.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
from pathlib import Path

from edgecap import EdgecapError
from edgecap.core.io import read_json, write_json, write_text
from edgecap.models import get_family
from readme_markers import write_between

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "docs" / "results"
START, END = "<!-- results:start (written by benchmarks/publish_results.py) -->", "<!-- results:end -->"


def collect(run: Path, command: str) -> dict:
    model = read_json(run / "model.json", "training record")
    validation = read_json(run / "validate.json", "validation report")
    bench = read_json(run / "bench.json", "bench report")
    manifest = read_json(run / "export" / "manifest.json", "manifest")
    current = {a["name"]: a["sha256"] for a in manifest["artifacts"]}
    layouts = {a["name"]: a.get("layout", "whole") for a in manifest["artifacts"]}
    stale = [r["name"] for r in validation["artifacts"] if current.get(r["name"]) != r.get("sha256")]
    if stale:
        raise EdgecapError(f"{run}: validate.json does not match the artifacts on disk ({', '.join(stale)}); "
                           "run `edgecap validate` again")
    metrics = validation["tolerances"]["fp32"]["metrics"]
    ref = validation["reference"]["task"]
    t1 = min(bench["threads"])
    speed = {r["name"]: r for r in bench["rows"] if r["threads"] == t1}
    # PyTorch eager rows: the whole graph, and each multi-part layout composed the same way (bench.py)
    eager = [{"name": "pytorch_fp32", "status": "reference", "task": ref, "layout": "whole"}]
    eager += [{"name": f"pytorch_fp32_{layout}", "status": "reference", "task": ref, "layout": layout}
              for layout in sorted(set(layouts.values()) - {"whole"}) if f"pytorch_fp32_{layout}" in speed]
    rows = []
    for r in eager + validation["artifacts"]:
        b = speed.get(r["name"], {})
        rows.append({
            "artifact": r["name"], "status": r["status"], "layout": r.get("layout", layouts.get(r["name"], "whole")),
            **({m: r["task"][m] for m in metrics} if "task" in r else {}),
            **({"size_mb": b["size_bytes"] / 1e6, "p50_ms": b["p50_ms"], "fps": b["fps"],
                "round_spread": b.get("round_spread"), "speedup_vs_pytorch": b.get("speedup_vs_pytorch")} if b else {}),
        })
    return {
        "family": model["family"], "command": command, "date": datetime.date.today().isoformat(),
        "main_layout": get_family(model["family"]).facts.default_layouts[0],
        "device": bench.get("device", {}), "threads": t1, "metrics": metrics,
        "training": {"steps": model["steps"], "val": model["val"], "baselines": model.get("baselines", {})},
        "rows": rows, "failures": validation["failures"],
    }


def _precision(name: str) -> str:
    """fp32/int8 from an artifact's name (FAMILY_PRECISION...); "reference" for PyTorch eager rows."""
    return "reference" if name.startswith("pytorch_fp32") else ("int8" if "_int8" in name else "fp32")


def _cell(values: dict, metric: str) -> str:
    """A metric to three decimals; n/a when it was not measured on this data (None); empty when absent."""
    if values.get(metric) is not None:
        return f"{values[metric]:.3f}"
    return "n/a" if metric in values else ""


def markdown_table(result: dict, short: bool = False) -> list[str]:
    """The family's artifact table; short (the README's): the int8 artifacts of the family's first
    default layout (the whole graph for most) that ran here, with PyTorch eager of that layout
    (docs/results/README.md has every row)."""
    metrics = result["metrics"]
    lines = [f"| artifact | status | {' | '.join(metrics)} | MB | p50 ms ({result['threads']}T) | x eager |",
             "|---|---|" + "---|" * (len(metrics) + 3)]
    for r in result["rows"]:
        if short and (r["status"] == "skipped" or r.get("layout", "whole") != result.get("main_layout", "whole")
                      or _precision(r["artifact"]) == "fp32"):
            continue
        cells = [_cell(r, m) for m in metrics]
        speed = [f"{r['size_mb']:.2f}", f"{r['p50_ms']:.3f}", f"{r['speedup_vs_pytorch']:.2f}"] if "p50_ms" in r \
            else ["", "", ""]
        lines.append(f"| {r['artifact']} | {r['status']} | " + " | ".join(cells + speed) + " |")
    return lines


def other_solvers(result: dict) -> list[str]:
    """The training record's evaluations of other solvers on the model's own outputs (a family's
    `val` entries that hold metric dicts, e.g. triangulation's `same_2d`), as a table."""
    val, metrics = result["training"]["val"], result["metrics"]
    lines = []
    for group, solvers in val.items():
        if not isinstance(solvers, dict) or not all(isinstance(v, dict) for v in solvers.values()):
            continue
        lines += [f"`{group}` (PyTorch fp32, the same outputs solved otherwise; `model` is the model's own):", "",
                  f"| solver | {' | '.join(metrics)} |", "|---|" + "---|" * len(metrics),
                  "| model | " + " | ".join(_cell(val, m) for m in metrics) + " |"]
        lines += [f"| {name} | " + " | ".join(_cell(v, m) for m in metrics) + " |" for name, v in solvers.items()]
    return lines


def render(results: list[dict]) -> str:
    out = ["# Measured results", "",
           "Generated by `benchmarks/publish_results.py` from runs' own files; do not edit by hand.", ""]
    for r in results:
        d = r["device"]
        base = "; ".join(f"{k}: " + ", ".join(f"{m} {v:.3f}" for m, v in b.items() if isinstance(v, float))
                         for k, b in r["training"]["baselines"].items())
        out += [f"## {r['family']}", "", f"Command: `{r['command']}` ({r['date']}, {d.get('cpu', '?')}, "
                f"{d.get('cores', '?')} cores, load {d.get('load_average_1m', float('nan')):.1f} at bench start).",
                f"Trained {r['training']['steps']} steps. Baselines on the same validation set: {base or 'none'}.", ""]
        out += markdown_table(r) + [""]
        out += other_solvers(r) + [""]
        out += [f"Validation failures: {'; '.join(r['failures'])}" if r["failures"] else "Every artifact passed its "
                "gate.", ""]
    return "\n".join(out)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", type=Path)
    p.add_argument("--command", default="make demo", help="the command that made RUN (shown with the figures)")
    a = p.parse_args()
    try:
        result = collect(a.run, a.command)
        write_json(RESULTS / f"{result['family']}.json", result)
        results = [json.loads(f.read_text()) for f in sorted(RESULTS.glob("*.json"))]
        write_text(RESULTS / "README.md", render(results) + "\n")
        table = []
        for r in results:
            table += [f"**{r['family']}** (`{r['command']}`; {r['device'].get('cpu', '?')}):", ""]
            table += markdown_table(r, short=True) + [""]
        write_between(START, END, table[:-1])
    except EdgecapError as e:
        print(f"publish_results: error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {RESULTS / (result['family'] + '.json')} and {RESULTS / 'README.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
