"""`edgecap evaluate RUN --on real-motion` end to end on stand-in clips (the real ones need
`make real-motion`), and its refusals."""

import json

from edgecap.cli import main
from tests.data.test_real_motion import fake_cache


def test_evaluate_on_real_motion(tiny_run, tmp_path, capsys):
    cache = fake_cache(tmp_path / "cache")
    assert main(["evaluate", str(tiny_run), "--on", "real-motion", "--cache", str(cache), "--cameras", "2"]) == 0
    out = capsys.readouterr().out
    assert "P-MPJPE" in out and "walk+run+dance" in out and "source:deepmimic" in out
    result = json.loads((tiny_run / "evaluate_real_motion.json").read_text())
    assert result["set"] == "real-motion" and result["cameras_per_clip"] == 2 and result["direct_joints"] == 13
    group = result["groups"]["all"]
    assert group["model"]["p_mpjpe_mm"] > 0 and group["rest_pose"]["p_mpjpe_mm"] > 0
    assert "mpjpe_mm" not in group["flat_2d"]  # scale-free: only its P-MPJPE is reported


def test_evaluate_on_refusals(tiny_run, tmp_path, capsys):
    assert main(["evaluate", str(tiny_run), "--on", "nope"]) == 2
    assert "no evaluation set 'nope'; available: real-motion" in capsys.readouterr().err
    assert main(["evaluate", str(tiny_run), "--on", "real-motion", "--cache", str(tmp_path / "empty")]) == 2
    assert "make real-motion" in capsys.readouterr().err
