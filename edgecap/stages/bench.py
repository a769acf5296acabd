"""`edgecap bench`: latency (p50/p90/p99, FPS), peak memory and size of every artifact of a run,
or of any model file (`bench_files`), on a target (edgecap.targets).

The input is a real validation input (a run), or the user's .npz, or random inputs of the model's
own shapes (a model from elsewhere). All subjects and thread counts are timed in one interleaved
measurement, so the ratios between them are fair on a noisy machine. On the host, the run's
PyTorch eager model, the family's reference models and its end-to-end scenes are timed too.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from edgecap import EdgecapError
from edgecap.backends import format_of
from edgecap.core.io import atomic_path, load_arrays, size_of, write_json
from edgecap.models.contract import WHOLE
from edgecap.runs import load_manifest, load_run, verify_artifact
from edgecap.targets import get_target
from edgecap.targets.base import BenchOptions, TargetInterrupted

EAGER = "pytorch_fp32"


def _save_inputs(path: Path, inputs: dict) -> Path:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, **inputs)
    return path


def bench(run_dir: Path, threads: tuple[int, ...] = (1, 2), min_runs: int = 200, min_seconds: float = 1.0,
          warmup: int = 20, target: str = "host", rounds: int = 5, progress: bool = True,
          target_options: dict | None = None, sustained: float | None = None) -> dict:
    """Every artifact of a run on `target`, interleaved; with `sustained` seconds, then also each
    artifact alone for that long, with its latency, frequency and temperature traces."""
    run_dir = Path(run_dir)
    manifest = load_manifest(run_dir)
    family, run = load_run(run_dir, expect_family=manifest["family"])
    (run_dir / "logs").mkdir(exist_ok=True)
    with get_target(target, run_dir / "logs" / "bench.log", target_options) as tgt:
        return _bench_run(run_dir, manifest, family, run, tgt, threads, min_runs, min_seconds, warmup, rounds,
                          progress, sustained)


def _bench_run(run_dir, manifest, family, run, tgt, threads, min_runs, min_seconds, warmup, rounds, progress,
               sustained) -> dict:
    names = {"input_names": list(manifest["inputs"]), "output_names": manifest["outputs"]}
    inputs = _save_inputs(run_dir / "bench_input.npz",
                          family.calibration_inputs(family.load_data(run, "val"), 1, seed=2)[0])
    device = tgt.device_facts()  # before timing: the load the measurements started under
    subjects, skipped = [], []
    if tgt.host_extras:  # PyTorch eager: the whole graph, and each exported multi-part layout composed alike
        size = (run_dir / "model.safetensors").stat().st_size
        layouts = sorted({a.get("layout", WHOLE) for a in manifest["artifacts"]} - {WHOLE})
        subjects += [{"kind": "eager", "name": eager_name(layout), "run_dir": str(run_dir), "layout": layout,
                      "format": "pytorch", "precision": "fp32", "size_bytes": size, **names}
                     for layout in [WHOLE] + layouts]
    for entry in manifest["artifacts"]:
        if not entry.get("runnable_here", True):
            skipped.append({"name": entry["name"], "reason": "; ".join(entry.get("notes", [])) or "not runnable here"})
            continue
        subject = {"kind": "artifact", "name": entry["name"], "path": str(verify_artifact(run_dir, entry)),
                   "layout": entry.get("layout", WHOLE),
                   "family": family.name, "format": entry["format"], "precision": entry["precision"],
                   "size_bytes": entry["size_bytes"], "sha256": entry["sha256"], **names}
        why = tgt.unsupported(subject)
        if why:
            skipped.append({"name": entry["name"], "reason": why})
        else:
            subjects.append(subject)
    # Other models of the family timed eager beside the artifacts (e.g. a paper's large
    # baseline); slow, so fewer runs. Their size is their real parameter count, fp32.
    references = family.bench_references(run) if tgt.host_extras else []
    subjects += [{"kind": "reference", "name": r["name"], "family": family.name, "reference": r,
                  "format": "pytorch", "precision": "fp32", **names} for r in references]
    normal = BenchOptions(min_runs=min_runs, min_seconds=min_seconds, warmup=warmup, rounds=rounds)
    heavy = BenchOptions(min_runs=min(5, min_runs), min_seconds=min(2.0, min_seconds), warmup=min(1, warmup),
                         rounds=min(rounds, 5))
    if not subjects:
        reasons = "; ".join(f"{s['name']}: {s['reason']}" for s in skipped)
        raise EdgecapError(f"nothing to bench on {tgt.name}: {reasons}")
    work = [(s, t) for s in subjects for t in threads]
    base = {"family": family.name, "target": tgt.name, "device": device, "threads": list(threads), "rounds": rounds,
            "skipped": skipped, "note": "latency per inference, batch 1"}
    try:
        results = tgt.measure([s for s, _ in work], inputs,
                              [replace(heavy if s["kind"] == "reference" else normal, threads=t) for s, t in work],
                              progress)
    except TargetInterrupted as e:  # keep what finished, marked partial, then fail
        rows = _rows(work, e.partial)
        write_json(run_dir / "bench.json", {**base, "partial": True, "error": str(e), "rows": rows, "references": [],
                                            "end_to_end": [], "noise": noise(device, device, rows)})
        raise
    rows = _rows(work, results)
    _add_ratios(rows, tgt.host_extras, [r["name"] for r in references])
    for r in rows:  # delegation facts the exporter recorded
        entry = next((a for a in manifest["artifacts"] if a["name"] == r["name"]), None)
        if entry:
            r["delegation"] = _delegation(entry)

    end_to_end = []
    scenes = family.bench_scenes(run, run_dir / "bench_scenes") if tgt.host_extras else []
    if scenes:  # the app's whole path on each scene, at the first thread count
        e2e = [({**s, "scene": sc["file"], "run_dir": str(run_dir)}, sc) for s in subjects if s["kind"] != "reference"
               for sc in scenes]
        opts = BenchOptions(threads=threads[0], min_runs=min(20, min_runs), min_seconds=min_seconds,
                            warmup=min(3, warmup), rounds=min(rounds, 4))
        for (s, sc), result in zip(e2e, tgt.measure([s for s, _ in e2e], inputs, [opts] * len(e2e), progress)):
            end_to_end.append({"name": s["name"], "threads": threads[0], "scene": sc["label"],
                               **({"sha256": s["sha256"]} if "sha256" in s else {}),
                               **{k: v for k, v in sc.items() if k not in ("label", "file")}, **result})
    report = {**base, "rows": rows, "references": [r["name"] for r in references], "end_to_end": end_to_end,
              "noise": noise(device, tgt.device_facts(), rows)}
    if sustained:
        report["sustained"] = []
        for s in (s for s in subjects if s["kind"] == "artifact"):
            try:
                report["sustained"].append(tgt.sustained(s, inputs, sustained, threads[0], progress))
            except EdgecapError as e:  # the interleaved rows are complete; the sustained runs are not
                write_json(run_dir / "bench.json", {**report, "sustained_error": str(e)})
                raise
    write_json(run_dir / "bench.json", report)
    return report


def _rows(work: list[tuple[dict, int]], results: list[dict | None]) -> list[dict]:
    """bench.json rows: each subject's facts beside its measurement (None: not measured, left out)."""
    rows = []
    for (s, t), result in zip(work, results):
        if result is None:
            continue
        size = s["size_bytes"] if "size_bytes" in s else 4 * result["params"]
        rows.append({"name": s["name"], "format": s["format"], "precision": s["precision"], "threads": t,
                     "layout": s.get("layout", WHOLE),
                     "size_bytes": size, **({"sha256": s["sha256"]} if "sha256" in s else {}), **result})
    return rows


def bench_files(paths: list[Path], threads: tuple[int, ...] = (1, 2), inputs: Path | None = None,
                min_runs: int = 200, min_seconds: float = 1.0, warmup: int = 20, target: str = "host",
                rounds: int = 5, out: Path | None = None, progress: bool = True,
                target_options: dict | None = None) -> dict:
    """Bench model files edgecap may not have made (.onnx, .tflite, .pte): no manifest needed.
    Inputs: the arrays of `inputs` (.npz, by input name), else random of the model's own shapes."""
    import tempfile

    from edgecap.runs import open_artifact

    paths = [Path(p) for p in paths]
    shapes = {}
    for p in paths:
        if not p.exists():
            raise EdgecapError(f"model file not found: {p}")
        runner = open_artifact(p)
        shapes[p] = runner.input_shapes
    if len({tuple(sorted(s.items())) for s in shapes.values()}) > 1 and inputs is None:
        raise EdgecapError("the models take different inputs; bench them one at a time or pass --inputs")
    with tempfile.TemporaryDirectory(prefix="edgecap-bench-") as tmp:
        if inputs is None:
            from edgecap.core.runner import example_inputs

            input_path = _save_inputs(Path(tmp) / "inputs.npz", example_inputs(shapes[paths[0]]))
        else:
            input_path = Path(inputs)
            _check_npz(input_path, shapes)
        log = Path(out).with_suffix(".log") if out else Path(tmp) / "bench.log"
        with get_target(target, log, target_options) as tgt:
            device = tgt.device_facts()
            subjects = [{"kind": "artifact", "name": p.name, "path": str(p.resolve()), "format": format_of(p),
                         "precision": "", "size_bytes": size_of(p), "input_order": list(shapes[p])} for p in paths]
            for s in subjects:
                why = tgt.unsupported(s)
                if why:
                    raise EdgecapError(f"{s['path']}: {why}")
            work = [(s, t) for s in subjects for t in threads]
            opts = [BenchOptions(threads=t, min_runs=min_runs, min_seconds=min_seconds, warmup=warmup, rounds=rounds)
                    for _, t in work]
            base = {"family": None, "target": tgt.name, "device": device, "threads": list(threads), "rounds": rounds,
                    "skipped": [], "references": [], "end_to_end": [],
                    "inputs": str(inputs) if inputs else "random normal, the model's own input shapes",
                    "note": "latency per inference"}
            try:
                results = tgt.measure([s for s, _ in work], input_path, opts, progress)
            except TargetInterrupted as e:
                if out:
                    rows = _rows(work, e.partial)
                    write_json(Path(out), {**base, "partial": True, "error": str(e), "rows": rows,
                                           "noise": noise(device, device, rows)})
                raise
            rows = _rows(work, results)
            report = {**base, "rows": rows, "noise": noise(device, tgt.device_facts(), rows)}
    if out:
        write_json(Path(out), report)
    return report


BUSY_LOAD = 0.5  # share of the CPUs used by other work (or load average per core) that counts as busy
NOISY_SPREAD = 0.5  # round-to-round p50 spread (max - min over p50) above which a row counts as noisy


def noise(before: dict, after: dict, rows: list[dict]) -> dict:
    """How much to trust the timings: how busy the machine was before and after (CPU use of every
    process, sampled while edgecap itself was idle; else the load average), each row's
    round-to-round spread, and a warning when either says the measurements were disturbed."""
    cores = before.get("cores") or 1
    busy = [d.get("cpu_busy_percent") for d in (before, after)]
    loads = [d.get("load_average_1m") for d in (before, after)]
    warnings = []
    if all(b is not None for b in busy):
        if max(busy) > 100 * BUSY_LOAD:
            warnings.append(f"the machine was busy ({max(busy):.0f}% of {cores} cores in use by other work): "
                            "latencies are higher and noisier than on an idle machine")
    elif all(v is not None for v in loads) and max(loads) > BUSY_LOAD * cores:
        warnings.append(f"the machine was busy (load {max(loads):.1f} on {cores} cores): latencies are higher and "
                        "noisier than on an idle machine")
    worst = max(rows, key=lambda r: r.get("round_spread") or 0.0, default=None)
    if worst is not None and (worst.get("round_spread") or 0.0) > NOISY_SPREAD:
        warnings.append(f"{worst['name']} at {worst['threads']} thread(s) moved by {worst['round_spread']:.0%} between "
                        "rounds: compare ratios within this run only")
    return {"load_before": loads[0], "load_after": loads[1], "cpu_busy_percent_before": busy[0],
            "cpu_busy_percent_after": busy[1], "max_round_spread": worst.get("round_spread") if worst else None,
            "warnings": warnings}


def _check_npz(path: Path, shapes: dict) -> None:
    from edgecap.core.arrays import check_named_arrays

    arrays = load_arrays(path, "--inputs file")
    for model, s in shapes.items():
        check_named_arrays(arrays, s, f"--inputs {path} for {model.name}")


def eager_name(layout: str) -> str:
    """The eager row of a layout: pytorch_fp32 for the whole graph, pytorch_fp32_<layout> else."""
    return EAGER if layout == WHOLE else f"{EAGER}_{layout}"


def _add_ratios(rows: list[dict], with_eager: bool, references: list[str]) -> None:
    """Speed and size ratios against PyTorch eager of the same layout (when timed) and each
    reference, at the same thread count."""
    for r in rows:
        eager = [eager_name(r.get("layout", WHOLE))] if with_eager else []
        for base_name, speed_key in [(n, "speedup_vs_pytorch") for n in eager] + \
                                    [(n, f"speedup_vs_{n}") for n in references]:
            base = next((x for x in rows if x["name"] == base_name and x["threads"] == r["threads"]), None)
            if base is None:
                continue
            r[speed_key] = base["p50_ms"] / r["p50_ms"]
            if base_name in references:
                r[f"smaller_than_{base_name}"] = base["size_bytes"] / r["size_bytes"]


def _delegation(entry: dict) -> str:
    """How much of the graph runs on the backend's accelerated kernels, from the manifest
    (a multi-part artifact: each part's, in order)."""
    details = entry.get("details", {})
    parts = list(details.values()) if entry.get("layout", "whole") != "whole" else [details]
    return " + ".join(_delegation_of(entry["format"], d) for d in parts)


def _delegation_of(fmt: str, d: dict) -> str:
    if fmt == "executorch" and "delegated_nodes" in d:
        return (f"XNNPACK {d['delegated_nodes']} nodes in {d['delegated_subgraphs']} subgraphs, "
                f"{d['non_delegated_nodes']} portable")
    if fmt == "tflite" and "xnnpack" in d:
        x = d["xnnpack"]
        return f"XNNPACK {x['delegated_nodes']}/{x['nodes']} nodes in {x['partitions']} partitions"
    if fmt == "onnx" and "nodes" in d:
        return f"ORT CPU EP (MLAS kernels), {d['nodes']} nodes"
    return ""


def device_notes(report: dict, by_name: dict, threads: list[int]) -> list[str]:
    """On a phone: which runner gave each row, percentiles it could not give, the heat over the
    run, and the sustained runs' throttling."""
    lines = []
    for name, per in by_name.items():
        one = per.get(threads[0]) or next(iter(per.values()))
        if "runner" not in one:
            continue
        heat = one.get("thermal") or []
        first, last = (heat[0]["before"], heat[-1]["after"]) if heat else ({}, {})
        lines.append(f"  {name}: {one['runner']} ({one['runtime']}); percentiles {one['percentiles']}; init "
                     f"{_cell(one.get('init_ms'), 0, 1).strip()} ms; hottest zone {first.get('hottest_c')} -> "
                     f"{last.get('hottest_c')} °C" + (" (PARTIAL)" if one.get("partial") else ""))
        profile = one.get("op_profile")
        if profile:
            top = ", ".join(f"{r['op']} {r['percent']:.0f}%" for r in profile.get("ops", [])[:4])
            lines.append(f"    op profile: {top} ({profile['file']})" if "file" in profile else
                         f"    op profile: {profile['error']}")
    if lines:
        lines.insert(0, "on the device:")
    for run in report.get("sustained", []):
        t = run["throttling"]
        if not lines or lines[-1] != "":
            lines.append("")
        head = f"sustained {run['name']} for {run['seconds']:g} s at {run['threads']} thread(s) ({run['runner']}): "
        if t["throttled"]:
            cap = "" if t.get("cap_after") is None else f", fastest cluster capped at {t['cap_after']:.0%}"
            lines.append(head + f"throttled from {t['onset_s']:.0f} s: p50 "
                         f"{_cell(t.get('latency_before_ms'), 0, 2)} ms "
                         f"before -> {_cell(t.get('latency_after_ms'), 0, 2)} ms after{cap}")
        else:
            lines.append(head + f"no throttling; latency {_cell(t['latency_start_ms'], 0, 2)} -> "
                         f"{_cell(t['latency_end_ms'], 0, 2)} ms")
    return lines


def _spread(value) -> str:
    return f"{'-':>7}" if value is None else f"{value:6.0%}"


def _percent(value) -> str:
    return "unknown" if value is None else f"{value:.0f}%"


def _cell(value, width: int, digits: int = 4) -> str:
    return f"{'-':>{width}}" if value is None else f"{value:{width}.{digits}f}"


def _device_line(report: dict) -> str:
    device = report.get("device", {})
    if report["target"].startswith("adb"):
        state = device.get("state", {})
        return (f"target: {report['target']}  device: {device.get('manufacturer', '?')} {device.get('model', '?')} "
                f"({device.get('soc', '?')}, {device.get('abi', '?')}, Android {device.get('android', '?')}), "
                f"pinned to cores {device.get('big_cores')} (mask {device.get('big_core_mask')}), "
                f"hottest zone {state.get('hottest_c')} °C before cooling  interleaved in {report.get('rounds', 1)} "
                "rounds")
    return (f"target: {report['target']}  device: {device.get('cpu', '?')} ({device.get('cores', '?')} cores), "
            f"other work {_percent(device.get('cpu_busy_percent'))} of the CPUs  "
            f"interleaved in {report.get('rounds', 1)} rounds")


def format_table(report: dict) -> str:
    threads = report["threads"]
    lines = [_device_line(report),
             f"{'artifact':<28} {'size MB':>8} " + " ".join(f"{f'p50 {t}T':>9}" for t in threads)
             + f" {'mean 1T':>8} {'p90 1T':>8} {'p99 1T':>8} {'FPS 1T':>9} {'spread':>7} {'x eager':>8} {'peak MB':>8}"
             + f" {'+load MB':>8}"]
    if report.get("partial"):
        lines.insert(0, f"PARTIAL: {report.get('error', 'the measurement stopped')}; "
                        "rows below are from finished rounds")
    by_name: dict[str, dict] = {}
    for r in report["rows"]:
        by_name.setdefault(r["name"], {})[r["threads"]] = r
    for name, per in by_name.items():
        one = per.get(threads[0]) or next(iter(per.values()))
        eager = f"{one['speedup_vs_pytorch']:8.2f}" if "speedup_vs_pytorch" in one else f"{'':>8}"
        shown = f"{name} (STALE)" if one.get("stale") else name
        lines.append(f"{shown:<28} {one['size_bytes'] / 1e6:8.2f} "
                     + " ".join(_cell(per[t]["p50_ms"] if t in per else None, 9) for t in threads)
                     + f" {_cell(one.get('mean_ms'), 8)} {_cell(one['p90_ms'], 8)} {_cell(one['p99_ms'], 8)}"
                     + f" {_cell(one['fps'], 9, 0)} {_spread(one.get('round_spread'))} {eager}"
                     + f" {_cell(one.get('peak_rss_mb', one.get('peak_memory_mb')), 8, 0)}"
                     + f" {_cell(one.get('peak_over_baseline_mb'), 8, 1)}")
    for s in report["skipped"]:
        lines.append(f"{s['name']:<28} skipped: {s['reason']}")
    lines.append("latencies in ms per inference (batch 1); spread = max-min of the per-round p50s over p50; "
                 "x eager = against PyTorch eager of the same layout; "
                 "peak MB = process peak RSS, +load MB = above the RSS before loading; - = not reported")
    lines += device_notes(report, by_name, threads)
    lines += [f"warning: {w}" for w in report.get("noise", {}).get("warnings", [])]
    for ref in report.get("references", []):
        speed_heads = " ".join(f"{f'speed {t}T':>9}" for t in threads[:2])
        lines += ["", f"vs {ref} (eager fp32, same input, real parameter count):  {speed_heads} {'smaller':>8}"]
        for name, per in by_name.items():
            one = per[threads[0]]
            lines.append(f"  {name:<44} " + " ".join(f"{per[t][f'speedup_vs_{ref}']:8.2f}x" for t in threads[:2])
                         + f" {one[f'smaller_than_{ref}']:7.1f}x")
    delegated = [(n, per[threads[0]].get("delegation")) for n, per in by_name.items() if per[threads[0]].get("delegation")]
    if delegated:
        lines += ["", "delegation:"] + [f"  {n:<28} {d}" for n, d in delegated]
    if report.get("end_to_end"):
        labels = list(dict.fromkeys(p["scene"] for p in report["end_to_end"]))
        lines += ["", f"end to end (the app's whole path), {report['threads'][0]} thread, p50 ms:",
                  f"  {'artifact':<28} " + " ".join(f"{lab:>16}" for lab in labels)]
        for name in dict.fromkeys(p["name"] for p in report["end_to_end"]):
            cells = {p["scene"]: p for p in report["end_to_end"] if p["name"] == name}
            lines.append(f"  {name:<28} " + " ".join(f"{cells[lab]['p50_ms']:16.1f}" for lab in labels))
    return "\n".join(lines)
