"""`edgecap report`: report.json, report.md and a self-contained report.html (plots inline).

Every result is tied to the sha256 of the artifact it was measured on; a row whose artifact has
changed since is marked STALE and left out of the plots, and the command exits non-zero.
"""

from __future__ import annotations

from pathlib import Path

from edgecap import EdgecapError
from edgecap.core.io import atomic_path, read_json, sha256_of, write_json, write_text
from edgecap.runs import load_manifest
from edgecap.stages.bench import device_notes
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


NO_TABLE = "(no table: written by an earlier edgecap)"


def stale_evaluations(run_dir: Path, evaluations: list[dict]) -> list[str]:
    """Mark every extra-set evaluation measured on other weights than RUN/model.safetensors now."""
    weights = run_dir / "model.safetensors"
    now = sha256_of(weights) if weights.exists() else None
    stale = []
    for result in evaluations:
        if result.get("model_sha256") != now:
            result["stale"] = (f"measured on other weights; run `edgecap evaluate {run_dir} --on "
                               f"{result.get('set')}` again")
            stale.append(f"evaluation {result.get('set')}")
    return stale


def build_report(run_dir: Path) -> dict:
    run_dir = Path(run_dir)
    report = {
        "run": read_json(run_dir / "run.json", "run spec"),
        "training": _maybe(run_dir / "model.json", "model spec"),
        "quantization": _maybe(run_dir / "quantize" / "quant.json", "quantization recipe"),
        "export": load_manifest(run_dir) if (run_dir / "export" / "manifest.json").exists() else None,
        "validation": _maybe(run_dir / "validate.json", "validation report"),
        "bench": _maybe(run_dir / "bench.json", "bench report"),
        "timings_s": _maybe(run_dir / "pipeline_timings.json", "pipeline timings"),
        "evaluations": [read_json(p, "evaluation result") for p in sorted(run_dir.glob("evaluate_*.json"))],
    }
    report["stale"] = mark_stale(run_dir, report) + stale_evaluations(run_dir, report["evaluations"])
    write_json(run_dir / "report.json", report)
    plots = [p for p in (_plot(run_dir, report), _plot_deltas(run_dir, report), _plot_scenes(run_dir, report),
                         _plot_sustained(run_dir, report)) if p]
    write_text(run_dir / "report.md", _markdown(report, plots))
    write_text(run_dir / "report.html", _html(report, {p: (run_dir / p).read_bytes() for p in plots}))
    if report["stale"]:
        raise StaleResults(f"results of {', '.join(report['stale'])} belong to artifacts that changed since they were "
                           f"measured; they are marked STALE in {run_dir / 'report.md'}: run the commands "
                           "named there again")
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
    return [(r["name"], r["p50_ms"] or r["mean_ms"], acc[r["name"]]) for r in bench["rows"]
            if r["threads"] == t1 and r["name"] in acc and not r.get("stale") and (r["p50_ms"] or r.get("mean_ms"))]


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
    no_p50 = any(not r.get("p50_ms") for r in report["bench"]["rows"])
    ax.set_xlabel(f"{'p50 (mean where a tool gives no p50)' if no_p50 else 'p50'} latency per inference, "
                  f"{min(report['bench']['threads'])} thread (ms, log)")
    ax.set_ylabel(metric.replace("_mm", " (mm)"))
    ax.set_title(f"{report['run']['family']}: latency vs accuracy on {report['bench']['target']}")
    return _save(fig, ax, run_dir / "report_latency_accuracy.png")


def _plot_deltas(run_dir: Path, report: dict) -> str | None:
    """Each validated artifact's task metrics minus PyTorch's, beside its precision's threshold:
    the axis spans at least the threshold, so a difference far inside it looks small."""
    val = report.get("validation")
    rows = [r for r in (val or {}).get("artifacts", []) if r.get("task") and not r.get("stale")]
    if not rows:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ref, rules = val["reference"]["task"], val["tolerances"]
    # None: not measured on this data (on either side; one side None is a failure the table shows)
    metrics = [m for m in rules["fp32"]["metrics"]
               if ref.get(m) is not None and all(r["task"].get(m) is not None for r in rows)]
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.2 * len(metrics), 0.45 * len(rows) + 1.6), squeeze=False)
    for ax, metric in zip(axes[0], metrics):
        deltas = [r["task"][metric] - ref[metric] for r in rows]
        limits = [_limit(rules[r["precision"]], ref[metric]) for r in rows]
        y = range(len(rows))
        ax.barh(list(y), deltas, color=["tab:red" if r["status"] == "fail" else "tab:blue" for r in rows])
        for i, lim in enumerate(limits):
            if lim is not None:
                ax.plot([-lim, -lim] if rules[rows[i]["precision"]].get("better") != "lower" else [lim, lim],
                        [i - 0.4, i + 0.4], color="black", lw=2)
                if "better" not in rules[rows[i]["precision"]]:
                    ax.plot([lim, lim], [i - 0.4, i + 0.4], color="black", lw=2)
        span = max([abs(d) for d in deltas] + [lim for lim in limits if lim is not None] + [1e-9]) * 1.15
        ax.set_xlim(-span, span)
        ax.axvline(0, color="grey", lw=0.8)
        ax.set_yticks(list(y), [r["name"] for r in rows] if ax is axes[0][0] else [""] * len(rows), fontsize=8)
        ax.invert_yaxis()
        ax.set_xlabel(f"{metric}: artifact - PyTorch")
        ax.grid(True, axis="x", alpha=0.3)
    fig.suptitle("task metrics against PyTorch fp32; black bars: the pass/fail threshold", fontsize=10)
    return _save(fig, axes[0][0], run_dir / "report_deltas.png")


def _limit(rule: dict, reference: float) -> float | None:
    """The largest allowed |delta| of a tolerance rule, in the metric's units."""
    if "max_abs_delta" in rule:
        return float(rule["max_abs_delta"])
    if "max_rel_delta" in rule:
        return float(rule["max_rel_delta"]) * abs(reference)
    return None


def rule_text(rule: dict) -> str:
    """A tolerance rule in words, e.g. 'loss <= 2.0% (a gain passes)'."""
    parts = []
    if "max_abs_delta" in rule:
        parts.append(f"<= {rule['max_abs_delta']:g}")
    if "max_rel_delta" in rule:
        parts.append(f"<= {100 * rule['max_rel_delta']:g}%")
    what = "|delta|" if "better" not in rule else "loss"
    tail = "" if "better" not in rule else f" ({rule['better']} is better: a gain passes)"
    tail += "".join(f"; {k} to PyTorch >= {v:g}" for k, v in (rule.get("min_tensor") or {}).items())
    return f"{what} {' and '.join(parts)} on {', '.join(rule['metrics'])}{tail}"


def _plot_scenes(run_dir: Path, report: dict) -> str | None:
    """End-to-end latency (the app's whole path) on each of the family's bench scenes."""
    rows = [r for r in (report.get("bench") or {}).get("end_to_end") or [] if not r.get("stale")]
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


def _plot_sustained(run_dir: Path, report: dict) -> str | None:
    """Sustained runs on a phone: latency, the fastest cluster's frequency cap and the hottest zone
    over time, one line per artifact, with the throttling onset marked."""
    runs = [r for r in (report.get("bench") or {}).get("sustained", []) if r["trace"]]
    if not runs:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(3, 1, figsize=(8, 7.5), sharex=True)
    for run in runs:
        t = [p["t_s"] for p in run["trace"]]
        line = axes[0].plot(t, [p["latency_ms"] for p in run["trace"]], marker=".", label=run["name"])[0]
        caps = [p["clusters"][-1].get("cap_mhz") if p["clusters"] else None for p in run["trace"]]
        axes[1].plot(t, caps, color=line.get_color())
        axes[2].plot(t, [p["hottest_c"] for p in run["trace"]], color=line.get_color())
        if run["throttling"]["throttled"]:
            for ax in axes:
                ax.axvline(run["throttling"]["onset_s"], color=line.get_color(), ls="--", lw=1)
    axes[0].set_ylabel("latency p50 (ms)")
    axes[1].set_ylabel("fastest cluster cap (MHz)")
    axes[2].set_ylabel("hottest zone (°C)")
    axes[2].set_xlabel("time (s); dashed: throttling begins")
    axes[0].legend(fontsize=8, frameon=False)
    axes[0].set_title(f"sustained runs on {report['bench']['target']}")
    for ax in axes[:2]:
        ax.grid(True, alpha=0.3)
    return _save(fig, axes[2], run_dir / "report_sustained.png")


def _save(fig, ax, path: Path) -> str:
    """Grid, tight layout, atomic PNG write; returns the file name."""
    import matplotlib.pyplot as plt

    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)
    return path.name


def _training_rows(tr: dict) -> list[tuple[str, dict]]:
    """(name, metrics) rows of the training table: the trained model, the same model's outputs
    solved other ways where the family reports them (a `val` entry holding metric dicts, e.g.
    {"same_2d": {"unweighted": {...}, "ransac": {...}}}), then the baselines."""
    rows = [("trained", tr["val"])]
    for group, entries in tr["val"].items():
        if isinstance(entries, dict) and entries and all(isinstance(m, dict) for m in entries.values()):
            rows += [(f"{group}: {name}", m) for name, m in entries.items()]
    return rows + list(tr.get("baselines", {}).items())


def _metric_keys(val: dict) -> list[str]:
    """The metrics of a training record's `val`: float values, and None for one not measured on
    this data (shown as n/a)."""
    return [k for k, v in val.items() if isinstance(v, float) or v is None]


def _figure(value: float) -> str:
    """Two decimals (mm, dB, 0.00), three for fractions like 0.123."""
    return f"{value:.2f}" if abs(value) >= 1 or value == 0 else f"{value:.3f}"


def _metric_notes(family_name: str) -> str:
    """How the family measures its metrics (FamilyFacts.metric_notes), or ""."""
    from edgecap.models import get_family

    try:
        return get_family(family_name).facts.metric_notes
    except EdgecapError:  # a run of a family this edgecap does not know: report without the note
        return ""


def _markdown(report: dict, plots: list[str]) -> str:
    run = report["run"]
    out = [f"# edgecap report: {run['family']}", ""]
    tr = report.get("training")
    if tr:
        keys = _metric_keys(tr["val"])
        out += ["## Training", "", f"{tr['steps']} steps on {tr['device']}.", "",
                "| model | " + " | ".join(keys) + " |", "|---|" + "---|" * len(keys)]
        for name, m in _training_rows(tr):
            out.append(f"| {name} | " + " | ".join(_figure(m[k]) if isinstance(m.get(k), float)
                                                    else "n/a" if k in m and m[k] is None else "" for k in keys)
                       + " |")
        notes = _metric_notes(run["family"])
        out += ["", notes, ""] if notes else [""]
    for result in report.get("evaluations", []):
        stale = f" STALE: {result['stale']}." if result.get("stale") else ""
        out += [f"## Evaluation: {result['set']}", "", f"{result.get('description', '')}.{stale}", "", "```",
                result.get("table", NO_TABLE), "```", ""]
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
                       f"{a['size_bytes'] / 1e6:.2f} | {'yes' if a['runnable_here'] else 'no: ' + '; '.join(a['notes'])} |")
        for f in ex.get("failures", []):
            out.append(f"| FAILED {f['format']}/{f['precision']} | | | {f['error']} | | |")
        out.append("")
    if report.get("validation"):
        rules = "; ".join(f"{p}: {rule_text(r)}" for p, r in report["validation"]["tolerances"].items())
        out += ["## Validation (task and tensor parity against PyTorch fp32)", "", f"Thresholds: {rules}.", "",
                "```", validate_table(report["validation"]), "```", ""]
    if report.get("bench"):
        out += ["## Latency", "", "```", bench_table(report["bench"]), "```", ""]
    for plot in plots:
        out += [f"![{plot.removesuffix('.png').replace('_', ' ')}]({plot})", ""]
    if report.get("timings_s"):
        out += ["## Stage timings (s)", "", " | ".join(f"{k}: {v:.0f}" for k, v in report["timings_s"].items()), ""]
    return "\n".join(out)


_CSS = """body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:1200px;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:.6em 0 1.4em}th,td{border:1px solid #ccc;padding:.25em .55em;
vertical-align:top}th{background:#f3f3f3;text-align:left}td.n{text-align:right;font-variant-numeric:tabular-nums}
.pass{color:#17692f}.fail{color:#b00020;font-weight:600}.stale{background:#fff3cd}.warn{background:#fff3cd;
padding:.5em .8em;border-left:4px solid #e0a800}img{max-width:100%;display:block;margin:.5em 0 1.5em}"""


def _load(value) -> str:
    return "unknown" if value is None else f"{value:.1f}"


def _html(report: dict, plots: dict[str, bytes]) -> str:
    """The report as one HTML file: tables with their full text, thresholds, noise, plots inline."""
    import base64
    import html

    e = lambda v: html.escape(str(v))  # noqa: E731
    num = lambda v, f=".3f": f'<td class="n">{v:{f}}</td>' if isinstance(v, (int, float)) else "<td></td>"  # noqa: E731

    def table(head: list[str], rows: list[list[str]]) -> list[str]:
        return ["<table><tr>" + "".join(f"<th>{e(h)}</th>" for h in head) + "</tr>"] + \
               ["<tr>" + "".join(r) + "</tr>" for r in rows] + ["</table>"]

    run = report["run"]
    out = ["<!doctype html><html><head><meta charset='utf-8'>",
           f"<title>edgecap report: {e(run['family'])}</title><style>{_CSS}</style></head><body>",
           f"<h1>edgecap report: {e(run['family'])}</h1>"]
    if report.get("stale"):
        out.append(f"<p class='warn'>STALE: the results of {e(', '.join(report['stale']))} were measured on artifacts "
                   "that have changed since. They are marked below and left out of the plots; run validate and bench "
                   "again.</p>")
    tr = report.get("training")
    if tr:
        keys = _metric_keys(tr["val"])
        out += [f"<h2>Training</h2><p>{tr['steps']} steps on {e(tr['device'])}.</p>"]
        out += table(["model"] + keys, [[f"<td>{e(name)}</td>"]
                                        + ["<td>n/a</td>" if k in m and m[k] is None else num(m.get(k)) for k in keys]
                                        for name, m in _training_rows(tr)])
        notes = _metric_notes(run["family"])
        if notes:
            out.append(f"<p>{e(notes)}</p>")
    for result in report.get("evaluations", []):
        cls = " class='stale'" if result.get("stale") else ""
        out += [f"<h2>Evaluation: {e(result['set'])}</h2><p{cls}>{e(result.get('description', ''))}."
                + (f" STALE: {e(result['stale'])}." if result.get("stale") else "") + "</p>",
                f"<pre>{e(result.get('table', NO_TABLE))}</pre>"]
    ex = report.get("export")
    if ex:
        out.append("<h2>Artifacts</h2>")
        out += table(["artifact", "format", "precision", "layout", "scheme", "MB", "runs here", "sha256"],
                     [[f"<td>{e(a['name'])}</td><td>{e(a['format'])}</td><td>{e(a['precision'])}</td>"
                       f"<td>{e(a.get('layout', 'whole'))}</td><td>{e(a['scheme'])}</td>", num(a['size_bytes'] / 1e6, ".2f"),
                       f"<td>{'yes' if a['runnable_here'] else 'no: ' + e('; '.join(a['notes']))}</td>"
                       f"<td><code>{e(a['sha256'][:16])}</code></td>"] for a in ex["artifacts"]]
                     + [[f"<td class='fail'>FAILED {e(f['format'])}/{e(f['precision'])}</td>"
                         f"<td colspan='7'>{e(f['error'])}</td>"] for f in ex.get("failures", [])])
    val = report.get("validation")
    if val:
        metrics, ref = val["tolerances"]["fp32"]["metrics"], val["reference"]["task"]
        out += ["<h2>Validation against PyTorch fp32</h2><p>Thresholds: "
                + "; ".join(f"<b>{e(p)}</b>: {e(rule_text(r))}" for p, r in val["tolerances"].items()) + ".</p>"]
        rows = [["<td>pytorch_fp32 (reference)</td><td></td>"] + [num(ref[m]) for m in metrics] + ["<td></td>"] * 2]
        for r in val["artifacts"]:
            status = "STALE" if r.get("stale") else r["status"]
            cls = "stale" if r.get("stale") else ""
            cells = [f"<td class='{cls}'>{e(r['name'])}</td><td class='{e(r['status'])}'>{e(status)}</td>"]
            if "task" in r:
                cells += [num(r["task"][m]) for m in metrics]
                cells += [num(r["task"][metrics[0]] - ref[metrics[0]], "+.4f")]
            else:
                cells += ["<td></td>"] * (len(metrics) + 1)
            note = r.get("stale") or "; ".join(r.get("problems", [])) or r.get("reason", "")
            if "host_task" in r:  # on a device: the same file on this machine
                note = (f"on the host: {metrics[0]} {r['host_task'][metrics[0]]:.3f} (device - host "
                        f"{r['task'][metrics[0]] - r['host_task'][metrics[0]]:+.3f}); {note}").rstrip("; ")
            cells.append(f"<td>{e(note)}</td>")
            rows.append(cells)
        out += table(["artifact", "status"] + metrics + [f"delta {metrics[0]}", "notes"], rows)
    bench = report.get("bench")
    if bench:
        threads, d = bench["threads"], bench.get("device", {})
        noise = bench.get("noise", {})
        if bench["target"].startswith("adb"):
            where = (f"{e(d.get('manufacturer', '?'))} {e(d.get('model', '?'))} ({e(d.get('soc', '?'))}, "
                     f"{e(d.get('abi', '?'))}, Android {e(d.get('android', '?'))}), pinned to cores "
                     f"{e(d.get('big_cores'))}")
        else:
            where = (f"{e(d.get('cpu', '?'))}, {e(d.get('cores', '?'))} cores; other work used "
                     f"{_load(noise.get('cpu_busy_percent_before'))}% of the CPUs before, "
                     f"{_load(noise.get('cpu_busy_percent_after'))}% after")
        out.append(f"<h2>Latency on {e(bench['target'])}</h2><p>{where}; subjects timed interleaved in "
                   f"{bench.get('rounds', 1)} rounds; spread = (max - min) of the per-round p50s / p50.</p>")
        if bench.get("partial"):
            out.append(f"<p class='warn'>PARTIAL: {e(bench.get('error', ''))}. The rows are from finished rounds.</p>")
        out += [f"<p class='warn'>{e(w)}</p>" for w in noise.get("warnings", [])]
        head = ["artifact", "MB"] + [f"p50 {t}T ms" for t in threads] + ["mean 1T", "p90 1T", "p99 1T", "FPS 1T",
                                                                          "spread", "x eager", "peak MB"]
        by_name: dict = {}
        for r in bench["rows"]:
            by_name.setdefault(r["name"], {})[r["threads"]] = r
        rows = []
        for name, per in by_name.items():
            one = per.get(threads[0]) or next(iter(per.values()))
            rows.append([f"<td class='{'stale' if one.get('stale') else ''}'>{e(name)}"
                         f"{' (STALE)' if one.get('stale') else ''}</td>", num(one["size_bytes"] / 1e6, ".2f")]
                        + [num(per[t]["p50_ms"] if t in per else None, ".4f") for t in threads]
                        + [num(one.get("mean_ms"), ".4f"), num(one["p90_ms"], ".4f"), num(one["p99_ms"], ".4f"),
                           num(one["fps"], ".0f"), num(100 * one["round_spread"] if one.get("round_spread") is not None else None, ".0f"),
                           num(one.get("speedup_vs_pytorch"), ".2f"),
                           num(one.get("peak_rss_mb", one.get("peak_memory_mb")), ".0f")])
        out += table(head, rows)
        notes = device_notes(bench, by_name, threads)
        if notes:
            out.append("<pre>" + e("\n".join(notes)) + "</pre>")
        out += [f"<p>{e(s['name'])}: skipped ({e(s['reason'])})</p>" for s in bench.get("skipped", [])]
    for name, data in plots.items():
        out.append(f"<img alt='{e(name)}' src='data:image/png;base64,{base64.b64encode(data).decode()}'>")
    if report.get("timings_s"):
        out.append("<h2>Stage timings (s)</h2><p>" + e(" | ".join(f"{k}: {v:.0f}" for k, v in
                                                                  report["timings_s"].items())) + "</p>")
    # For a browser check: every inline plot decoded.
    out.append("<script>window.addEventListener('load',()=>{document.body.dataset.plots=[...document.images]"
               ".every(i=>i.complete&&i.naturalWidth>0)?'ok':'broken'});</script></body></html>")
    return "\n".join(out)
