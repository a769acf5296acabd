"""Configuration of the Parsing R-CNN family: one frozen dataclass and the four presets of
Table 4 of "Making DensePose Fast and Light" (Rakhimov et al., WACV 2021).

| preset           | backbone        | neck      | box head   | DensePose head                    | dense RoI                | paper  |
|------------------|-----------------|-----------|------------|-----------------------------------|--------------------------|--------|
| `densepose_rcnn` | ResNet-50       | FPN 256   | 2 FC 1024  | 8 conv 512                        | 14x14, RoIPool, P2-P5    | 59.73M |
| `parsing_rcnn`   | ResNet-50       | FPN 256   | 2 FC 1024  | ASPP 256 + non-local + 4 conv 512 | 32x32, RoIPool, P2       | 54.36M |
| `mobile_a`       | Single-Path NAS | FPN 256   | 2 conv 256 | ASPP + 4 conv 256                 | 32x32, RoIAlign, P2      | 11.35M |
| `mobile_b`       | Single-Path NAS | BiFPN 64  | 2 conv 64  | ASPP + 4 conv 64                  | 32x32, RoIAlign, P2      | 3.35M  |

Channel decisions (checked by `python -m edgecap.models.parsing_rcnn.params`, all within 10%):
- The paper's "512 channels" of the ResNet models are the DensePose head's width only. The FPN
  stays at 256 and the box head is the standard 2-FC head (256*7*7 -> 1024 -> 1024), as in the
  authors' configs (zetyquickly/DensePoseFnL: FPN OUT_CHANNELS default 256, CONV_HEAD_DIM 512).
  A 512-channel FPN alone would add ~8M (FPN) + 1.8M (RPN) + 12.8M (first FC) and overshoot.
- Parsing R-CNN's ASPP branches are 256 wide (ASPP_DIM 256) and project to the 512-wide head;
  the non-local block works at 512 with a 256-wide embedding (reduction 0.5, 2x2 max-pool).
- Mobile (A) uses 256 for FPN, RPN, box convs and the whole DensePose head; Mobile (B) uses 64
  everywhere, with one BiFPN layer (the authors' BiFPN has a single repeat).
- The predictor is one 4x4 stride-2 transposed conv to 25 + 24 + 24 + 15 maps (the authors use
  four; same parameter count up to the U/V background channel they keep and we drop).
- Measured: 59.77M (+0.1%), 54.59M (+0.4%), 11.94M (+5.2%), 3.29M (-1.7%). Mobile (A) is the
  loosest: FPN 256 (2.48M) and a 256-wide ASPP (2.23M) as in the authors' spnasnet_100 FPN config.

Pooling: `dense_pooling` is the table's "Pooling" row and applies to the DensePose head. The box
head always pools with multi-level RoIAlign (7x7, P2-P5): the static RoIPool of edgecap.models.ops
materialises a (K, C, H, S, W) tensor, which is affordable for the 10 detections of the dense
head but not for ~100 proposals on four levels. The ResNet presets pool boxes with the legacy
`aligned=False` RoIAlign, like the authors' ResNet configs ("ROIAlign"), the mobile ones with
`aligned=True` ("ROIAlignV2").
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from edgecap import EdgecapError

BIFPN_CHANNELS = (64, 88, 112, 256)  # EfficientDet D0/D1/D2 widths and the usual FPN width


@dataclass(frozen=True)
class ParsingRCNNConfig:
    """All build-time options; defaults are Mobile Parsing R-CNN (B)."""

    name: str = "mobile_b"
    # Backbone and neck. The neck outputs P2-P5 plus P6 (max-pool of P5) for the RPN.
    backbone: str = "singlepath_nas"  # any edgecap.models.backbones name
    neck: str = "bifpn"  # "fpn" | "bifpn"
    neck_channels: int = 64  # FPN: any; BiFPN: one of BIFPN_CHANNELS
    bifpn_repeats: int = 1
    # RPN on P2-P6: one anchor size per level, every aspect ratio (h / w) at every location.
    anchor_sizes: tuple[float, ...] = (32.0, 64.0, 128.0, 256.0, 512.0)
    anchor_ratios: tuple[float, ...] = (0.5, 1.0, 2.0)
    rpn_pre_nms_topk: int = 1000  # candidates (over all levels) entering the RPN's NMS
    rpn_post_nms_topk: int = 100  # proposals kept for the box head
    rpn_nms_iou: float = 0.7
    share_rpn_head: bool = True  # one head for all levels (training); `unshare()` before PT2E int8
    # Box head on P2-P5 (multi-level RoIAlign); one class (person) plus background.
    box_head: str = "conv"  # "linear" (2 FC) | "conv" (2 conv + global pool)
    box_head_channels: int = 64  # FC width (linear) or conv width (conv)
    box_roi_size: int = 7
    box_roi_aligned: bool = True  # False: legacy Detectron RoIAlign without the half-pixel shift
    box_score_threshold: float = 0.05
    box_nms_iou: float = 0.5
    # DensePose head; outputs are 2 * dense_roi_size square.
    dense_head: str = "aspp"  # "conv" (stacked 3x3 convs) | "aspp" (ASPP [+ non-local] + convs)
    dense_channels: int = 64
    dense_aspp_channels: int = 64  # width of each ASPP branch
    dense_aspp_dilations: tuple[int, ...] = (6, 12, 18)
    dense_non_local: bool = False
    dense_convs: int = 4
    dense_roi_size: int = 32
    dense_pooling: str = "roialign"  # "roialign" (aligned=True) | "roipool"
    dense_levels: tuple[int, ...] = (2,)  # pyramid levels pooled: (2,) = P2, (2, 3, 4, 5) = FPN mapping
    sampling_ratio: int = 2  # RoIAlign samples per bin and axis (fixed: adaptive is not static)
    # Inference.
    max_detections: int = 10  # D, fixed number of output slots
    input_size: int = 320  # square input side (also 512); anchors are a constant for it

    @property
    def image_size(self) -> tuple[int, int]:
        return (self.input_size, self.input_size)

    @property
    def dense_output_size(self) -> int:
        """S of the DensePose outputs: the predictor upsamples the RoI features 2x."""
        return 2 * self.dense_roi_size

    def validate(self) -> None:
        choices = {"neck": ("fpn", "bifpn"), "box_head": ("linear", "conv"), "dense_head": ("conv", "aspp"),
                   "dense_pooling": ("roialign", "roipool")}
        for key, allowed in choices.items():
            if getattr(self, key) not in allowed:
                raise EdgecapError(f"model.{key} must be one of {allowed}, got {getattr(self, key)!r}")
        if self.neck == "bifpn" and self.neck_channels not in BIFPN_CHANNELS:
            raise EdgecapError(f"model.neck_channels for a BiFPN must be one of {BIFPN_CHANNELS}, "
                               f"got {self.neck_channels}")
        if len(self.anchor_sizes) != 5:
            raise EdgecapError(f"model.anchor_sizes needs one size per level P2-P6 (5), got {self.anchor_sizes}")
        levels = list(self.dense_levels)
        if not levels or levels != list(range(levels[0], levels[0] + len(levels))) or levels[0] < 2 or levels[-1] > 5:
            raise EdgecapError(f"model.dense_levels must be consecutive levels within 2..5, got {self.dense_levels}")
        if self.dense_non_local and (self.dense_head != "aspp" or self.dense_roi_size % 2):
            raise EdgecapError("model.dense_non_local needs dense_head='aspp' and an even dense_roi_size "
                               "(2x2 max-pooled keys)")
        if self.dense_head == "aspp" and len(self.dense_aspp_dilations) != 3:
            raise EdgecapError(f"model.dense_aspp_dilations needs 3 rates, got {self.dense_aspp_dilations}")
        if not 1 <= self.max_detections <= self.rpn_post_nms_topk <= self.rpn_pre_nms_topk:
            raise EdgecapError("need 1 <= model.max_detections <= model.rpn_post_nms_topk <= model.rpn_pre_nms_topk, "
                               f"got {self.max_detections}, {self.rpn_post_nms_topk}, {self.rpn_pre_nms_topk}")
        if self.input_size % 64:
            raise EdgecapError(f"model.input_size must be a multiple of 64 (P6 stride), got {self.input_size}")


_RESNET = dict(backbone="resnet50", neck="fpn", neck_channels=256, box_head="linear", box_head_channels=1024,
               box_roi_aligned=False, dense_pooling="roipool", dense_channels=512)
_MOBILE = dict(backbone="singlepath_nas", box_head="conv", dense_head="aspp", dense_pooling="roialign",
               dense_roi_size=32, dense_levels=(2,))

PRESETS: dict[str, ParsingRCNNConfig] = {
    "densepose_rcnn": ParsingRCNNConfig(name="densepose_rcnn", **_RESNET, dense_head="conv", dense_convs=8,
                                        dense_roi_size=14, dense_levels=(2, 3, 4, 5)),
    "parsing_rcnn": ParsingRCNNConfig(name="parsing_rcnn", **_RESNET, dense_head="aspp", dense_aspp_channels=256,
                                      dense_non_local=True, dense_convs=4, dense_roi_size=32, dense_levels=(2,)),
    "mobile_a": ParsingRCNNConfig(name="mobile_a", **_MOBILE, neck="fpn", neck_channels=256, box_head_channels=256,
                                  dense_channels=256, dense_aspp_channels=256),
    "mobile_b": ParsingRCNNConfig(name="mobile_b", **_MOBILE, neck="bifpn", neck_channels=64, box_head_channels=64,
                                  dense_channels=64, dense_aspp_channels=64),
}


def preset(name: str, **overrides) -> ParsingRCNNConfig:
    """A preset with fields replaced, e.g. preset("mobile_b", input_size=512); unknown names fail loudly."""
    if name not in PRESETS:
        raise EdgecapError(f"unknown Parsing R-CNN preset {name!r}; available: {sorted(PRESETS)}")
    fields = {f.name for f in dataclasses.fields(ParsingRCNNConfig)}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise EdgecapError(f"unknown ParsingRCNNConfig field(s) {unknown}; valid: {sorted(fields)}")
    cfg = dataclasses.replace(PRESETS[name], **overrides)
    cfg.validate()
    return cfg
