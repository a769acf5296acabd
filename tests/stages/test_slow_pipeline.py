"""The full default lifting pipeline (what `make demo` runs), with its quality gates.
Slow (about 8 minutes on 2 cores): excluded from `make test`, run by `make test-slow`."""

import json

import pytest

from edgecap import api


@pytest.mark.slow
def test_default_pipeline_meets_its_gates(tmp_path):
    run = tmp_path / "demo"
    api.pipeline("lifting", api.config("lifting"), run, progress=False, say=lambda *_: None)  # raises on a failed gate
    spec = json.loads((run / "model.json").read_text())
    # clearly better than the mean-pose baseline
    assert spec["val"]["mpjpe_mm"] < 0.5 * spec["baselines"]["mean_pose"]["mpjpe_mm"]
    report = json.loads((run / "validate.json").read_text())
    ran = [r for r in report["artifacts"] if r["status"] != "skipped"]
    assert len(ran) == 6 and all(r["status"] == "pass" for r in ran)
    bench = json.loads((run / "bench.json").read_text())
    assert {r["name"] for r in bench["rows"]} >= {"pytorch_fp32", "lifting_int8.pte", "lifting_int8.tflite"}
