"""`edgecap pipeline MODEL --out DIR`: train -> quantize -> export -> validate -> bench -> report."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from edgecap.io import write_json


def run_pipeline(family_name: str, run_cfg: Any, out: Path, quant_method: str = "ptq",
                 formats: list[str] | None = None, threads: tuple[int, ...] = (1, 2), progress: bool = True,
                 say=print, bench_options: dict | None = None, split_formats: list[str] | None = None) -> dict:
    """bench_options: extra keyword arguments of `edgecap.runtime.bench.bench` (e.g. min_runs).
    split_formats: also export the split layout (detector + per-RoI head) in these formats."""
    from edgecap.export.stage import export
    from edgecap.models import get_family
    from edgecap.quantize.stage import quantize
    from edgecap.report import build_report
    from edgecap.runtime.bench import bench, format_table as bench_table
    from edgecap.runtime.validate import ValidationFailed, format_table as validate_table, validate
    from edgecap.train.loop import train

    out = Path(out)
    timings: dict[str, float] = {}

    def stage(name, fn, *args, **kwargs):
        say(f"== {name}")
        t0 = time.time()
        try:
            return fn(*args, **kwargs)
        finally:
            timings[name] = round(time.time() - t0, 1)
            write_json(out / "pipeline_timings.json", timings)

    result = stage("train", train, family_name, run_cfg, out, progress=progress)
    say(f"val: {_fmt(result.get('val', {}))}; baselines: "
        + "; ".join(f"{k}: {_fmt(v)}" for k, v in result.get("baselines", {}).items()))
    if not getattr(get_family(family_name), "exportable", True):
        # Training already validated the model in PyTorch (model.json); the report closes the run.
        stage("report", build_report, out)
        say(f"{family_name}: no export path yet; stopped after validation in PyTorch. report: {out / 'report.md'}")
        return timings
    stage("quantize", quantize, out, method=quant_method, progress=progress)
    stage("export", export, out, formats=formats, progress=progress)
    if split_formats:
        stage("export_split", export, out, formats=split_formats, layouts=["split"], progress=progress)
    failed = None
    try:
        say(validate_table(stage("validate", validate, out, progress=progress)))
    except ValidationFailed as e:  # still benchmark and report, then fail
        failed = e
    say(bench_table(stage("bench", bench, out, threads=threads, progress=progress, **(bench_options or {}))))
    stage("report", build_report, out)
    say(f"report: {out / 'report.md'} and {out / 'report.json'}")
    if failed:
        raise failed
    return timings


def _fmt(metrics: dict) -> str:
    return ", ".join(f"{k} {v:.1f}" for k, v in metrics.items() if isinstance(v, float))
