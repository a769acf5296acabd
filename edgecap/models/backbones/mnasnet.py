"""MnasNet-A1 (Tan et al. 2019, Figure 7): ReLU throughout, SE (sigmoid gate) in the 40/112/160 stages."""

from __future__ import annotations

from torch import nn

from edgecap.models.backbones.common import Backbone, ClassifierHead, ConvBNAct, mbconv_blocks

# (kernel, expand ratio, out channels, repeats, first stride, SE ratio); stem 3x3/2 to 32.
# The first row (ratio 1) is the paper's SepConv: depthwise 3x3 -> 1x1, no expansion.
MNASNET_A1 = [(3, 1, 16, 1, 1, 0), (3, 6, 24, 2, 2, 0), (5, 3, 40, 3, 2, 0.25), (3, 6, 80, 4, 2, 0),
              (3, 6, 112, 2, 1, 0.25), (5, 6, 160, 3, 2, 0.25), (3, 6, 320, 1, 1, 0)]


def mnasnet_a1(with_classifier: bool = False, num_classes: int = 1000) -> Backbone:
    """out_channels [24, 40, 112, 320]; the 1x1 conv to 1280 belongs to the classifier head."""
    blocks = mbconv_blocks(32, MNASNET_A1, nn.ReLU)
    head = ClassifierHead(320, num_classes, conv=1280) if with_classifier else None
    return Backbone(ConvBNAct(3, 32, 3, 2), 2, blocks, head)
