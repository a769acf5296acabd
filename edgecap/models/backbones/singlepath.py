"""Single-Path NAS (Stamoulis et al. 2019): the searched ImageNet model for the Pixel 1 (74.96% top-1, 79 ms).

Macro-architecture from the authors' code (github.com/dstamoulis/single-path-nas, train-final/
parse_netarch.py and runtime-modeling/model_def.py): stem 3x3/2 to 32, a 3x3 separable block to
16, then five groups of up to four MBConv layers (24, 40, 80, 96, 192 channels; the first layer
of each group strided except the 96 group), a 3x3 MBConv6 192->320, head 1x1 to 1280 + FC;
ReLU throughout, no SE. The per-layer decisions (kernel 3/5, expansion 3/6, or skip) are the
searched model of the paper's figure as also used by timm's `spnasnet_100` (one 24-channel
layer was searched away), which Mobile Parsing R-CNN loads as its backbone.
"""

from __future__ import annotations

from torch import nn

from edgecap.models.backbones.common import Backbone, ClassifierHead, ConvBNAct, mbconv_blocks

# (kernel, expand ratio, out channels, repeats, first stride, SE ratio)
SINGLE_PATH_NAS = [
    (3, 1, 16, 1, 1, 0),
    (3, 3, 24, 3, 2, 0),
    (5, 6, 40, 1, 2, 0), (3, 3, 40, 3, 1, 0),
    (5, 6, 80, 1, 2, 0), (3, 3, 80, 3, 1, 0),
    (5, 6, 96, 1, 1, 0), (5, 3, 96, 3, 1, 0),
    (5, 6, 192, 4, 2, 0),
    (3, 6, 320, 1, 1, 0),
]


def singlepath_nas(with_classifier: bool = False, num_classes: int = 1000) -> Backbone:
    """out_channels [24, 40, 96, 320]; the 1x1 conv to 1280 belongs to the classifier head."""
    blocks = mbconv_blocks(32, SINGLE_PATH_NAS, nn.ReLU)
    head = ClassifierHead(320, num_classes, conv=1280) if with_classifier else None
    return Backbone(ConvBNAct(3, 32, 3, 2), 2, blocks, head)
