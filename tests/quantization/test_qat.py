"""PT2E QAT fine-tuning on a small lifter trained for a few seconds on synthetic motion."""

from contextlib import contextmanager

import numpy as np
import pytest
import torch
from torch import nn

from edgecap import EdgecapError
from edgecap.data.motion import MotionDataConfig
from edgecap.models.lifting.app import INPUT
from edgecap.models.lifting.family import LiftingFamily, LiftingRun
from edgecap.models.lifting.model import LiftingConfig
from edgecap.quantization.qat import copy_trained_weights, qat_finetune

FAM = LiftingFamily()
RUN = LiftingRun(
    model=LiftingConfig(hidden=64, blocks=1),
    data=MotionDataConfig(train_sequences=24, val_sequences=4, frames=60, real_sequences=4),
)


@pytest.fixture(scope="module")
def setup(small_lifter):
    """(export-form model, train windows, eval windows (B,T,J,3), targets, eager outputs) as tensors."""
    s = small_lifter
    return s.model, s.train, torch.from_numpy(s.windows), torch.from_numpy(s.targets), torch.from_numpy(s.eager)


@contextmanager
def one_thread():
    """Tiny batches: 2 torch threads on a busy 2-core host run ~50x slower than 1."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def batches(train, size):
    def sample_batch(step):
        x, y = FAM.sample_batch(train, np.random.default_rng(step), size)
        return (torch.from_numpy(x[INPUT]),), torch.from_numpy(y)

    return sample_batch


def test_qat_changes_weights_and_keeps_accuracy(setup):
    model, train, windows, targets, eager = setup
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with one_thread():
        tuned = qat_finetune(model, (windows[:1],), batches(train, 256), FAM.loss, steps=15, lr=1e-4,
                             float_modules=FAM.float_modules(RUN.model))
    for k, v in model.state_dict().items():  # the input model is untouched
        assert torch.equal(v, before[k]), k
    new = dict(tuned.named_parameters())
    changed = [k for k, p in model.named_parameters() if not torch.equal(p, new[k])]
    assert changed == [k for k, _ in model.named_parameters()]  # every Linear weight and bias moved
    for k, b in model.named_buffers():  # pose statistics and root weights are not trained
        assert torch.equal(dict(tuned.named_buffers())[k], b), k
    assert not tuned.training
    with torch.no_grad():
        out = tuned(windows)
    diff = torch.linalg.vector_norm(out - eager, dim=-1).mean()
    spread = torch.linalg.vector_norm(eager - eager.mean(0), dim=-1).mean()
    print(f"QAT moved outputs by {diff:.2f} mm (pose spread {spread:.1f} mm); "
          f"val MPJPE {FAM.loss(eager, targets):.2f} -> {FAM.loss(out, targets):.2f} mm")
    # The test model is briefly trained, so fine-tuning may still improve it; it must not degrade it.
    assert 0 < diff < 0.25 * spread, f"QAT moved outputs by {diff:.2f} mm (pose spread {spread:.1f} mm)"
    assert FAM.loss(out, targets) < 1.02 * FAM.loss(eager, targets)


def test_weight_copy_fails_on_name_mismatch(setup):
    model = setup[0]
    with pytest.raises(EdgecapError, match="names differ"):
        copy_trained_weights(model, nn.Sequential(model))  # names gain a "0." prefix
    with pytest.raises(EdgecapError, match="no parameter changed"):
        copy_trained_weights(model, model)


def test_qat_rejects_batch_of_one(setup):
    model, train, windows, _, _ = setup
    with pytest.raises(EdgecapError, match=">= 2"):
        qat_finetune(model, (windows[:1],), batches(train, 1), FAM.loss, 1, 1e-4, FAM.float_modules(RUN.model))


def test_qat_step_decays_lr_and_freezes_observers():
    """The shared QAT update: cosine-decayed lr, and fake-quantizers stop observing at 70%."""
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
        XNNPACKQuantizer,
        get_symmetric_quantization_config,
    )
    from torchao.quantization.pt2e import FakeQuantizeBase
    from torchao.quantization.pt2e.quantize_pt2e import prepare_qat_pt2e

    from edgecap.quantization.qat import FREEZE_OBSERVERS_AT, optimizer_step, qat_learning_rate

    assert qat_learning_rate(0, 10, 1e-3) == pytest.approx(1e-3)
    assert qat_learning_rate(5, 10, 1e-3) == pytest.approx(5e-4)
    assert qat_learning_rate(9, 10, 1e-3) < 3e-5
    x = torch.randn(4, 8)
    gm = torch.export.export(nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 2)), (x,)).module()
    gm = prepare_qat_pt2e(gm, XNNPACKQuantizer().set_global(get_symmetric_quantization_config(is_qat=True)))
    fqs = [m for m in gm.modules() if isinstance(m, FakeQuantizeBase)]
    assert fqs
    opt = torch.optim.Adam(gm.parameters(), lr=1e-3)
    steps = 10
    for step in range(steps):
        optimizer_step(opt, gm(x).square().mean(), step, steps, 1e-3, gm)
        observing = [int(m.observer_enabled[0]) for m in fqs]
        assert observing == [int(step < int(FREEZE_OBSERVERS_AT * steps))] * len(fqs), (step, observing)
        assert opt.param_groups[0]["lr"] == pytest.approx(qat_learning_rate(step, steps, 1e-3))
    with pytest.raises(EdgecapError, match="loss became nan"):
        optimizer_step(opt, torch.tensor(float("nan"), requires_grad=True), 0, steps, 1e-3, gm)


def test_tied_copies_get_the_summed_gradient_and_stay_equal():
    """Copies of one shared weight (made for PT2E) train as that weight: summed gradient, equal values."""
    from edgecap.quantization.qat import optimizer_step

    torch.manual_seed(0)
    a, b, free = nn.Linear(3, 2), nn.Linear(3, 2), nn.Linear(3, 2)
    b.load_state_dict(a.state_dict())
    graph = nn.ModuleList([a, b, free])
    x1, x2 = torch.randn(4, 3), torch.randn(4, 3)

    def loss():
        return a(x1).square().sum() + (b(x2) - 1).abs().sum() + free(x1).sum()

    expected = torch.autograd.grad(loss(), [a.weight, b.weight])
    start = a.weight.detach().clone()
    opt = torch.optim.Adam(graph.parameters(), lr=1e-2)
    optimizer_step(opt, loss(), 0, 5, 1e-2, graph, [[a.weight, b.weight], [a.bias, b.bias]])
    assert torch.allclose(a.weight.grad, expected[0] + expected[1]) and torch.equal(a.weight.grad, b.weight.grad)
    for step in range(1, 5):
        optimizer_step(opt, loss(), step, 5, 1e-2, graph, [[a.weight, b.weight], [a.bias, b.bias]])
    assert torch.equal(a.weight, b.weight) and torch.equal(a.bias, b.bias) and not torch.equal(a.weight, start)
    # Without tying the same two layers drift apart.
    b.load_state_dict(a.state_dict())
    optimizer_step(torch.optim.Adam(graph.parameters(), lr=1e-2), loss(), 0, 5, 1e-2, graph)
    assert not torch.equal(a.weight, b.weight)
