"""Lifting latency per frame: each format and precision at 1 thread, against PyTorch eager.

    python benchmarks/lifting_latency.py [--run runs/demo] [--threads 1]

Runs the demo pipeline first if RUN has no exported artifacts. Prints the table and writes
RUN/bench.json (the full measurements) and RUN/latency_table.json (this table).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from edgecap.core.io import write_json
from edgecap.stages.bench import bench

PUBLISHED_MS = 1.5  # the published per-frame figure for this kind of lifter, for context


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", default="runs/demo")
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args()
    run = Path(a.run)
    if not (run / "export" / "manifest.json").exists():
        from edgecap import api

        api.pipeline("lifting", api.config("lifting"), run)
    report = bench(run, threads=(a.threads,))
    rows = sorted(report["rows"], key=lambda r: r["p50_ms"])
    table = [{"artifact": r["name"], "format": r["format"], "precision": r["precision"],
              "p50_ms_per_frame": r["p50_ms"], "x_vs_pytorch_eager": r["speedup_vs_pytorch"],
              "x_vs_published_1.5ms": PUBLISHED_MS / r["p50_ms"]} for r in rows]
    cpu = report["device"]["cpu"]
    print(f"{cpu}, {a.threads} thread(s), batch 1, interleaved in {report['rounds']} rounds")
    print(f"{'artifact':<26} {'format':<11} {'prec':<5} {'p50 ms/frame':>13} {'x eager':>8} {'x 1.5 ms':>9}")
    for t in table:
        print(f"{t['artifact']:<26} {t['format']:<11} {t['precision']:<5} {t['p50_ms_per_frame']:13.4f} "
              f"{t['x_vs_pytorch_eager']:8.2f} {t['x_vs_published_1.5ms']:9.1f}")
    for s in report["skipped"]:
        print(f"{s['name']:<26} not run here: {s['reason'][:70]}")
    write_json(run / "latency_table.json", {"cpu": cpu, "threads": a.threads, "rows": table})
    return 0


if __name__ == "__main__":
    sys.exit(main())
