"""`edgecap bench`: latency (p50/p90/p99, FPS), peak memory and size of every artifact.

Each measurement runs in a fresh worker process (`python -m edgecap.runtime.bench_worker`), so
peak memory is the artifact's own and thread-pool settings cannot leak between runtimes. The
input is a real validation window. Targets sit behind `BenchTarget`; the host is the first,
an Android device over adb plugs in beside it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from tqdm import tqdm

from edgecap import EdgecapError
from edgecap.export.stage import load_manifest, verify_artifact
from edgecap.io import atomic_path, write_json
from edgecap.runs import load_run


class BenchTarget:
    name = ""

    def measure(self, job: dict) -> dict:
        raise NotImplementedError


class HostTarget(BenchTarget):
    """This machine's CPU; one worker process per measurement."""

    name = "host"

    def measure(self, job: dict) -> dict:
        env = {**os.environ, "OMP_NUM_THREADS": str(job["threads"]), "PYTHONWARNINGS": "ignore"}
        proc = subprocess.run([sys.executable, "-m", "edgecap.runtime.bench_worker", json.dumps(job)],
                              capture_output=True, text=True, env=env)
        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
        if proc.returncode != 0 or not lines:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
            raise EdgecapError(f"bench worker failed for {job.get('artifact', 'pytorch')}: {' | '.join(tail)}")
        return json.loads(lines[-1])


TARGETS = {"host": HostTarget}


def get_target(name: str) -> BenchTarget:
    if name not in TARGETS:
        raise EdgecapError(f"unknown bench target {name!r}; available: {sorted(TARGETS)} "
                           "(Android over adb is planned as a target beside host)")
    return TARGETS[name]()


def bench(run_dir: Path, threads: tuple[int, ...] = (1, 2), min_runs: int = 200, min_seconds: float = 1.0,
          warmup: int = 20, target: str = "host", progress: bool = True) -> dict:
    run_dir = Path(run_dir)
    manifest = load_manifest(run_dir)
    family, run = load_run(run_dir, expect_family=manifest["family"])
    bench_target = get_target(target)
    inputs = family.calibration_inputs(family.load_split(run, "val"), 1, seed=2)[0]
    input_path = run_dir / "bench_input.npz"
    with atomic_path(input_path) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, **inputs)
    common = {"inputs": str(input_path), "min_runs": min_runs, "min_seconds": min_seconds, "warmup": warmup,
              "input_names": list(manifest["inputs"]), "output_names": manifest["outputs"]}
    jobs = [{"name": "pytorch_fp32", "format": "pytorch", "precision": "fp32", "run_dir": str(run_dir),
             "size_bytes": (run_dir / "model.safetensors").stat().st_size}]
    skipped = []
    for entry in manifest["artifacts"]:
        if not entry.get("runnable_here", True):
            skipped.append({"name": entry["name"], "reason": "; ".join(entry.get("notes", [])) or "not runnable here"})
            continue
        path = verify_artifact(run_dir, entry)
        jobs.append({"name": entry["name"], "format": entry["format"], "precision": entry["precision"],
                     "artifact": str(path), "size_bytes": entry["size_bytes"]})
    # Other models of the family timed eager beside the artifacts (e.g. the DensePose R-CNN
    # baseline); slow, so fewer runs.
    references = family.bench_references(run) if hasattr(family, "bench_references") else []
    heavy = {"min_runs": min(5, min_runs), "min_seconds": min(2.0, min_seconds), "warmup": min(1, warmup)}
    ref_jobs = [{"name": r["name"], "format": "pytorch", "precision": "fp32", "family": family.name, "reference": r,
                 **heavy} for r in references]
    rows = []
    work = [(j, t) for j in jobs + ref_jobs for t in threads]
    for job, t in tqdm(work, desc=f"bench ({bench_target.name})", disable=not progress):
        result = bench_target.measure({**common, **job, "threads": t})
        # A reference's fp32 weight size is counted by the worker that builds it.
        size = job["size_bytes"] if "size_bytes" in job else 4 * result["params"]
        rows.append({"name": job["name"], "format": job["format"], "precision": job["precision"],
                     "threads": t, "size_bytes": size, **result})
    eager = {r["threads"]: r["p50_ms"] for r in rows if r["name"] == "pytorch_fp32"}
    for r in rows:
        r["speedup_vs_pytorch"] = eager[r["threads"]] / r["p50_ms"]
        for ref in references:
            base = next(x for x in rows if x["name"] == ref["name"] and x["threads"] == r["threads"])
            r[f"speedup_vs_{ref['name']}"] = base["p50_ms"] / r["p50_ms"]
            r[f"smaller_than_{ref['name']}"] = base["size_bytes"] / r["size_bytes"]
    for r in rows:  # delegation facts the exporter recorded
        entry = next((a for a in manifest["artifacts"] if a["name"] == r["name"]), None)
        if entry:
            r["delegation"] = _delegation(entry)

    # End to end (pre-processing, model, decoding, paste-back) on images with more and more
    # people, at the first thread count.
    people = []
    if hasattr(family, "bench_scenes"):
        scenes = family.bench_scenes(run, run_dir / "bench_scenes")
        work = [(j, sc) for j in jobs for sc in scenes]
        for job, scene in tqdm(work, desc="bench end to end", disable=not progress):
            result = bench_target.measure({**common, **job, "threads": threads[0], "scene": scene["image"],
                                           "run_dir": str(run_dir), "min_runs": min(20, min_runs),
                                           "min_seconds": min_seconds, "warmup": min(3, warmup)})
            people.append({"name": job["name"], "threads": threads[0], "people_in_image": scene["people"],
                           "people_visible": scene["visible"], **result})
    report = {"family": family.name, "target": bench_target.name, "threads": list(threads),
              "cpu": _cpu_name(), "rows": rows, "skipped": skipped, "references": [r["name"] for r in references],
              "end_to_end": people,
              "note": "latency per inference, batch 1 (per frame for the lifter, per image for Parsing R-CNN)"}
    write_json(run_dir / "bench.json", report)
    return report


def _delegation(entry: dict) -> str:
    """How much of the graph runs on the backend's accelerated kernels, from the manifest
    (a split artifact: its parts, detector first)."""
    details = entry.get("details", {})
    parts = [details[p] for p in ("detector", "dense") if p in details] if entry.get("layout") == "split" else [details]
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


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip() + f" ({os.cpu_count()} cores)"
    except OSError:
        pass
    return f"unknown ({os.cpu_count()} cores)"


def format_table(report: dict) -> str:
    threads = report["threads"]
    lines = [f"target: {report['target']}  cpu: {report['cpu']}",
             f"{'artifact':<26} {'size MB':>8} " + " ".join(f"{f'p50 {t}T':>9}" for t in threads)
             + f" {'p90 1T':>8} {'p99 1T':>8} {'FPS 1T':>9} {'x eager 1T':>10} {'peak MB':>8} {'+load MB':>8}"]
    by_name: dict[str, dict] = {}
    for r in report["rows"]:
        by_name.setdefault(r["name"], {})[r["threads"]] = r
    for name, per in by_name.items():
        one = per[threads[0]]
        lines.append(f"{name:<26} {one['size_bytes'] / 1e6:8.2f} "
                     + " ".join(f"{per[t]['p50_ms']:9.4f}" for t in threads)
                     + f" {one['p90_ms']:8.4f} {one['p99_ms']:8.4f} {one['fps']:9.0f} {one['speedup_vs_pytorch']:10.2f}"
                     + f" {one['peak_rss_mb']:8.0f} {one['peak_over_baseline_mb']:8.1f}")
    for s in report["skipped"]:
        lines.append(f"{s['name']:<26} skipped: {s['reason'][:80]}")
    lines.append("latencies in ms per inference (batch 1); peak MB = process peak RSS, +load MB = above the RSS before loading")
    for ref in report.get("references", []):
        speed_heads = " ".join(f"{f'speed {t}T':>9}" for t in threads[:2])  # the thread counts benched
        lines += ["", f"vs {ref} (eager fp32, same input):  {speed_heads} {'smaller':>8}"]
        for name, per in by_name.items():
            one = per[threads[0]]
            lines.append(f"  {name:<44} " + " ".join(f"{per[t][f'speedup_vs_{ref}']:8.2f}x" for t in threads[:2])
                         + f" {one[f'smaller_than_{ref}']:7.1f}x")
    delegated = [(n, per[threads[0]].get("delegation")) for n, per in by_name.items() if per[threads[0]].get("delegation")]
    if delegated:
        lines += ["", "delegation:"] + [f"  {n:<26} {d}" for n, d in delegated]
    if report.get("end_to_end"):
        counts = sorted({p["people_in_image"] for p in report["end_to_end"]})
        lines += ["", f"end to end (image -> IUV image), {report['threads'][0]} thread, p50 ms (people detected):",
                  f"  {'artifact':<26} " + " ".join(f"{f'{c} people':>16}" for c in counts)]
        for name in dict.fromkeys(p["name"] for p in report["end_to_end"]):
            cells = {p["people_in_image"]: p for p in report["end_to_end"] if p["name"] == name}
            lines.append(f"  {name:<26} " + " ".join(
                f"{cells[c]['p50_ms']:10.1f} ({cells[c].get('people_detected', 0):>2})" for c in counts))
    return "\n".join(lines)
