"""Quantization-aware fine-tuning with PT2E fake quantization (XNNPACK int8 scheme).

QAT here adapts the *float weights* to int8 noise; it does not produce an artifact. The
fine-tuned weights are copied back into a copy of the eager export-form model, and each
backend's exporter then calibrates activation ranges again with its own quantizer. So one
QAT run serves ExecuTorch, LiteRT and ORT alike.

Recipe from export-probe.md (QAT API notes, items 12 and 16): export in train mode with a
dynamic batch dim, `prepare_qat_pt2e` with the `is_qat=True` XNNPACK config (wrapped in
KeepFloat so normalization stays fp32), then `move_exported_model_to_eval` so BatchNorm and
dropout stay frozen while fake quantization keeps observing; train-mode BN on small
batches degraded the result in the probe. The export form already has BN folded, so the
only trainable parameters are Linear/Conv weights and biases. The learning rate decays
(cosine) over the steps and activation observers freeze at 70% of them.
"""

from __future__ import annotations

import copy
import logging
from typing import Callable

import torch
from torch import nn

from edgecap import EdgecapError
from edgecap.core.schedule import cosine_lr
from edgecap.quantization.pt2e import KeepFloat

log = logging.getLogger(__name__)

Batch = tuple[tuple[torch.Tensor, ...], torch.Tensor]


def qat_finetune(
    model: nn.Module,
    example_args: tuple[torch.Tensor, ...],
    sample_batch: Callable[[int], Batch],
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    steps: int,
    lr: float,
    float_modules: list[str],
) -> nn.Module:
    """Fine-tune `model` (export form) under int8 fake quantization; return a float copy
    carrying the fine-tuned weights. `sample_batch(step)` gives (inputs, targets) with a
    batch dim of at least 2; `example_args` only fixes the non-batch dims and dtypes."""
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
        XNNPACKQuantizer,
        get_symmetric_quantization_config,
    )
    from torchao.quantization.pt2e import move_exported_model_to_eval
    from torchao.quantization.pt2e.quantize_pt2e import prepare_qat_pt2e

    if steps < 1 or lr <= 0:
        raise EdgecapError(f"QAT needs steps >= 1 and lr > 0, got steps={steps}, lr={lr}")
    first_inputs, _ = sample_batch(0)
    batch = first_inputs[0].shape[0]
    if batch < 2:
        # torch.export specializes a size-1 dim to a constant, so it cannot be made dynamic.
        raise EdgecapError(f"QAT: sample_batch must return batches of >= 2 samples, got {batch}")
    for i, (a, e) in enumerate(zip(first_inputs, example_args)):
        if a.shape[1:] != e.shape[1:]:
            expected = ", ".join(["N"] + [str(d) for d in e.shape[1:]])
            raise EdgecapError(f"QAT: batch input {i} has shape {tuple(a.shape)}, model expects ({expected})")

    dim = torch.export.Dim("batch", min=1)
    train_copy = copy.deepcopy(model).train()
    try:
        gm = torch.export.export(train_copy, tuple(first_inputs), dynamic_shapes=tuple({0: dim} for _ in first_inputs))
        quantizer = KeepFloat(
            XNNPACKQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=True, is_qat=True)),
            float_modules,
        )
        gm = prepare_qat_pt2e(gm.module(), quantizer)
    except Exception as e:
        raise EdgecapError(f"QAT: export/prepare_qat_pt2e of {type(model).__name__} failed: {e}") from e
    move_exported_model_to_eval(gm)

    opt = torch.optim.Adam([p for p in gm.parameters() if p.requires_grad], lr=lr)
    for step in range(steps):
        inputs, targets = sample_batch(step)
        optimizer_step(opt, loss_fn(gm(*inputs), targets), step, steps, lr, gm)

    return copy_trained_weights(model, gm)


# Fraction of the QAT steps after which activation ranges stop moving (the usual recipe:
# the last updates fit the weights to the ranges the exporters will calibrate against).
FREEZE_OBSERVERS_AT = 0.7


def qat_learning_rate(step: int, steps: int, lr: float) -> float:
    """Cosine decay from `lr` towards 0 (no warm-up), so fine-tuning ends on small updates, as training did."""
    return cosine_lr(step, steps, lr)


def optimizer_step(opt: torch.optim.Optimizer, loss: torch.Tensor, step: int, steps: int, lr: float,
                   graph: nn.Module, tied: list[list[nn.Parameter]] = ()) -> None:
    """One QAT update at the decayed learning rate; at FREEZE_OBSERVERS_AT of the steps the
    fake-quantizers of `graph` stop observing. A non-finite loss stops with the step and lr.
    `tied`: groups of equal parameters that stand for one shared weight (copies made for
    PT2E); each member gets the group's summed gradient, so they stay equal, as sharing would."""
    if not torch.isfinite(loss):
        raise EdgecapError(f"QAT: loss became {loss.item()} at step {step}; lower the learning rate ({lr})")
    if step == int(FREEZE_OBSERVERS_AT * steps):
        from torchao.quantization.pt2e import disable_observer

        graph.apply(disable_observer)
    for group in opt.param_groups:
        group["lr"] = qat_learning_rate(step, steps, lr)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    with torch.no_grad():
        for group in tied:
            grads = [p.grad for p in group if p.grad is not None]
            if grads:
                total = torch.stack(grads).sum(0)
                for p in group:
                    p.grad = total.clone()
    opt.step()
    if step % max(1, steps // 10) == 0 or step == steps - 1:
        log.info("QAT step %d/%d loss %.4f lr %.2e", step + 1, steps, loss.item(), opt.param_groups[0]["lr"])


@torch.no_grad()
def copy_trained_weights(model: nn.Module, trained: nn.Module) -> nn.Module:
    """A deep copy of `model` (eval mode) with every parameter taken from `trained` by name.

    Fails if any parameter is missing on either side or changes shape, or if nothing changed.
    """
    out = copy.deepcopy(model).eval()
    src = dict(trained.named_parameters())
    dst = dict(out.named_parameters())
    missing, extra = sorted(set(dst) - set(src)), sorted(set(src) - set(dst))
    if missing or extra:
        raise EdgecapError(
            f"QAT weight copy: parameter names differ; not in the QAT graph: {missing}; "
            f"only in the QAT graph: {extra}"
        )
    changed = []
    for name, p in dst.items():
        if src[name].shape != p.shape:
            raise EdgecapError(f"QAT weight copy: {name} has shape {tuple(src[name].shape)}, model has {tuple(p.shape)}")
        if not torch.equal(src[name], p):
            changed.append(name)
        p.copy_(src[name])
    if not changed:
        raise EdgecapError("QAT weight copy: no parameter changed during fine-tuning (no gradient reached them?)")
    log.info("QAT updated %d of %d parameters", len(changed), len(dst))
    return out
