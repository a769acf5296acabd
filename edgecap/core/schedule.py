"""Learning-rate schedule shared by training (`train.loop`) and QAT fine-tuning (`quantize.qat`)."""

from __future__ import annotations

import math


def cosine_lr(step: int, steps: int, lr: float, warmup_steps: int = 0) -> float:
    """Linear warm-up over `warmup_steps`, then cosine decay from `lr` towards 0 at `steps`."""
    if step < warmup_steps:
        return lr * (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, steps - warmup_steps)
    return lr * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
