"""The host target: subjects timed round by round in their own worker processes."""

import numpy as np
import pytest
import torch

from edgecap import EdgecapError
from edgecap.targets import get_target
from edgecap.targets.base import BenchOptions
from edgecap.targets.host import cpu_busy_percent


@pytest.fixture(scope="module")
def model_and_inputs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("host")
    with torch.no_grad():
        torch.onnx.export(torch.nn.Linear(8, 4).eval(), (torch.randn(1, 8),), str(folder / "lin.onnx"), dynamo=True,
                          input_names=["x"], output_names=["y"], verbose=False)
    np.savez(folder / "in.npz", x=np.ones((1, 8), np.float32))
    return folder / "lin.onnx", folder / "in.npz"


def subject(path, name):
    return {"kind": "artifact", "name": name, "path": str(path)}


def test_subjects_take_turns_and_a_finished_one_sits_rounds_out(model_and_inputs, tmp_path):
    path, inputs = model_and_inputs
    host = get_target("host", tmp_path / "bench.log")
    many = BenchOptions(threads=1, min_runs=30, min_seconds=0.0, warmup=2, rounds=3)
    few = BenchOptions(threads=1, min_runs=1, min_seconds=0.0, warmup=0, rounds=3)
    a, b = host.measure([subject(path, "a"), subject(path, "b")], inputs, [many, few], progress=False)
    assert len(a["round_p50_ms"]) == 3 and a["runs"] >= 30 and a["p50_ms"] > 0
    assert len(b["round_p50_ms"]) == 1 and b["runs"] == 1  # its one run was done in the first round
    assert a["peak_rss_mb"] > 0 and a["round_spread"] >= 0


def test_a_worker_that_fails_names_the_subject_and_the_log(model_and_inputs, tmp_path):
    _, inputs = model_and_inputs
    (tmp_path / "bad.onnx").write_bytes(b"not a model")
    host = get_target("host", tmp_path / "bench.log")
    with pytest.raises(EdgecapError, match="bench of broken failed.*cannot load the model"):
        host.measure([subject(tmp_path / "bad.onnx", "broken")], inputs, [BenchOptions(min_runs=1)], progress=False)


def test_device_facts_and_targets():
    facts = get_target("host").device_facts()
    assert facts["target"] == "host" and facts["cores"] >= 1 and 0.0 <= cpu_busy_percent(0.1) <= 100.0
    with pytest.raises(EdgecapError, match="unknown target 'phone'"):
        get_target("phone")
