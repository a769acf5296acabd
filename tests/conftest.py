"""Shared fixtures: a tiny lifting run trained once per session (seconds on 2 cores)."""

from __future__ import annotations

import pytest

from edgecap.config import apply_overrides
from edgecap.models import get_family

TINY = ["model.hidden=64", "model.blocks=1", "train.steps=40", "train.batch_size=64", "train.eval_every=20",
        "train.checkpoint_every=20", "data.train_sequences=24", "data.val_sequences=4", "data.frames=60"]


def tiny_config(*extra: str):
    return apply_overrides(get_family("lifting").run_config(), TINY + list(extra))


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    from edgecap.train.loop import train

    run_dir = tmp_path_factory.mktemp("tiny_run")
    train("lifting", tiny_config(), run_dir, progress=False)
    return run_dir
