"""Heads of the Parsing R-CNN family: RPN, box heads, DensePose bodies and the DensePose predictor.

Every head maps tensors to tensors with static shapes. Plain conv + bias + ReLU (no norm) as in
detectron2's heads; weight initialisation follows detectron2 (c2_msra_fill for convs, small
normals for the predictors).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from edgecap.data.densepose_parts import NUM_COARSE, NUM_PARTS


def _msra_init(module: nn.Module) -> None:
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)


def _conv_relu(cin: int, cout: int, k: int = 3, dilation: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, k, padding=dilation * (k // 2), dilation=dilation), nn.ReLU())


# ---------------------------------------------------------------------------------------------
# RPN
# ---------------------------------------------------------------------------------------------


class _RPNLevelHead(nn.Module):
    def __init__(self, channels: int, num_anchors: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)
        self.objectness = nn.Conv2d(channels, num_anchors, 1)
        self.deltas = nn.Conv2d(channels, 4 * num_anchors, 1)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, std=0.01)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.relu(self.conv(x))
        return self.objectness(x), self.deltas(x)


class RPNHead(nn.Module):
    """3x3 conv + ReLU, then 1x1 objectness (A per location) and 1x1 box deltas (4A), per level.

    forward([P_l (N, C, H_l, W_l)]) -> objectness (N, sum_l H_l W_l A), deltas (N, sum_l H_l W_l A, 4),
    flattened level by level, row-major over locations, then anchor (AnchorGenerator's order).
    `shared=True` applies one head to every level (the usual training form). PT2E quantizers
    mis-handle a module called at several sites (export-probe.md, failures 5-6): call `unshare()`
    first, which gives every level its own copy of the same weights (outputs unchanged).
    """

    def __init__(self, channels: int, num_anchors: int, num_levels: int, shared: bool = True):
        super().__init__()
        self.num_anchors, self.num_levels = num_anchors, num_levels
        head = _RPNLevelHead(channels, num_anchors)
        self.levels = nn.ModuleList([head] if shared else [copy.deepcopy(head) for _ in range(num_levels)])

    @property
    def shared(self) -> bool:
        return len(self.levels) == 1

    def unshare(self) -> RPNHead:
        if self.shared:
            self.levels = nn.ModuleList(copy.deepcopy(self.levels[0]) for _ in range(self.num_levels))
        return self

    def forward(self, feats: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        objectness, deltas = [], []
        for i, x in enumerate(feats):
            obj, dlt = self.levels[0 if self.shared else i](x)
            n, a, h, w = obj.shape
            objectness.append(obj.permute(0, 2, 3, 1).reshape(n, h * w * a))
            deltas.append(dlt.reshape(n, a, 4, h, w).permute(0, 3, 4, 1, 2).reshape(n, h * w * a, 4))
        return torch.cat(objectness, 1), torch.cat(deltas, 1)


# ---------------------------------------------------------------------------------------------
# Box heads: one foreground class (person) + background, class-agnostic box deltas.
# ---------------------------------------------------------------------------------------------


class _BoxPredictor(nn.Module):
    def __init__(self, cin: int, num_classes: int = 2):
        super().__init__()
        self.cls_score = nn.Linear(cin, num_classes)
        self.bbox_pred = nn.Linear(cin, 4)
        nn.init.normal_(self.cls_score.weight, std=0.01)
        nn.init.normal_(self.bbox_pred.weight, std=0.001)
        nn.init.zeros_(self.cls_score.bias)
        nn.init.zeros_(self.bbox_pred.bias)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.cls_score(x), self.bbox_pred(x)


class LinearBoxHead(nn.Module):
    """Faster R-CNN's 2-FC head: (R, C, S, S) -> flatten -> FC -> ReLU -> FC -> ReLU
    -> class_logits (R, 2), box_deltas (R, 4)."""

    def __init__(self, in_channels: int, roi_size: int = 7, hidden: int = 1024, num_classes: int = 2):
        super().__init__()
        self.fc1 = nn.Linear(in_channels * roi_size * roi_size, hidden)
        self.fc2 = nn.Linear(hidden, hidden)
        for fc in (self.fc1, self.fc2):  # c2_xavier_fill
            nn.init.kaiming_uniform_(fc.weight, a=1)
            nn.init.zeros_(fc.bias)
        self.predictor = _BoxPredictor(hidden, num_classes)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.relu(self.fc2(torch.relu(self.fc1(x.flatten(1)))))
        return self.predictor(x)


class ConvBoxHead(nn.Module):
    """Mobile Parsing R-CNN's box head: (R, C, S, S) -> `convs` x (3x3 conv + ReLU) -> global average
    pool -> class_logits (R, 2), box_deltas (R, 4)."""

    def __init__(self, in_channels: int, channels: int = 256, convs: int = 2, num_classes: int = 2):
        super().__init__()
        self.convs = nn.Sequential(*[_conv_relu(in_channels if i == 0 else channels, channels) for i in range(convs)])
        _msra_init(self.convs)
        self.predictor = _BoxPredictor(channels, num_classes)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.predictor(self.convs(x).mean((2, 3)))


# ---------------------------------------------------------------------------------------------
# DensePose bodies: (R, C_in, S, S) -> (R, out_channels, S, S)
# ---------------------------------------------------------------------------------------------


class DensePoseConvHead(nn.Sequential):
    """DensePose R-CNN's body (DensePoseV1ConvXHead): `convs` x (3x3 conv + ReLU) at `channels`."""

    def __init__(self, in_channels: int, channels: int = 512, convs: int = 8):
        super().__init__(*[_conv_relu(in_channels if i == 0 else channels, channels) for i in range(convs)])
        self.out_channels = channels
        _msra_init(self)


class ASPP(nn.Module):
    """Atrous spatial pyramid pooling (DeepLab v3) as in Parsing R-CNN's head.

    Five `channels`-wide branches with ReLU: 1x1 conv, three 3x3 convs at `dilations`, and image
    pooling (global mean -> 1x1 conv); concatenated and projected by a 1x1 conv + ReLU.
    (R, in_channels, S, S) -> (R, out_channels, S, S).
    """

    def __init__(self, in_channels: int, channels: int, out_channels: int, dilations: Sequence[int] = (6, 12, 18)):
        super().__init__()
        self.out_channels = out_channels
        self.branches = nn.ModuleList([_conv_relu(in_channels, channels, 1)]
                                      + [_conv_relu(in_channels, channels, 3, d) for d in dilations])
        self.pool_conv = _conv_relu(in_channels, channels, 1)
        self.project = _conv_relu(channels * (len(dilations) + 2), out_channels, 1)
        _msra_init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = self.pool_conv(x.mean((2, 3), keepdim=True))  # (R, channels, 1, 1)
        # Broadcast the pooled map with a bilinear resize, not `expand`: LiteRT's BROADCAST_TO
        # fails at runtime after its NHWC pass (export-probe.md, failure 1).
        pooled = F.interpolate(pooled, size=x.shape[-2:], mode="bilinear", align_corners=False)
        return self.project(torch.cat([b(x) for b in self.branches] + [pooled], dim=1))


class NonLocal2d(nn.Module):
    """Embedded-Gaussian non-local block (Wang et al. 2018) with 2x2 max-pooled keys/values and BN.

    z = x + BN(W(softmax(theta(x)^T phi(x)) g(x))); BN's scale starts at 0, so the block starts
    as the identity. Attention is two `bmm`s (XNNPACK delegates bmm, not 2-D mm).
    (R, C, H, W) -> (R, C, H, W), H and W even.
    """

    conv_bn_pairs = (("out", "bn"),)  # edgecap.models.fold

    def __init__(self, channels: int, inter_channels: int | None = None):
        super().__init__()
        ci = inter_channels or channels // 2
        self.theta = nn.Conv2d(channels, ci, 1)
        self.phi = nn.Conv2d(channels, ci, 1)
        self.g = nn.Conv2d(channels, ci, 1)
        self.out = nn.Conv2d(ci, channels, 1)
        self.bn = nn.BatchNorm2d(channels)
        _msra_init(self)
        nn.init.zeros_(self.bn.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        r, _, h, w = x.shape
        theta = self.theta(x).flatten(2).transpose(1, 2)  # (R, HW, Ci)
        phi = F.max_pool2d(self.phi(x), 2).flatten(2)  # (R, Ci, HW/4)
        g = F.max_pool2d(self.g(x), 2).flatten(2).transpose(1, 2)  # (R, HW/4, Ci)
        attention = torch.softmax(torch.bmm(theta, phi), dim=-1)  # (R, HW, HW/4)
        y = torch.bmm(attention, g).transpose(1, 2).reshape(r, -1, h, w)  # (R, Ci, H, W)
        return x + self.bn(self.out(y))


class DensePoseASPPHead(nn.Module):
    """Parsing R-CNN's body: ASPP -> [non-local] -> `convs` x (3x3 conv + ReLU), at aspp.out_channels.

    (Named `non_local`, not `nonlocal`, which is a Python keyword.)
    (R, C_in, S, S) -> (R, aspp.out_channels, S, S).
    """

    def __init__(self, aspp: ASPP, non_local: bool = False, convs: int = 4):
        super().__init__()
        c = self.out_channels = aspp.out_channels
        self.aspp = aspp
        self.non_local = NonLocal2d(c) if non_local else nn.Identity()
        self.convs = nn.Sequential(*[_conv_relu(c, c) for _ in range(convs)])
        _msra_init(self.convs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.convs(self.non_local(self.aspp(x)))


class DensePosePredictor(nn.Module):
    """One 4x4 stride-2 transposed conv (2x up-sampling, as DensePose R-CNN's predictor) to all maps.

    (R, C, S, S) -> part_logits (R, 25, 2S, 2S) (background + 24 fine parts), u (R, 24, 2S, 2S),
    v (R, 24, 2S, 2S) (per-part chart coordinates, raw regression of targets in [0, 1]),
    coarse_logits (R, 15, 2S, 2S) (background + 14 coarse parts). For training the four maps
    are channel slices of one deconv output (one kernel call); `separate()` (export form) gives
    each map its own deconv with the same weights, as detectron2 has it.
    """

    def __init__(self, in_channels: int, num_parts: int = NUM_PARTS, num_coarse: int = NUM_COARSE):
        super().__init__()
        self.splits = (num_parts + 1, num_parts, num_parts, num_coarse + 1)
        self.deconv = nn.ConvTranspose2d(in_channels, sum(self.splits), 4, stride=2, padding=1)
        self.deconvs: nn.ModuleList | None = None
        _msra_init(self)

    def separate(self) -> DensePosePredictor:
        """One deconv per output map (outputs unchanged), before PT2E int8: a quantized tensor has
        one scale, and the joint output's would span part logits of +-20 and UVs in [0, 1]
        (ExecuTorch int8 lost 0.8 GPSm points at 320 with the joint deconv, 0.5 with four; 1.3 and 1.1 at 512)."""
        if self.deconvs is None:
            parts, start = [], 0
            for n in self.splits:
                d = nn.ConvTranspose2d(self.deconv.in_channels, n, 4, stride=2, padding=1)
                with torch.no_grad():  # ConvTranspose2d weights are (in, out, kH, kW)
                    d.weight.copy_(self.deconv.weight[:, start : start + n])
                    d.bias.copy_(self.deconv.bias[start : start + n])
                parts.append(d)
                start += n
            self.deconvs = nn.ModuleList(parts).to(self.deconv.weight.device)
            del self.deconv
        return self

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        if self.deconvs is not None:
            part_logits, u, v, coarse_logits = (d(x) for d in self.deconvs)
        else:
            part_logits, u, v, coarse_logits = torch.split(self.deconv(x), self.splits, dim=1)
        return part_logits, u, v, coarse_logits
