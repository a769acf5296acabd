"""Where Parsing R-CNN spends its time: per stage (eager) and per op type (ONNX Runtime profile).

    python benchmarks/parsing_rcnn_profile.py --run runs/parsing_b2 [--artifact parsing_rcnn_fp32.onnx]

1. Stages of the export-form model in PyTorch eager, 1 thread, median of --runs runs each:
   backbone + neck, RPN head, proposals (top-k, decoding, Cluster-NMS), box head + NMS,
   DensePose head on the D = 10 output slots and on 1 box (what a split artifact pays per person).
2. An ONNX artifact under ONNX Runtime's profiler (1 thread): summed kernel time per op type.
Prints both tables and writes RUN/profile.json. The input is a real validation image.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

from edgecap.core.io import write_json
from edgecap.runs import load_trained_model


def _median_ms(fn, runs: int) -> float:
    fn()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def stage_profile(run: Path, runs: int) -> tuple[dict, np.ndarray]:
    family, cfg, model = load_trained_model(run)
    m = family.export_form(model)
    image = family.calibration_inputs(family.load_data(cfg, "val"), 1, seed=2)[0]["image"]
    x = torch.from_numpy(image)
    torch.set_num_threads(1)
    with torch.no_grad():
        f = m.features(x)
        proposals = m.proposals(f)
        boxes, _ = m.detect(f, *proposals)
        stages = {
            "backbone + neck": _median_ms(lambda: m.features(x), runs),
            "RPN head": _median_ms(lambda: m.rpn_outputs(f), runs),
            "proposals (top-k, decode, Cluster-NMS)": _median_ms(lambda: m.proposals(f), runs),
            "box head + decode + NMS": _median_ms(lambda: m.detect(f, *proposals), runs),
            f"DensePose head, {boxes.shape[0]} slots": _median_ms(lambda: m.dense_outputs(f, boxes), runs),
            "DensePose head, 1 box": _median_ms(lambda: m.dense_outputs(f, boxes[:1]), runs),
            "whole forward": _median_ms(lambda: m(x), runs),
        }
    # `proposals` includes the RPN head; report the NMS part alone as well.
    stages["proposals (top-k, decode, Cluster-NMS)"] -= stages["RPN head"]
    return stages, image


def onnx_profile(path: Path, image: np.ndarray, runs: int) -> dict[str, float]:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.enable_profiling = True
    with tempfile.TemporaryDirectory() as tmp:
        opts.profile_file_prefix = str(Path(tmp) / "ort")
        sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        for _ in range(runs + 1):
            sess.run(None, {"image": image})
        events = json.loads(Path(sess.end_profiling()).read_text())
    per_op: dict[str, float] = defaultdict(float)
    for e in events:
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
            per_op[e["args"]["op_name"]] += e["dur"] / 1e3 / (runs + 1)
    return dict(sorted(per_op.items(), key=lambda kv: -kv[1]))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", default="runs/parsing_b2")
    p.add_argument("--artifact", default="parsing_rcnn_fp32.onnx", help="an ONNX artifact in RUN/export")
    p.add_argument("--runs", type=int, default=10)
    a = p.parse_args()
    run = Path(a.run)
    stages, image = stage_profile(run, a.runs)
    print("PyTorch eager (export form), 1 thread, median ms:")
    for name, ms in stages.items():
        print(f"  {name:<44} {ms:9.1f}")
    result = {"run": str(run), "eager_stages_ms": stages}
    artifact = run / "export" / a.artifact
    if artifact.exists():
        ops = onnx_profile(artifact, image, a.runs)
        total = sum(ops.values())
        print(f"\nONNX Runtime profile of {a.artifact}, 1 thread, ms per inference by op type (top 12 of {len(ops)}):")
        for op, ms in list(ops.items())[:12]:
            print(f"  {op:<28} {ms:9.2f}  {100 * ms / total:5.1f}%")
        print(f"  {'total kernel time':<28} {total:9.2f}")
        result["onnx_profile"] = {"artifact": a.artifact, "ms_by_op_type": ops, "total_ms": total}
    write_json(run / "profile.json", result)
    print(f"\nwrote {run / 'profile.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
