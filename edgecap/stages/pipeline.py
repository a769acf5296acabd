"""`edgecap pipeline MODEL --out DIR`: train -> (evaluate on the family's extra sets whose data
is here) -> quantize -> export -> validate -> bench -> report."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from edgecap import EdgecapError
from edgecap.core.console import busy_note
from edgecap.core.console import say as console_say
from edgecap.core.io import write_json


def run_pipeline(family_name: str, run_cfg: Any, out: Path, quant_method: str = "ptq",
                 formats: list[str] | None = None, layouts: list[str] | None = None,
                 threads: tuple[int, ...] = (1, 2), progress: bool = True, say=None,
                 bench_options: dict | None = None) -> dict:
    """bench_options: extra keyword arguments of `edgecap.stages.bench.bench` (e.g. min_runs).
    layouts: the family's deployable layouts to export (default: its default_layouts). say: where progress
    lines go (default: the terminal, edgecap.core.console.say)."""
    from edgecap.models import get_family
    from edgecap.stages.bench import bench
    from edgecap.stages.bench import format_table as bench_table
    from edgecap.stages.evaluate import evaluate_extra_sets
    from edgecap.stages.export import check_options, export
    from edgecap.stages.quantize import METHODS, quantize
    from edgecap.stages.report import build_report
    from edgecap.stages.train import train
    from edgecap.stages.validate import ValidationFailed, validate
    from edgecap.stages.validate import format_table as validate_table

    # Every option of every stage is checked before the first one starts.
    if quant_method not in METHODS:
        raise EdgecapError(f"unknown quantization method {quant_method!r}; choose one of {METHODS}")
    formats, precisions, layouts = check_options(get_family(family_name), formats, None, layouts)
    say = say or console_say
    out = Path(out)
    timings: dict[str, float] = {}
    if busy_note():
        say(busy_note())

    def stage(name, fn, *args, **kwargs):
        say(f"== {name}")
        t0 = time.time()
        try:
            return fn(*args, **kwargs)
        finally:
            timings[name] = round(time.time() - t0, 1)
            write_json(out / "pipeline_timings.json", timings)

    result = stage("train", train, family_name, run_cfg, out, progress=progress)
    if not result:  # a non-zero DDP rank under torchrun: rank 0 goes on alone
        return timings
    say(f"val: {_fmt(result.get('val', {}))}; baselines: "
        + "; ".join(f"{k}: {_fmt(v)}" for k, v in result.get("baselines", {}).items()))
    if get_family(family_name).evaluation_sets():
        stage("evaluate", evaluate_extra_sets, out, say)
    stage("quantize", quantize, out, method=quant_method, progress=progress)
    stage("export", export, out, formats=formats, precisions=precisions, layouts=layouts, progress=progress)
    failed = None
    try:
        say(validate_table(stage("validate", validate, out, progress=progress)))
    except ValidationFailed as e:  # still benchmark and report, then fail
        failed = e
    say(bench_table(stage("bench", bench, out, threads=threads, progress=progress, **(bench_options or {}))))
    stage("report", build_report, out)
    say(f"report: {out / 'report.html'} (open it in a browser), report.md and report.json")
    if failed:
        raise failed
    return timings


def _fmt(metrics: dict) -> str:
    # one decimal for figures like mm or dB, three significant digits for fractions like 0.123
    return ", ".join(f"{k} {v:.1f}" if abs(v) >= 10 else f"{k} {v:.3g}" for k, v in metrics.items()
                     if isinstance(v, float))
