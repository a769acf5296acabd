"""ResNet-50 (He et al. 2016) and ResNeXt-50 32x4d (Xie et al. 2017) in torchvision's layout:
bottlenecks 3-4-6-3, stride on the 3x3 conv (grouped, 32 groups, in ResNeXt)."""

from __future__ import annotations

import torch
from torch import nn

from edgecap.models.backbones.common import Backbone, ClassifierHead, ConvBNAct

# (bottleneck width, blocks, first stride) per stage; output channels are 4 x width.
RESNET50 = [(64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)]


class Bottleneck(nn.Module):
    """relu(1x1 cin->w -> 3x3 w->w (stride) -> 1x1 w->4w  +  shortcut(x)).

    The shortcut is a strided 1x1 conv-BN where the shape changes, else identity.
    (N, cin, H, W) -> (N, 4w, ceil(H / stride), ceil(W / stride)).
    """

    def __init__(self, cin: int, width: int, stride: int = 1, groups: int = 1, cout: int | None = None):
        super().__init__()
        cout = cout or 4 * width
        self.stride, self.out_channels = stride, cout
        self.block = nn.Sequential(ConvBNAct(cin, width, 1), ConvBNAct(width, width, 3, stride, groups=groups),
                                   ConvBNAct(width, cout, 1, act=None))
        self.shortcut = ConvBNAct(cin, cout, 1, stride, act=None) if stride != 1 or cin != cout else nn.Identity()
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.block(x) + self.shortcut(x))


def resnet50(with_classifier: bool = False, num_classes: int = 1000) -> Backbone:
    """out_channels [256, 512, 1024, 2048]."""
    stem = nn.Sequential(ConvBNAct(3, 64, 7, 2), nn.MaxPool2d(3, 2, 1))  # stride 4
    blocks, cin = [], 64
    for w, n, s in RESNET50:
        blocks += [Bottleneck(cin if i == 0 else 4 * w, w, s if i == 0 else 1) for i in range(n)]
        cin = 4 * w
    return Backbone(stem, 4, blocks, ClassifierHead(2048, num_classes, dropout=0.0) if with_classifier else None)


def resnext50_32x4d(with_classifier: bool = False, num_classes: int = 1000) -> Backbone:
    """out_channels [256, 512, 1024, 2048]; bottleneck widths twice ResNet-50's, in 32 groups."""
    stem = nn.Sequential(ConvBNAct(3, 64, 7, 2), nn.MaxPool2d(3, 2, 1))
    blocks, cin = [], 64
    for w, n, s in RESNET50:
        blocks += [Bottleneck(cin if i == 0 else 4 * w, 2 * w, s if i == 0 else 1, groups=32, cout=4 * w)
                   for i in range(n)]
        cin = 4 * w
    return Backbone(stem, 4, blocks, ClassifierHead(2048, num_classes, dropout=0.0) if with_classifier else None)
