"""The target interface.

A *subject* is what a target measures, as a plain dict:
    {"kind": "artifact", "name", "path", "family" (optional), "input_names", "output_names"}
    {"kind": "eager", "name", "run_dir", "layout" (optional)}  the run's PyTorch model (host extra),
                                                          or a layout's parts eager, composed
    {"kind": "reference", "name", "family", "reference"}  another model of the family (host extra)
plus, for an end-to-end measurement, "scene": a file the family's `end_to_end` step reads.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from pathlib import Path

from edgecap import EdgecapError
from edgecap.core.runner import Runner


class TargetInterrupted(EdgecapError):
    """A measurement stopped part-way (a device unplugged, a runner crashed). `partial` holds, per
    subject, what finished rounds measured (marked "partial"), or None where nothing finished."""

    def __init__(self, message: str, partial: list[dict | None]):
        super().__init__(message)
        self.partial = partial


@dataclass(frozen=True)
class BenchOptions:
    threads: int = 1
    min_runs: int = 200  # timed runs, at least, over all rounds
    min_seconds: float = 1.0  # timed seconds, at least, over all rounds
    warmup: int = 20
    rounds: int = 5  # subjects take turns (A B A B ...) this many times


class Target(abc.ABC):
    name: str = ""
    # PyTorch eager rows, reference models and end-to-end scenes run only where Python and the
    # family's code do: on the host.
    host_extras: bool = False

    def __init__(self, spec: str = "", log_path: Path | None = None, options: dict | None = None):
        self.spec = spec or self.name
        self.log_path = log_path  # where runtimes' own output goes
        if options:
            raise EdgecapError(f"target {self.spec!r} takes no options ({', '.join(sorted(options))})")

    def unsupported(self, subject: dict) -> str | None:
        """Why this target cannot measure `subject` (it is then skipped), or None."""
        return None

    def sustained(self, subject: dict, inputs: Path, seconds: float, threads: int, progress: bool = True) -> dict:
        """A run of `seconds` that samples latency, frequencies and temperatures over time."""
        raise EdgecapError(f"sustained mode needs a phone: target {self.spec!r} has no thermal state to follow "
                           "(use --target adb)")

    def close(self) -> None:
        """Remove what the target left behind (a device's working folder)."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    @abc.abstractmethod
    def device_facts(self) -> dict:
        """What the measurements ran on: CPU model, cores, OS..."""

    @abc.abstractmethod
    def measure(self, subjects: list[dict], inputs: Path, options: list[BenchOptions],
                progress: bool = True) -> list[dict]:
        """Latency of each (subject, options) pair, measured interleaved: p50/p90/p99/mean ms,
        fps, runs, round_p50_ms (per round), and peak memory where known."""

    @abc.abstractmethod
    def runner(self, path: Path, family=None, threads: int = 1, input_names: list[str] | None = None,
               output_names: list[str] | None = None) -> Runner:
        """A runner of an artifact on this target, for validate; the caller verified the file
        against its manifest entry."""
