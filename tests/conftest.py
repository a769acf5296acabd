"""Shared fixtures: a tiny lifting run trained once per session (seconds on 2 cores)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
import torch

from edgecap.core.config import apply_overrides
from edgecap.models import get_family


@pytest.fixture(scope="session", autouse=True)
def _private_tmp(tmp_path_factory):
    """The code under test writes its temporary files (e.g. the scratch logs of `edgecap predict`
    without a run folder) and its caches under pytest's own temporary folder, not the machine's,
    so a test run leaves nothing behind that grows from run to run."""
    import os
    import tempfile

    path = str(tmp_path_factory.mktemp("tmp"))
    saved = os.environ.get("TMPDIR"), tempfile.tempdir
    os.environ["TMPDIR"], tempfile.tempdir = path, path
    cache = os.environ.get("EDGECAP_CACHE")  # models edgecap trains to score others (judges) too
    os.environ["EDGECAP_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    yield
    if cache is None:
        os.environ.pop("EDGECAP_CACHE", None)
    else:
        os.environ["EDGECAP_CACHE"] = cache
    if saved[0] is None:
        os.environ.pop("TMPDIR", None)
    else:
        os.environ["TMPDIR"] = saved[0]
    tempfile.tempdir = saved[1]


def tiny_config(*extra: str):
    family = get_family("lifting")
    return apply_overrides(family.facts.run_config(), list(family.facts.quick_overrides) + list(extra))


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    from edgecap.stages.train import train

    run_dir = tmp_path_factory.mktemp("tiny_run")
    train("lifting", tiny_config(), run_dir, progress=False)
    return run_dir


@pytest.fixture(scope="session")
def exported_run(tiny_run, tmp_path_factory):
    """The tiny run, quantized and exported to every format (tests that change it copy it first)."""
    import shutil

    from edgecap.stages.export import export
    from edgecap.stages.quantize import quantize

    run = tmp_path_factory.mktemp("exported") / "run"
    shutil.copytree(tiny_run, run)
    quantize(run, calibration=32, progress=False)
    export(run, progress=False)
    return run


@dataclass
class SmallLifter:
    """A small lifter trained for 100 steps: export-form model, data, eval windows, eager outputs."""

    model: torch.nn.Module
    train: object
    val: object
    windows: np.ndarray  # (B, T, J, 3) validation windows
    targets: np.ndarray  # (B, J, 3) their ground truth
    eager: np.ndarray  # (B, J, 3) the model's outputs on them
    calibration: list  # 64 calibration inputs from the training windows


@pytest.fixture(scope="session")
def small_lifter() -> SmallLifter:
    from tests.small_lifter import FAM as fam
    from tests.small_lifter import RUN as run

    train, val = fam.load_data(run, "train"), fam.load_data(run, "val")
    torch.manual_seed(0)
    model = fam.build(run.model)
    fam.prepare_training(model, train)
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    rng = np.random.default_rng(0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny batches: 2 threads on a busy 2-core host are much slower
    try:
        for _ in range(100):
            loss = fam.training_loss(model, fam.sample_batch(train, rng, 128), torch.device("cpu"))
            opt.zero_grad()
            loss.backward()
            opt.step()
    finally:
        torch.set_num_threads(threads)
    model = fam.export_form(model)
    windows, targets = val.windows(np.arange(0, len(val), 6))
    with torch.no_grad():
        eager = model(torch.from_numpy(windows)).numpy()
    return SmallLifter(model, train, val, windows, targets, eager, fam.calibration_inputs(train, 64, seed=0))


@pytest.fixture(scope="session")
def lifter(small_lifter):
    """(export-form model, calibration inputs, eval windows (B,T,J,3), eager outputs)."""
    return small_lifter.model, small_lifter.calibration, small_lifter.windows, small_lifter.eager
