"""A short training with the family's quick overrides lowers the loss (the soft MSE + 2D term),
through the shared training loop's pieces: sample_batch, training_loss, AdamW."""

import time

import numpy as np
import torch

from edgecap.core.config import apply_overrides
from edgecap.models.triangulation.family import TriangulationFamily


def test_quick_training_reduces_the_loss():
    family = TriangulationFamily()
    run = apply_overrides(family.facts.run_config(), family.facts.quick_overrides)
    torch.manual_seed(0)
    model = family.build(run.model)
    family.prepare_training(model, family.load_data(run, "train"))
    train = family.load_data(run, "train")
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-4)
    rng = np.random.default_rng(0)
    batches = [family.sample_batch(train, rng, run.train.batch_size) for _ in range(8)]
    fixed = batches[:4]  # measured on the same batches before and after

    def measured():  # train-mode BatchNorm (batch statistics): running averages lag after a few steps
        with torch.no_grad():
            return float(np.mean([family.training_loss(model, b, torch.device("cpu")).item() for b in fixed]))

    model.train()
    before, t0 = measured(), time.time()
    for step in range(48):
        loss = family.training_loss(model, batches[step % len(batches)], torch.device("cpu"))
        assert torch.isfinite(loss)
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = measured()
    print(f"quick training: loss {before:.1f} -> {after:.1f} in {time.time() - t0:.0f} s")
    assert time.time() - t0 < 60
    assert after < 0.9 * before, f"loss {before:.1f} -> {after:.1f}"
