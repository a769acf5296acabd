import json

import pytest
from safetensors.torch import load_file

from edgecap import EdgecapError
from edgecap.stages.checkpoint import latest_checkpoint
from edgecap.stages.train import train
from tests.conftest import tiny_config


def test_trains_below_mean_pose_baseline(tiny_run):
    spec = json.loads((tiny_run / "model.json").read_text())
    assert spec["steps"] == 40
    assert spec["val"]["mpjpe_mm"] < spec["baselines"]["mean_pose"]["mpjpe_mm"]
    log = [json.loads(line) for line in (tiny_run / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [20, 40]


def test_resume_continues_exactly(tmp_path):
    """Training 20 steps then resuming to 40 gives the same weights as 40 steps at once."""
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    train("lifting", tiny_config(), straight, progress=False)
    train("lifting", tiny_config("train.steps=20"), resumed, progress=False)
    assert latest_checkpoint(resumed / "checkpoints").name == "step-0000020"
    train("lifting", tiny_config(), resumed, progress=False)
    a, b = load_file(straight / "model.safetensors"), load_file(resumed / "model.safetensors")
    for k in a:
        assert (a[k] == b[k]).all(), k


def test_resume_refuses_another_config(tiny_run):
    with pytest.raises(EdgecapError, match="different config .*model.window"):
        train("lifting", tiny_config("model.window=5"), tiny_run, progress=False)


def test_refuses_a_run_of_another_model(tmp_path):
    (tmp_path / "run.json").write_text(json.dumps({"family": "parsing_rcnn", "config": {}}))
    with pytest.raises(EdgecapError, match="holds a 'parsing_rcnn' run, not 'lifting'"):
        train("lifting", tiny_config(), tmp_path, progress=False)
