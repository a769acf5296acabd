"""One latency measurement in its own process: `python -m edgecap.runtime.bench_worker JOB_JSON`.

Prints one JSON line: p50/p90/p99/mean (ms), FPS, runs, RSS before loading and peak RSS (MB).
"""

from __future__ import annotations

import json
import resource
import sys
import time

import numpy as np


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


def _peak_rss_mb() -> float:
    """VmHWM: this address space's peak RSS. (ru_maxrss would also count the parent process,
    because Linux carries it across fork + exec.)"""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(job: dict) -> dict:
    import torch

    torch.set_num_threads(job["threads"])
    with np.load(job["inputs"], allow_pickle=False) as data:
        inputs = {k: data[k] for k in data.files}
    rss_before = _rss_mb()
    extra = {}
    if job["format"] == "pytorch" and "reference" in job:  # another model of the family, eager
        from edgecap.models import get_family
        from edgecap.runtime import TorchRunner

        model = get_family(job["family"]).build_reference(job["reference"])
        runner = TorchRunner(model, job["input_names"], job["output_names"], job["threads"])
        extra["params"] = sum(p.numel() for p in model.parameters())
    elif job["format"] == "pytorch":
        from edgecap.runs import load_trained_model
        from edgecap.runtime import TorchRunner

        family, run, model = load_trained_model(job["run_dir"])
        runner = TorchRunner(family.export_form(model), job["input_names"], job["output_names"], job["threads"])
    else:
        from edgecap.runtime import open_runner

        runner = open_runner(job["artifact"], job["format"], job["threads"], job["input_names"], job["output_names"])
    if "scene" in job:  # end to end: image -> pre-processing -> model -> decode -> IUV paste-back
        from edgecap.runs import load_run

        family, run = load_run(job["run_dir"])
        image = family.read_image(job["scene"])

        def step():
            extra["people_detected"] = len(family.end_to_end(runner, run.model, image)[1])
    else:
        def step():
            runner.run(inputs)

    for _ in range(job["warmup"]):
        step()
    times = []
    start = time.perf_counter()
    while len(times) < job["min_runs"] or time.perf_counter() - start < job["min_seconds"]:
        t0 = time.perf_counter_ns()
        step()
        times.append((time.perf_counter_ns() - t0) / 1e6)
        if len(times) >= 100_000:
            break
    ms = np.array(times)
    peak = _peak_rss_mb()
    return {**extra, "p50_ms": float(np.percentile(ms, 50)), "p90_ms": float(np.percentile(ms, 90)),
            "p99_ms": float(np.percentile(ms, 99)), "mean_ms": float(ms.mean()), "runs": len(ms),
            "fps": float(1000 / np.percentile(ms, 50)), "rss_before_load_mb": rss_before, "peak_rss_mb": peak,
            "peak_over_baseline_mb": peak - rss_before}


if __name__ == "__main__":
    print(json.dumps(main(json.loads(sys.argv[1]))))
