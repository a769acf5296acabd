"""On a real phone: only when ANDROID_SERIAL names one (and adb reaches it).

    ANDROID_SERIAL=<serial> EDGECAP_RUNNER_DIR=<folder of runners built for it> make test

These check that edgecap reads the phone and runs a model there; the latency they print is the
phone's. They never run in CI, which has no phone.
"""

import os
import shutil

import numpy as np
import pytest

SERIAL = os.environ.get("ANDROID_SERIAL")
pytestmark = [pytest.mark.skipif(not SERIAL, reason="no phone: set ANDROID_SERIAL to run the real-device tests"),
              pytest.mark.skipif(shutil.which("adb") is None and not os.environ.get("ADB"), reason="adb not installed")]


def test_the_phone_describes_itself():
    from edgecap.targets.adb.client import Adb
    from edgecap.targets.adb.device import read_facts

    facts = read_facts(Adb(SERIAL))
    assert facts["serial"] == SERIAL and facts["abi"] != "?"
    assert facts["clusters"] and facts["big_core_mask"]


@pytest.mark.skipif(not os.environ.get("EDGECAP_RUNNER_DIR"), reason="set EDGECAP_RUNNER_DIR to a folder with "
                                                                     "edgecap_runner built for the phone")
def test_a_model_runs_on_the_phone_and_matches_the_host(tmp_path):
    import torch

    from edgecap.runs import open_artifact
    from edgecap.targets import get_target

    path = tmp_path / "lin.onnx"
    with torch.no_grad():
        torch.onnx.export(torch.nn.Linear(8, 4).eval(), (torch.randn(1, 8),), str(path), dynamo=True,
                          input_names=["x"], output_names=["y"], external_data=False)
    x = {"x": np.random.default_rng(0).standard_normal((1, 8)).astype(np.float32)}
    options = {"runner_dir": os.environ["EDGECAP_RUNNER_DIR"], "runner": "edgecap_runner"}
    with get_target(f"adb:{SERIAL}", tmp_path / "log", options) as phone:
        on_phone = phone.runner(path, None, 1, ["x"], ["y"]).run(x)["y"]
    assert np.allclose(on_phone, open_artifact(path).run(x)["y"], atol=1e-5)
