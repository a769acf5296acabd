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


@pytest.fixture
def two_phases(monkeypatch):
    """The lifter trained as if adversarial: two optimizers, the output layer's then the rest's."""
    from edgecap.models.contract import TrainingPhase
    from edgecap.models.lifting.family import LiftingFamily

    seen = []

    def phases(self, model, run):
        params = list(model.parameters())
        return [TrainingPhase("head", params[-2:], lr_scale=0.5), TrainingPhase("body", params[:-2])]

    def phase_loss(self, module, batch, device, phase, shared):
        seen.append(phase)
        shared.setdefault("order", []).append(phase)
        assert shared["order"] == ["head", "body"][: len(shared["order"])]  # same batch, phases in order
        return self.training_loss(module, batch, device)

    monkeypatch.setattr(LiftingFamily, "training_phases", phases)
    monkeypatch.setattr(LiftingFamily, "phase_loss", phase_loss)
    return seen


def test_several_training_phases_step_in_turn_and_resume_exactly(two_phases, tmp_path):
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    train("lifting", tiny_config(), straight, progress=False)
    assert two_phases[:4] == ["head", "body", "head", "body"] and len(two_phases) == 80
    log = [json.loads(line) for line in (straight / "train_log.jsonl").read_text().splitlines()]
    assert set(log[-1]["phase_losses"]) == {"head", "body"}
    train("lifting", tiny_config("train.steps=20"), resumed, progress=False)
    ckpt = latest_checkpoint(resumed / "checkpoints")
    assert (ckpt / "optimizer.safetensors").exists() and (ckpt / "optimizer-body.safetensors").exists()
    train("lifting", tiny_config(), resumed, progress=False)
    a, b = load_file(straight / "model.safetensors"), load_file(resumed / "model.safetensors")
    for k in a:
        assert (a[k] == b[k]).all(), k


def test_resume_refuses_a_checkpoint_of_other_phases(tmp_path, monkeypatch):
    from edgecap.models.contract import TrainingPhase
    from edgecap.models.lifting.family import LiftingFamily

    train("lifting", tiny_config("train.steps=20"), tmp_path, progress=False)
    monkeypatch.setattr(LiftingFamily, "training_phases",
                        lambda self, model, run: [TrainingPhase(n, list(model.parameters())) for n in ("d", "g")])
    with pytest.raises(EdgecapError, match=r"holds the optimizers \['model'\], this model trains \['d', 'g'\]"):
        train("lifting", tiny_config(), tmp_path, progress=False)


def test_phases_need_distinct_names(tmp_path, monkeypatch):
    from edgecap.models.contract import TrainingPhase
    from edgecap.models.lifting.family import LiftingFamily

    monkeypatch.setattr(LiftingFamily, "training_phases",
                        lambda self, model, run: [TrainingPhase("g", list(model.parameters()))] * 2)
    with pytest.raises(EdgecapError, match=r"distinct names and parameters each, got \['g', 'g'\]"):
        train("lifting", tiny_config(), tmp_path, progress=False)
