"""Latency and FPS of the triangulation family's per-view network: the `per_view` part of each
exported `parts` artifact, on one real validation view (image, K, distortion), run by edgecap's
bench (interleaved rounds, worker processes), at 1 and 2 threads.

    python benchmarks/triangulation_per_view.py RUN [--out docs/results/benchmarks/triangulation_per_view.json]

RUN is a triangulation run exported with the parts layout (the default). The per-view part is
what each camera's device runs; the hub's part is benched by benchmarks/triangulation_op.py.
Prints bench's table and writes its JSON to --out.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

from edgecap import EdgecapError
from edgecap.core.console import quiet_to
from edgecap.core.io import read_json, write_json
from edgecap.runs import load_run
from edgecap.stages.bench import bench_files, format_table

PART = "per_view"
RUNNABLE = (".onnx", ".tflite", ".pte")  # .mlpackage converts here but runs only on macOS


def per_view_files(run: Path) -> dict[str, Path]:
    """{"triangulation_fp32_parts.per_view.onnx": RUN/export/triangulation_fp32_parts.onnx/per_view.onnx, ...}"""
    manifest = read_json(run / "export" / "manifest.json", "manifest")
    files = {}
    for entry in manifest["artifacts"]:
        path = run / "export" / entry["name"]
        if entry.get("layout") == "parts" and path.suffix in RUNNABLE:
            files.update({f"{path.stem}.{f.name}": f for f in sorted(path.glob(f"{PART}.*"))})
    if not files:
        raise EdgecapError(f"{run}: no exported parts artifacts with a {PART} part (export with --layouts parts)")
    return files


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", type=Path)
    p.add_argument("--out", type=Path, default=Path("docs/results/benchmarks/triangulation_per_view.json"))
    p.add_argument("--threads", default="1,2")
    p.add_argument("--runs", type=int, default=200, help="minimum timed runs per measurement")
    a = p.parse_args()
    try:
        family, run = load_run(a.run, "triangulation")
        files = per_view_files(a.run)
        sample = family.load_data(run, "val").batch([0])
        real = int(np.argmax(sample["view_mask"][0]))
        with tempfile.TemporaryDirectory() as tmp:
            links = []
            for name, f in files.items():  # every part file is per_view.*: bench names rows by file name
                links.append(Path(tmp) / name)
                links[-1].symlink_to(f.resolve())
            inputs = Path(tmp) / "per_view_inputs.npz"
            np.savez(inputs, image=sample["images"][0, real : real + 1].astype(np.float32),
                     camera_matrix=sample["K"][0, real : real + 1].astype(np.float32),
                     distortion=sample["dist"][0, real : real + 1].astype(np.float32))
            with quiet_to(a.run / "logs" / "per_view_bench.log"):  # the runtimes' own output
                report = bench_files(links, threads=tuple(int(t) for t in a.threads.split(",")), inputs=inputs,
                                     min_runs=a.runs, progress=sys.stderr.isatty())
    except EdgecapError as e:
        print(f"triangulation_per_view: error: {e}", file=sys.stderr)
        return 2
    write_json(a.out, {**report, "run": str(a.run), "image_size": run.model.image_size,
                       "inputs": "validation sample 0's first real view (image, camera_matrix, distortion)",
                       "files": {name: str(f) for name, f in files.items()}})
    print(format_table(report))
    print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
