"""The Python API: every CLI stage as a function with the same options.

    from edgecap import api
    cfg = api.config("lifting", ["train.steps=500"])
    api.train("lifting", cfg, "runs/lift")
    api.quantize("runs/lift")                 # method="qat" for QAT
    api.export("runs/lift", formats=["onnx", "tflite"])
    api.validate("runs/lift"); api.bench("runs/lift"); api.report("runs/lift")
    api.pipeline("lifting", cfg, "runs/lift")  # all of the above
    api.bench_files(["model.tflite"])         # any model file, made by edgecap or not
    api.devices()                             # connected Android phones
    api.bench("runs/lift", target="adb", target_options={"runner_dir": "android-runners"})
    api.validate("runs/lift", target="adb", target_options={"runner_dir": "android-runners"})
"""

from __future__ import annotations

from edgecap.stages.bench import bench, bench_files
from edgecap.stages.export import export
from edgecap.stages.pipeline import run_pipeline as pipeline
from edgecap.stages.quantize import quantize
from edgecap.stages.report import build_report as report
from edgecap.stages.train import train
from edgecap.stages.validate import validate


def devices() -> list[dict]:
    """The connected Android devices and their facts (serial, model, SoC, ABI, SDK, clusters, big cores)."""
    import json

    from edgecap.targets.adb import describe_devices

    return json.loads(describe_devices(as_json=True))


def config(model: str, overrides: list[str] | None = None, preset: str | None = None):
    """The default run config of `model`, or of its named `preset` (e.g. parsing_rcnn "mobile_a"),
    with `key=value` overrides applied (unknown keys fail)."""
    import dataclasses

    from edgecap import EdgecapError
    from edgecap.core.config import apply_overrides
    from edgecap.models import get_family

    facts = get_family(model).facts
    cfg = facts.run_config()
    if preset is not None:
        presets = facts.presets
        if preset not in presets:
            raise EdgecapError(f"unknown --config {preset!r} for {model}; available: {sorted(presets) or 'none'}")
        cfg = dataclasses.replace(cfg, model=presets[preset])
    cfg = apply_overrides(cfg, overrides or [])
    cfg.model.validate()
    return cfg


__all__ = ["config", "devices", "train", "quantize", "export", "validate", "bench", "bench_files", "report", "pipeline"]
