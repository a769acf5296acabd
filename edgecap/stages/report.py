"""`edgecap report`: one report.json and a human-readable report.md with a latency-accuracy plot."""

from __future__ import annotations

from pathlib import Path

from edgecap import EdgecapError
from edgecap.core.io import atomic_path, read_json, sha256_of, write_json, write_text
from edgecap.stages.bench import format_table as bench_table
from edgecap.stages.validate import format_table as validate_table


def _maybe(path: Path, what: str) -> dict | None:
    return read_json(path, what) if path.exists() else None


class StaleResults(EdgecapError):
    """The report was written, but some results belong to artifacts that have changed since."""


def mark_stale(run_dir: Path, report: dict) -> list[str]:
    """Mark every validation and bench row whose artifact is not, byte for byte, the one on disk
    now (its sha256 against the manifest's and the file's); returns the marked names."""
    manifest = report.get("export") or {"artifacts": []}
    on_disk = {}
    for entry in manifest["artifacts"]:
        path = run_dir / "export" / entry["file"]
        if not path.exists():
            on_disk[entry["name"]] = (None, "the artifact file is missing")
        elif sha256_of(path) != entry["sha256"]:
            on_disk[entry["name"]] = (None, "the artifact was modified after export")
        else:
            on_disk[entry["name"]] = (entry["sha256"], "")
    rows = list((report.get("validation") or {}).get("artifacts", []))
    rows += list((report.get("bench") or {}).get("rows", [])) + list((report.get("bench") or {}).get("end_to_end", []))
    stale = []
    for row in rows:
        if row.get("format", "") == "pytorch" or "sha256" not in row and row["name"] not in on_disk:
            continue  # eager rows and reference models have no artifact
        sha, why = on_disk.get(row["name"], (None, "the artifact is no longer in the manifest"))
        if sha is None or row.get("sha256") != sha:
            row["stale"] = (why or "measured on an earlier artifact of this name") + "; run validate/bench again"
            stale.append(row["name"])
    return sorted(set(stale))


def build_report(run_dir: Path) -> dict:
    run_dir = Path(run_dir)
    report = {
        "run": read_json(run_dir / "run.json", "run spec"),
        "training": _maybe(run_dir / "model.json", "model spec"),
        "quantization": _maybe(run_dir / "quantize" / "quant.json", "quantization recipe"),
        "export": _maybe(run_dir / "export" / "manifest.json", "manifest"),
        "validation": _maybe(run_dir / "validate.json", "validation report"),
        "bench": _maybe(run_dir / "bench.json", "bench report"),
        "timings_s": _maybe(run_dir / "pipeline_timings.json", "pipeline timings"),
    }
    report["stale"] = mark_stale(run_dir, report)
    write_json(run_dir / "report.json", report)
    plots = [p for p in (_plot(run_dir, report), _plot_scenes(run_dir, report)) if p]
    write_text(run_dir / "report.md", _markdown(report, plots))
    if report["stale"]:
        raise StaleResults(f"results of {', '.join(report['stale'])} belong to artifacts that changed since they were "
                           f"measured; they are marked STALE in {run_dir / 'report.md'}: run `edgecap validate "
                           f"{run_dir}` and `edgecap bench {run_dir}` again")
    return report


def _points(report: dict) -> list[tuple[str, float, float]]:
    """(name, 1-thread p50 ms, first task metric) per artifact that was both validated and benched."""
    val, bench = report.get("validation"), report.get("bench")
    if not val or not bench:
        return []
    metric = val["tolerances"]["fp32"]["metrics"][0]
    acc = {r["name"]: r["task"][metric] for r in val["artifacts"] if r.get("task") and not r.get("stale")}
    acc["pytorch_fp32"] = val["reference"]["task"][metric]
    t1 = min(bench["threads"])
    return [(r["name"], r["p50_ms"], acc[r["name"]]) for r in bench["rows"]
            if r["threads"] == t1 and r["name"] in acc and not r.get("stale")]


def _plot(run_dir: Path, report: dict) -> str | None:
    points = _points(report)
    if not points:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metric = report["validation"]["tolerances"]["fp32"]["metrics"][0]
    from matplotlib.ticker import LogLocator, NullFormatter, ScalarFormatter

    fig, ax = plt.subplots(figsize=(8, 4.5))
    for name, ms, value in points:  # a legend, not labels: fp32 points sit on top of each other
        marker = "*" if name == "pytorch_fp32" else ("s" if "int8" in name else "o")
        ax.scatter(ms, value, marker=marker, s=90 if marker == "*" else 55, alpha=0.85, label=name)
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(ScalarFormatter())
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    ax.set_xlabel(f"p50 latency per inference, {min(report['bench']['threads'])} thread (ms, log)")
    ax.set_ylabel(metric.replace("_mm", " (mm)"))
    ax.set_title(f"{report['run']['family']}: latency vs accuracy on {report['bench']['target']}")
    return _save(fig, ax, run_dir / "report_latency_accuracy.png")


def _plot_scenes(run_dir: Path, report: dict) -> str | None:
    """End-to-end latency (the app's whole path) on each of the family's bench scenes."""
    rows = (report.get("bench") or {}).get("end_to_end") or []
    if not rows:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = list(dict.fromkeys(r["scene"] for r in rows))
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for name in dict.fromkeys(r["name"] for r in rows):
        mine = {r["scene"]: r["p50_ms"] for r in rows if r["name"] == name}
        ax.plot(labels, [mine[lab] for lab in labels], marker="s" if "int8" in name else "o", label=name)
    ax.set_xlabel("scene")
    ax.set_ylabel(f"p50 ms, end to end, {rows[0]['threads']} thread")
    ax.set_yscale("log")
    ax.set_title(f"{report['run']['family']}: the app's whole path per scene")
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    return _save(fig, ax, run_dir / "report_end_to_end.png")


def _save(fig, ax, path: Path) -> str:
    """Grid, tight layout, atomic PNG write; returns the file name."""
    import matplotlib.pyplot as plt

    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)
    return path.name


def _markdown(report: dict, plots: list[str]) -> str:
    run = report["run"]
    out = [f"# edgecap report: {run['family']}", ""]
    tr = report.get("training")
    if tr:
        out += ["## Training", "", f"{tr['steps']} steps on {tr['device']}.", "",
                "| model | " + " | ".join(k for k, v in tr["val"].items() if isinstance(v, float)) + " |",
                "|---|" + "---|" * sum(isinstance(v, float) for v in tr["val"].values())]
        for name, m in [("trained", tr["val"])] + list(tr.get("baselines", {}).items()):
            out.append(f"| {name} | " + " | ".join(f"{v:.2f}" for v in m.values() if isinstance(v, float)) + " |")
        out.append("")
    q = report.get("quantization")
    if q:
        metric = next(k for k in q["fp32"] if isinstance(q["fp32"][k], float))
        out += ["## Quantization", "", f"{q['method'].upper()}, {q['calibration_windows']} calibration inputs, "
                f"{q['scheme']}; kept in fp32: {', '.join(q['float_modules'])}.",
                f"Eager int8 simulation: {metric} {q['int8_simulated'][metric]:.3f} vs fp32 {q['fp32'][metric]:.3f}.", ""]
    ex = report.get("export")
    if ex:
        out += ["## Artifacts", "", "| artifact | format | precision | scheme | MB | runs here |", "|---|---|---|---|---|---|"]
        for a in ex["artifacts"]:
            out.append(f"| {a['name']} | {a['format']} | {a['precision']} | {a['scheme']} | "
                       f"{a['size_bytes'] / 1e6:.2f} | {'yes' if a['runnable_here'] else 'no: ' + '; '.join(a['notes'])[:80]} |")
        for f in ex.get("failures", []):
            out.append(f"| FAILED {f['format']}/{f['precision']} | | | {f['error'][:80]} | | |")
        out.append("")
    if report.get("validation"):
        out += ["## Validation (task and tensor parity against PyTorch fp32)", "", "```", validate_table(report["validation"]), "```", ""]
    if report.get("bench"):
        out += ["## Latency", "", "```", bench_table(report["bench"]), "```", ""]
    for plot in plots:
        out += [f"![{plot.removesuffix('.png').replace('_', ' ')}]({plot})", ""]
    if report.get("timings_s"):
        out += ["## Stage timings (s)", "", " | ".join(f"{k}: {v:.0f}" for k, v in report["timings_s"].items()), ""]
    return "\n".join(out)
