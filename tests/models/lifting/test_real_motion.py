"""`edgecap evaluate RUN --on real-motion` end to end on stand-in clips (the real ones need
`make real-motion`), and its refusals."""

import json
import shutil

import pytest

from edgecap.cli import main
from edgecap.stages.evaluate import evaluate_extra_sets
from edgecap.stages.report import StaleResults, build_report
from tests.data.test_real_motion import fake_cache


@pytest.fixture
def run(tiny_run, tmp_path):
    shutil.copytree(tiny_run, tmp_path / "run")
    return tmp_path / "run"


def test_evaluate_on_real_motion(run, tmp_path, capsys):
    cache = fake_cache(tmp_path / "cache")
    assert main(["evaluate", str(run), "--on", "real-motion", "--cache", str(cache), "--cameras", "2"]) == 0
    out = capsys.readouterr().out
    assert "P-MPJPE" in out and "walk+run+dance" in out and "source:deepmimic" in out
    result = json.loads((run / "evaluate_real_motion.json").read_text())
    assert result["set"] == "real-motion" and result["cameras_per_shot"] == 2 and result["direct_joints"] == 13
    group = result["groups"]["all"]
    assert group["model"]["p_mpjpe_mm"] > 0 and group["rest_pose"]["p_mpjpe_mm"] > 0
    assert "mpjpe_mm" not in group["flat_2d"]  # scale-free: only its P-MPJPE is reported


def test_pipeline_evaluates_real_motion_when_the_cache_is_here_and_the_report_shows_it(run, tmp_path, monkeypatch):
    lines = []
    monkeypatch.setenv("EDGECAP_REAL_MOTION", str(tmp_path / "absent"))
    assert evaluate_extra_sets(run, lines.append) == []
    assert "real-motion: skipped" in lines[0] and "make real-motion" in lines[0]
    assert not (run / "evaluate_real_motion.json").exists()

    monkeypatch.setenv("EDGECAP_REAL_MOTION", str(fake_cache(tmp_path / "cache")))
    assert evaluate_extra_sets(run, lines.append) == ["real-motion"] and "walk+run+dance" in lines[-1]
    build_report(run)
    md = (run / "report.md").read_text()
    assert "## Evaluation: real-motion" in md and "walk+run+dance" in md and "STALE" not in md

    weights = run / "model.safetensors"  # retrained since: the evaluation no longer describes this model
    weights.write_bytes(weights.read_bytes() + b"\0")
    with pytest.raises(StaleResults):
        build_report(run)
    assert "STALE: measured on other weights" in (run / "report.md").read_text()
    assert json.loads((run / "report.json").read_text())["stale"] == ["evaluation real-motion"]


def test_real_motion_is_skipped_for_a_coco_lifter(tmp_path, monkeypatch):
    from edgecap.models.lifting.family import LiftingFamily
    from tests.conftest import tiny_config

    monkeypatch.setenv("EDGECAP_REAL_MOTION", str(fake_cache(tmp_path / "cache")))
    family = LiftingFamily()
    assert family.evaluation_set_missing("real-motion", tiny_config()) is None
    why = family.evaluation_set_missing("real-motion", tiny_config("model.skeleton=coco"))
    assert "h36m skeleton" in why and "coco" in why


def test_evaluate_on_refusals(tiny_run, tmp_path, capsys):
    assert main(["evaluate", str(tiny_run), "--on", "nope"]) == 2
    assert "no evaluation set 'nope'; available: real-motion" in capsys.readouterr().err
    assert main(["evaluate", str(tiny_run), "--on", "real-motion", "--cache", str(tmp_path / "empty")]) == 2
    assert "make real-motion" in capsys.readouterr().err
