"""EfficientNet-B0 (Tan & Le 2019, Table 1): SiLU (swish) throughout, SE with sigmoid gate in every block."""

from __future__ import annotations

from torch import nn

from edgecap.models.backbones.common import Backbone, ClassifierHead, ConvBNAct, mbconv_blocks

# (kernel, expand ratio, out channels, repeats, first stride, SE ratio); stem 3x3/2 to 32.
EFFICIENTNET_B0 = [(3, 1, 16, 1, 1, 0.25), (3, 6, 24, 2, 2, 0.25), (5, 6, 40, 2, 2, 0.25), (3, 6, 80, 3, 2, 0.25),
                   (5, 6, 112, 3, 1, 0.25), (5, 6, 192, 4, 2, 0.25), (3, 6, 320, 1, 1, 0.25)]


def efficientnet_b0(with_classifier: bool = False, num_classes: int = 1000) -> Backbone:
    """out_channels [24, 40, 112, 320]; the 1x1 conv to 1280 belongs to the classifier head."""
    blocks = mbconv_blocks(32, EFFICIENTNET_B0, nn.SiLU)
    head = ClassifierHead(320, num_classes, conv=1280, act=nn.SiLU) if with_classifier else None
    return Backbone(ConvBNAct(3, 32, 3, 2, act=nn.SiLU), 2, blocks, head)
