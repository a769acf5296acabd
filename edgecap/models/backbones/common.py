"""Blocks shared by every backbone, written once.

Only layers that export to every edgecap backend are used (see shared/notes/export-probe.md):
conv-BN-act with ReLU/ReLU6/hardswish/SiLU, depthwise-separable convs, inverted residuals, and
squeeze-excite as avg-pool -> 1x1 convs -> gate, applied by multiplying the (N, C, 1, 1) gate
(no `expand`). BatchNorm is plain `nn.BatchNorm2d`; an export step folds it into the convs.
"""

from __future__ import annotations

import math

import torch
from torch import nn


def make_divisible(v: float, divisor: int = 8, min_value: int | None = None) -> int:
    """Round `v` to the nearest multiple of `divisor`, never going more than 10% below `v`."""
    min_value = min_value or divisor
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    return new_v + divisor if new_v < 0.9 * v else new_v


class ConvBNAct(nn.Sequential):
    """Conv2d (no bias, 'same' padding) -> BatchNorm2d -> activation (none if `act` is None).

    (N, cin, H, W) -> (N, cout, ceil(H / stride), ceil(W / stride)).
    """

    def __init__(self, cin: int, cout: int, k: int = 3, stride: int = 1, groups: int = 1, act: type | None = nn.ReLU):
        layers = [nn.Conv2d(cin, cout, k, stride, (k - 1) // 2, groups=groups, bias=False), nn.BatchNorm2d(cout)]
        super().__init__(*layers, *([act()] if act else []))
        self.stride, self.out_channels = stride, cout


class SqueezeExcite(nn.Module):
    """x * gate(fc2(act(fc1(avgpool(x))))): (N, C, H, W) -> (N, C, H, W).

    `gate` is nn.Hardsigmoid (MobileNetV3) or nn.Sigmoid (MnasNet, EfficientNet).
    """

    def __init__(self, channels: int, squeeze: int, act: type = nn.ReLU, gate: type = nn.Sigmoid):
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc1, self.act = nn.Conv2d(channels, squeeze, 1), act()
        self.fc2, self.gate = nn.Conv2d(squeeze, channels, 1), gate()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gate(self.fc2(self.act(self.fc1(self.pool(x)))))


class InvertedResidual(nn.Module):
    """MBConv: [1x1 expand cin->mid] -> kxk depthwise (stride) -> [SE] -> 1x1 linear project mid->cout.

    The expand conv is left out when mid == cin (MobileNetV2 t=1, MnasNet/EfficientNet separable
    first block). The identity shortcut is added when stride == 1 and cin == cout.
    `se` is the squeeze width (0: no SE); `se_act`/`gate` are the SE's inner activation and gate.
    (N, cin, H, W) -> (N, cout, ceil(H / stride), ceil(W / stride)).
    """

    def __init__(self, cin: int, cout: int, k: int = 3, stride: int = 1, mid: int | None = None, se: int = 0,
                 act: type = nn.ReLU, se_act: type = nn.ReLU, gate: type = nn.Sigmoid):
        super().__init__()
        mid = mid or cin
        self.stride, self.out_channels, self.residual = stride, cout, stride == 1 and cin == cout
        layers = [ConvBNAct(cin, mid, 1, act=act)] if mid != cin else []
        layers.append(ConvBNAct(mid, mid, k, stride, groups=mid, act=act))
        if se:
            layers.append(SqueezeExcite(mid, se, se_act, gate))
        layers.append(ConvBNAct(mid, cout, 1, act=None))
        self.block = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.block(x) if self.residual else self.block(x)


def mbconv_blocks(cin: int, rows: list[tuple], act: type, se_act: type | None = None,
                  gate: type = nn.Sigmoid) -> list[InvertedResidual]:
    """Expand a ratio block table into InvertedResidual blocks.

    Each row is (kernel, expand ratio, out channels, repeats, first stride, SE ratio); as in the
    MnasNet/EfficientNet reference code, mid = block input * ratio and the SE squeeze width is
    int(block input * SE ratio), 0 meaning no SE.
    """
    blocks = []
    for k, e, c, n, s, se in rows:
        for i in range(n):
            stride = s if i == 0 else 1
            blocks.append(InvertedResidual(cin, c, k, stride, cin * e, int(cin * se), act, se_act or act, gate))
            cin = c
    return blocks


class ClassifierHead(nn.Sequential):
    """ImageNet head, built only to check parameter counts against the papers.

    [1x1 ConvBNAct cin->conv] -> global avg pool -> [Linear -> act] -> dropout -> Linear.
    (N, cin, H, W) -> (N, num_classes).
    """

    def __init__(self, cin: int, num_classes: int = 1000, conv: int = 0, hidden: int = 0,
                 act: type = nn.ReLU, dropout: float = 0.2):
        layers: list[nn.Module] = []
        if conv:
            layers, cin = [ConvBNAct(cin, conv, 1, act=act)], conv
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(1)]
        if hidden:
            layers, cin = layers + [nn.Linear(cin, hidden), act()], hidden
        super().__init__(*layers, nn.Dropout(dropout), nn.Linear(cin, num_classes))


class Backbone(nn.Module):
    """stem -> 4 stages; the flat interface shared by every backbone (like timm `features_only`).

    forward(x: (N, 3, H, W)) -> [C2, C3, C4, C5] with Ci: (N, out_channels[i], ceil(H / s), ceil(W / s))
    for s in strides = [4, 8, 16, 32]. Each stage ends with the last block at its output stride.
    `head` (optional, `with_classifier=True`) maps C5 to ImageNet logits via `forward_head`;
    `forward` never runs it.
    """

    strides = [4, 8, 16, 32]

    def __init__(self, stem: nn.Module, stem_stride: int, blocks: list[nn.Module], head: nn.Module | None = None):
        super().__init__()
        stages: list[list[nn.Module]] = [[] for _ in self.strides]
        stride = stem_stride
        for b in blocks:  # every block exposes .stride and .out_channels
            stride *= b.stride
            stages[max(0, int(math.log2(stride)) - 2)].append(b)
        self.stem, self.stages = stem, nn.ModuleList(nn.Sequential(*s) for s in stages)
        self.out_channels = [s[-1].out_channels for s in stages]
        self.head = head
        self.apply(_init_weights)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x, feats = self.stem(x), []
        for stage in self.stages:
            x = stage(x)
            feats.append(x)
        return feats

    def forward_head(self, c5: torch.Tensor) -> torch.Tensor:
        """(N, out_channels[3], H/32, W/32) -> (N, num_classes) logits; needs with_classifier=True."""
        return self.head(c5)


def _init_weights(m: nn.Module) -> None:
    if isinstance(m, nn.Conv2d):
        nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.BatchNorm2d):
        nn.init.ones_(m.weight)
        nn.init.zeros_(m.bias)
    elif isinstance(m, nn.Linear):
        nn.init.normal_(m.weight, 0.0, 0.01)
        nn.init.zeros_(m.bias)
