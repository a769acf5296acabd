"""This machine's CPU as a target.

Every (subject, options) pair gets its own worker process (edgecap.targets.host_worker), all
started before timing begins. Timing then goes round by round: in each round every worker in
turn runs its share of the timed runs (A B C A B C ...), so a slow spell of a busy machine is
spread over all subjects instead of landing on one, and ratios between them stay fair. The
round-to-round spread of each subject's p50 is reported beside it.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from edgecap.core.console import progress as progress_bar

from edgecap import EdgecapError
from edgecap.core.runner import Runner
from edgecap.targets.base import BenchOptions, Target


class HostTarget(Target):
    name = "host"
    host_extras = True

    def __init__(self, spec: str = "host", log_path: Path | None = None, options: dict | None = None):
        super().__init__(spec, log_path, options)
        if spec != "host":
            raise EdgecapError(f"target {spec!r}: the host takes no serial or options")

    def device_facts(self) -> dict:
        return {"target": "host", "cpu": cpu_name(), "cores": os.cpu_count(), "os": platform.platform(),
                "load_average_1m": os.getloadavg()[0], "cpu_busy_percent": cpu_busy_percent()}

    def runner(self, path: Path, family=None, threads: int = 1, input_names=None, output_names=None) -> Runner:
        from edgecap.runs import open_artifact

        return open_artifact(path, family, threads, input_names, output_names, trusted=True)

    def measure(self, subjects: list[dict], inputs: Path, options: list[BenchOptions],
                progress: bool = True) -> list[dict]:
        log = open(self.log_path, "a") if self.log_path else subprocess.DEVNULL
        workers = []
        try:
            pairs = list(zip(subjects, options))
            for subject, opt in progress_bar(pairs, desc="bench: load", disable=not progress, leave=False):
                workers.append(_Worker(subject, opt, inputs, log, self.log_path))
            rounds = max(o.rounds for o in options)
            bar = progress_bar(total=rounds * len(workers), desc="bench: timing (interleaved)",
                               disable=not progress, leave=False)
            for r in range(rounds):
                for w in workers:
                    w.time_round(r)
                    bar.update(1)
            bar.close()
            return [w.finish() for w in workers]
        finally:
            for w in workers:
                w.close()
            if log is not subprocess.DEVNULL:
                log.close()


class _Worker:
    def __init__(self, subject: dict, options: BenchOptions, inputs: Path, log, log_path: Path | None):
        self.subject, self.options, self.log_path = subject, options, log_path
        job = {"subject": subject, "threads": options.threads, "inputs": str(inputs)}
        env = {**os.environ, "OMP_NUM_THREADS": str(options.threads), "PYTHONWARNINGS": "ignore",
               "TF_CPP_MIN_LOG_LEVEL": "3"}
        self.proc = subprocess.Popen([sys.executable, "-m", "edgecap.targets.host_worker", json.dumps(job)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, text=True, env=env)
        try:
            self.ready = self._ask(None)
        except BaseException:
            self.close()  # the caller never gets this worker: end its process here
            raise
        self.times: list[float] = []
        self.round_p50: list[float] = []
        self.facts: dict = {}

    def _ask(self, request: dict | None) -> dict:
        if request is not None:
            try:
                self.proc.stdin.write(json.dumps(request) + "\n")
                self.proc.stdin.flush()
            except BrokenPipeError:
                pass
        line = self.proc.stdout.readline()
        answer = json.loads(line) if line.strip() else {"error": f"worker exited (code {self.proc.poll()})"}
        if "error" in answer:
            where = f"; log: {self.log_path}" if self.log_path else ""
            raise EdgecapError(f"bench of {self.subject['name']} failed: {answer['error']}{_tail(self.log_path)}{where}")
        return answer

    def time_round(self, r: int) -> None:
        """One round's share of the timed runs; a subject that has its runs and seconds already
        (a slow reference model with few runs) sits the remaining rounds out."""
        o = self.options
        if len(self.times) >= o.min_runs and sum(self.times) / 1000 >= o.min_seconds:
            return
        answer = self._ask({"warmup": o.warmup if r == 0 else 0, "runs": -(-o.min_runs // o.rounds),
                            "seconds": o.min_seconds / o.rounds})
        self.times += answer["times_ms"]
        self.round_p50.append(float(np.percentile(answer["times_ms"], 50)))
        self.facts.update(answer["facts"])

    def finish(self) -> dict:
        end = self._ask({})
        ms = np.array(self.times)
        p50 = float(np.percentile(ms, 50))
        return {**{k: v for k, v in self.ready.items() if k != "ready"}, **self.facts,
                "p50_ms": p50, "p90_ms": float(np.percentile(ms, 90)), "p99_ms": float(np.percentile(ms, 99)),
                "mean_ms": float(ms.mean()), "runs": len(ms), "fps": 1000 / p50, "round_p50_ms": self.round_p50,
                "round_spread": (max(self.round_p50) - min(self.round_p50)) / p50,
                "peak_rss_mb": end["peak_rss_mb"], "peak_over_baseline_mb": end["peak_rss_mb"] - end["rss_before_load_mb"]}

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        for pipe in (self.proc.stdin, self.proc.stdout):
            if pipe is not None:
                pipe.close()


def _tail(log_path: Path | None, lines: int = 3) -> str:
    if not log_path or not Path(log_path).exists():
        return ""
    tail = [ln for ln in Path(log_path).read_text(errors="replace").splitlines() if ln.strip()][-lines:]
    return (" | " + " | ".join(tail)) if tail else ""


def cpu_busy_percent(seconds: float = 0.5) -> float | None:
    """How busy the CPUs are right now (all processes, over `seconds`), from /proc/stat. Unlike the
    1-minute load average it does not remember the stage that ran just before."""
    def sample():
        with open("/proc/stat") as f:
            values = [int(v) for v in f.readline().split()[1:]]
        return values[3] + values[4], sum(values)  # idle + iowait, total

    try:
        idle0, total0 = sample()
        time.sleep(seconds)
        idle1, total1 = sample()
    except (OSError, ValueError, IndexError):
        return None
    return 100.0 * (1 - (idle1 - idle0) / max(total1 - total0, 1))


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"
