"""MobileNetV2 (Sandler et al. 2018) and MobileNetV3-Large/Small (Howard et al. 2019).

Block tables follow the papers (MobileNetV2 Table 2; MobileNetV3 Tables 1-2) in torchvision's
reading: MobileNetV3's SE squeezes to make_divisible(expanded / 4, 8) with a ReLU inside and a
hard-sigmoid gate, and its last 1x1 conv (960 / 576) is the end of C5, before pooling.
"""

from __future__ import annotations

from torch import nn

from edgecap.models.backbones.common import (Backbone, ClassifierHead, ConvBNAct, InvertedResidual, make_divisible,
                                             mbconv_blocks)

# (kernel, expand ratio, out channels, repeats, first stride, SE ratio); stem 3x3/2 to 32.
MOBILENET_V2 = [(3, 1, 16, 1, 1, 0), (3, 6, 24, 2, 2, 0), (3, 6, 32, 3, 2, 0), (3, 6, 64, 4, 2, 0),
                (3, 6, 96, 3, 1, 0), (3, 6, 160, 3, 2, 0), (3, 6, 320, 1, 1, 0)]

# One row per block, as in the paper: (kernel, expanded channels, out channels, SE, activation, stride).
MOBILENET_V3_LARGE = [
    (3, 16, 16, False, "RE", 1), (3, 64, 24, False, "RE", 2), (3, 72, 24, False, "RE", 1),
    (5, 72, 40, True, "RE", 2), (5, 120, 40, True, "RE", 1), (5, 120, 40, True, "RE", 1),
    (3, 240, 80, False, "HS", 2), (3, 200, 80, False, "HS", 1), (3, 184, 80, False, "HS", 1),
    (3, 184, 80, False, "HS", 1), (3, 480, 112, True, "HS", 1), (3, 672, 112, True, "HS", 1),
    (5, 672, 160, True, "HS", 2), (5, 960, 160, True, "HS", 1), (5, 960, 160, True, "HS", 1),
]
MOBILENET_V3_SMALL = [
    (3, 16, 16, True, "RE", 2), (3, 72, 24, False, "RE", 2), (3, 88, 24, False, "RE", 1),
    (5, 96, 40, True, "HS", 2), (5, 240, 40, True, "HS", 1), (5, 240, 40, True, "HS", 1),
    (5, 120, 48, True, "HS", 1), (5, 144, 48, True, "HS", 1), (5, 288, 96, True, "HS", 2),
    (5, 576, 96, True, "HS", 1), (5, 576, 96, True, "HS", 1),
]
ACTS = {"RE": nn.ReLU, "HS": nn.Hardswish}


def mobilenet_v2(with_classifier: bool = False, num_classes: int = 1000) -> Backbone:
    """out_channels [24, 32, 96, 320]; the 1x1 conv to 1280 belongs to the classifier head."""
    blocks = mbconv_blocks(32, MOBILENET_V2, nn.ReLU6)
    head = ClassifierHead(320, num_classes, conv=1280, act=nn.ReLU6) if with_classifier else None
    return Backbone(ConvBNAct(3, 32, 3, 2, act=nn.ReLU6), 2, blocks, head)


def _mobilenet_v3(table: list[tuple], last_conv: int, hidden: int, with_classifier: bool, num_classes: int) -> Backbone:
    cin, blocks = 16, []
    for k, mid, c, se, act, s in table:
        se_width = make_divisible(mid // 4, 8) if se else 0
        blocks.append(InvertedResidual(cin, c, k, s, mid, se_width, ACTS[act], nn.ReLU, nn.Hardsigmoid))
        cin = c
    blocks.append(ConvBNAct(cin, last_conv, 1, act=nn.Hardswish))
    head = ClassifierHead(last_conv, num_classes, hidden=hidden, act=nn.Hardswish) if with_classifier else None
    return Backbone(ConvBNAct(3, 16, 3, 2, act=nn.Hardswish), 2, blocks, head)


def mobilenet_v3_large(with_classifier: bool = False, num_classes: int = 1000) -> Backbone:
    """out_channels [24, 40, 112, 960]."""
    return _mobilenet_v3(MOBILENET_V3_LARGE, 960, 1280, with_classifier, num_classes)


def mobilenet_v3_small(with_classifier: bool = False, num_classes: int = 1000) -> Backbone:
    """out_channels [16, 24, 48, 576]."""
    return _mobilenet_v3(MOBILENET_V3_SMALL, 576, 1024, with_classifier, num_classes)
