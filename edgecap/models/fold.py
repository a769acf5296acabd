"""Fold eval-mode BatchNorm2d into the Conv2d that feeds it (the export form of a CNN).

PT2E would fold conv-BN itself, but not for a conv called at several sites (export-probe.md,
item 5), and a folded float graph is what every converter handles best. Covered:
- a Conv2d directly followed by a BatchNorm2d inside an nn.Sequential (ConvBNAct, the
  BiFPN's separable conv), the BN replaced by nn.Identity;
- modules that name their pair in `conv_bn_pairs = (("conv_attr", "bn_attr"), ...)`.
BatchNorms left unfolded are reported by `unfolded_batchnorms`.
"""

from __future__ import annotations

from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval


def fold_batchnorm(model: nn.Module) -> nn.Module:
    """In place on an eval-mode model; returns it."""
    if model.training:
        raise ValueError("fold_batchnorm needs an eval-mode model (BN running statistics)")
    for module in list(model.modules()):
        if isinstance(module, nn.Sequential):
            names = list(module._modules)
            for a, b in zip(names, names[1:]):
                conv, bn = module._modules[a], module._modules[b]
                if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d):
                    module._modules[a] = fuse_conv_bn_eval(conv, bn)
                    module._modules[b] = nn.Identity()
        for conv_name, bn_name in getattr(module, "conv_bn_pairs", ()):
            conv, bn = getattr(module, conv_name), getattr(module, bn_name)
            if isinstance(bn, nn.BatchNorm2d):
                setattr(module, conv_name, fuse_conv_bn_eval(conv, bn))
                setattr(module, bn_name, nn.Identity())
    return model


def unfolded_batchnorms(model: nn.Module) -> list[str]:
    return [name for name, m in model.named_modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


def folded_copy(model: nn.Module, what: str) -> nn.Module:
    """An eval-mode copy of `model` with every BatchNorm folded; a BatchNorm that could not be
    folded is an error naming `what` (the model) and the module."""
    import copy

    from edgecap import EdgecapError

    form = fold_batchnorm(copy.deepcopy(model).eval())
    left = unfolded_batchnorms(form)
    if left:
        raise EdgecapError(f"{what} export form: BatchNorm not folded in {left}")
    return form
