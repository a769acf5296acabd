"""One subject measured in its own process, driven over a pipe by `edgecap.targets.host`:

    python -m edgecap.targets.host_worker JOB_JSON

It loads the subject, answers {"ready": ...} and then, for each request line on stdin
({"warmup": w, "runs": n, "seconds": s}), runs that many timed steps and answers their times.
An empty request ends it with its peak memory. Answers go to the process's original stdout;
anything a runtime prints goes to stderr (the bench log), never into the protocol.
A process per subject keeps peak memory the subject's own and thread pools from leaking
between runtimes; keeping it alive lets the host interleave subjects (A B A B).
"""

from __future__ import annotations

import json
import os
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


def load(job: dict):
    """(step function, facts) of the job's subject."""
    import torch

    from edgecap.core.runner import TorchRunner

    torch.set_num_threads(job["threads"])
    with np.load(job["inputs"], allow_pickle=False) as data:
        inputs = {k: data[k] for k in data.files}
    subject, facts = job["subject"], {}
    family = None
    if subject.get("family"):
        from edgecap.models import get_family

        family = get_family(subject["family"])
    if subject["kind"] == "reference":  # another model of the family, eager; its size is its real parameters
        model = family.build_reference(subject["reference"])
        facts["params"] = sum(p.numel() for p in model.parameters())
        runner = TorchRunner(family.export_form(model), subject["input_names"], subject["output_names"], job["threads"])
    elif subject["kind"] == "eager":  # the run's model, one graph or a layout's parts composed
        from edgecap.runs import eager_runner, load_run

        family, _ = load_run(subject["run_dir"])
        runner = eager_runner(subject["run_dir"], inputs, subject.get("layout", "whole"), job["threads"])
    else:
        from edgecap.runs import open_artifact

        # Trusted: a runtime that aborts here takes only this worker down, and the host reports it.
        runner = open_artifact(subject["path"], family, job["threads"], subject.get("input_names"),
                               subject.get("output_names"), trusted=True)
    if "scene" in subject:  # end to end: the family's app path on a scene file
        from edgecap.runs import load_run

        _, run = load_run(subject["run_dir"])
        return family.end_to_end(runner, run.model, subject["scene"]), facts
    return (lambda: runner.run(inputs) and None), facts


def serve(job: dict, requests, answer) -> None:
    import torch  # noqa: F401  (the baseline every subject shares; +load MB is the runtime and the model)

    rss_before = _rss_mb()
    step, facts = load(job)
    answer({"ready": True, "rss_before_load_mb": rss_before, **facts})
    for line in requests:
        request = json.loads(line)
        if not request:
            break
        for _ in range(request.get("warmup", 0)):
            step()
        times, result = [], None
        start = time.perf_counter()
        while len(times) < request["runs"] or time.perf_counter() - start < request["seconds"]:
            t0 = time.perf_counter_ns()
            result = step()
            times.append((time.perf_counter_ns() - t0) / 1e6)
            if len(times) >= 100_000:
                break
        answer({"times_ms": times, "facts": result or {}})
    answer({"peak_rss_mb": _peak_rss_mb(), "rss_before_load_mb": rss_before})


def main() -> None:
    protocol = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # whatever a runtime prints lands in the log, not in the protocol

    def answer(obj: dict) -> None:
        protocol.write(json.dumps(obj) + "\n")

    try:
        serve(json.loads(sys.argv[1]), sys.stdin, answer)
    except Exception as e:  # the host reports it with the log's tail
        answer({"error": f"{type(e).__name__}: {e}"})
        raise


if __name__ == "__main__":
    main()
