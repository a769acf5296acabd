"""ImageNet backbones with one flat feature interface (like timm's `features_only`).

    model = build_backbone("singlepath_nas")
    c2, c3, c4, c5 = model(x)          # x: (N, 3, H, W); Ci: (N, model.out_channels[i], H/s, W/s)
    model.strides == [4, 8, 16, 32]

Each stage ends with the last block at its output stride. The ImageNet classifier head (global
pool + classifier, with the mobile nets' 1x1 conv to 1280) is built only with
`with_classifier=True`, to check parameter counts against the papers; `forward` never runs it.
BatchNorm is plain `nn.BatchNorm2d`, folded into the convs at export.
"""

from __future__ import annotations

from edgecap import EdgecapError
from edgecap.models.backbones.common import Backbone
from edgecap.models.backbones.efficientnet import efficientnet_b0
from edgecap.models.backbones.mnasnet import mnasnet_a1
from edgecap.models.backbones.mobilenet import mobilenet_v2, mobilenet_v3_large, mobilenet_v3_small
from edgecap.models.backbones.resnet import resnet50, resnext50_32x4d
from edgecap.models.backbones.singlepath import singlepath_nas

BACKBONES = {
    "resnet50": resnet50,
    "resnext50_32x4d": resnext50_32x4d,
    "mobilenet_v2": mobilenet_v2,
    "mobilenet_v3_large": mobilenet_v3_large,
    "mobilenet_v3_small": mobilenet_v3_small,
    "mnasnet_a1": mnasnet_a1,
    "efficientnet_b0": efficientnet_b0,
    "singlepath_nas": singlepath_nas,
}


def build_backbone(name: str, **kw) -> Backbone:
    """Build a backbone by name; kw: with_classifier (bool), num_classes (int)."""
    if name not in BACKBONES:
        raise EdgecapError(f"unknown backbone {name!r}; available: {sorted(BACKBONES)}")
    return BACKBONES[name](**kw)
