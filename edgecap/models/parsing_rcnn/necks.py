"""Feature necks: FPN (Lin et al. 2017) and BiFPN (Tan et al. 2020, EfficientDet).

Both map the backbone's [C2, C3, C4, C5] (strides 4..32) to [P2, P3, P4, P5] with one channel
width, plus P6 (stride 64) for the RPN when `p6=True`. P6 is a 1x1 max-pool with stride 2 of
P5, as in detectron2's LastLevelMaxPool. Up-sampling is nearest-neighbour to the finer map's
static size (not scale_factor=2), so odd feature sizes line up and the graph holds constants.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn


def _upsample_to(x: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, size=ref.shape[-2:], mode="nearest")


def _p6(p5: torch.Tensor) -> torch.Tensor:
    return F.max_pool2d(p5, kernel_size=1, stride=2)


class FPN(nn.Module):
    """Top-down pathway with lateral 1x1 convs and 3x3 output convs (detectron2's FPN, no norm).

    forward([C_i (N, in_channels[i], H/s_i, W/s_i)]) -> [P2..P5 (+P6)] (N, channels, H/s, W/s).
    """

    def __init__(self, in_channels: Sequence[int], channels: int = 256, p6: bool = True):
        super().__init__()
        self.out_channels, self.p6 = channels, p6
        self.lateral = nn.ModuleList(nn.Conv2d(c, channels, 1) for c in in_channels)
        self.output = nn.ModuleList(nn.Conv2d(channels, channels, 3, padding=1) for _ in in_channels)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):  # detectron2's c2_xavier_fill
                nn.init.kaiming_uniform_(m.weight, a=1)
                nn.init.zeros_(m.bias)

    def forward(self, feats: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        x = self.lateral[-1](feats[-1])
        outs = [self.output[-1](x)]
        for i in range(len(feats) - 2, -1, -1):
            lateral = self.lateral[i](feats[i])
            x = lateral + _upsample_to(x, lateral)
            outs.insert(0, self.output[i](x))
        return outs + [_p6(outs[-1])] if self.p6 else outs


class SeparableConvBNReLU(nn.Sequential):
    """3x3 depthwise (stride) -> 1x1 pointwise -> BN -> ReLU: (N, C, H, W) -> (N, C, H/stride, W/stride)."""

    def __init__(self, channels: int, stride: int = 1):
        super().__init__(
            nn.Conv2d(channels, channels, 3, stride, 1, groups=channels, bias=False),
            nn.Conv2d(channels, channels, 1, bias=False),
            nn.BatchNorm2d(channels),
            nn.ReLU(),
        )


class FastNormalizedFusion(nn.Module):
    """EfficientDet's fast normalised fusion: sum_i w_i x_i / (sum_i w_i + eps), w = relu(weight).

    forward([x_i (N, C, H, W)] * n) -> (N, C, H, W).
    """

    def __init__(self, num_inputs: int, eps: float = 1e-4):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(num_inputs))
        self.eps = eps

    def forward(self, xs: Sequence[torch.Tensor]) -> torch.Tensor:
        w = torch.relu(self.weight)
        w = w / (w.sum() + self.eps)
        # w[i:i+1] (shape (1,)), not w[i]: a 0-dim multiplier breaks ExecuTorch's channels-last
        # pass once quantised (export-probe.md, failure 8).
        out = w[0:1] * xs[0]
        for i in range(1, len(xs)):
            out = out + w[i : i + 1] * xs[i]
        return out


class BiFPNLayer(nn.Module):
    """One BiFPN layer over levels P_0..P_{n-1} (finest first), all `channels` wide.

    Top-down: T_i = conv(fuse(P_i, up(T_{i+1}))) for i = n-2..1, with T_{n-1} = P_{n-1}.
    Bottom-up: O_0 = conv(fuse(P_0, up(T_1))), O_i = conv(fuse(P_i, T_i, down(O_{i-1}))) for the
    middle levels and O_{n-1} = conv(fuse(P_{n-1}, down(O_{n-2}))). `down` is a stride-2 separable
    conv, as in the authors' BiFPN (zetyquickly/DensePoseFnL); EfficientDet max-pools instead.
    """

    def __init__(self, channels: int, num_levels: int = 4):
        super().__init__()
        n = num_levels
        self.td_fuse = nn.ModuleList(FastNormalizedFusion(2) for _ in range(n - 2))  # index i-1 for level i
        self.td_conv = nn.ModuleList(SeparableConvBNReLU(channels) for _ in range(n - 2))
        self.out_fuse = nn.ModuleList(FastNormalizedFusion(2 if i in (0, n - 1) else 3) for i in range(n))
        self.out_conv = nn.ModuleList(SeparableConvBNReLU(channels) for _ in range(n))
        self.down = nn.ModuleList(SeparableConvBNReLU(channels, stride=2) for _ in range(n - 1))

    def forward(self, feats: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        n = len(feats)
        td = {n - 1: feats[n - 1]}
        for i in range(n - 2, 0, -1):
            td[i] = self.td_conv[i - 1](self.td_fuse[i - 1]([feats[i], _upsample_to(td[i + 1], feats[i])]))
        outs = [self.out_conv[0](self.out_fuse[0]([feats[0], _upsample_to(td[1], feats[0])]))]
        for i in range(1, n):
            down = self.down[i - 1](outs[-1])
            inputs = [feats[i], down] if i == n - 1 else [feats[i], td[i], down]
            outs.append(self.out_conv[i](self.out_fuse[i](inputs)))
        return outs


class BiFPN(nn.Module):
    """Lateral 1x1 convs to `channels`, then `repeats` BiFPN layers (+ P6 by max-pool).

    forward([C_i (N, in_channels[i], H/s_i, W/s_i)]) -> [P2..P5 (+P6)] (N, channels, H/s, W/s).
    """

    def __init__(self, in_channels: Sequence[int], channels: int = 64, repeats: int = 1, p6: bool = True):
        super().__init__()
        self.out_channels, self.p6 = channels, p6
        self.lateral = nn.ModuleList(nn.Conv2d(c, channels, 1) for c in in_channels)
        self.layers = nn.ModuleList(BiFPNLayer(channels, len(in_channels)) for _ in range(repeats))
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def forward(self, feats: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        outs = [lat(f) for lat, f in zip(self.lateral, feats)]
        for layer in self.layers:
            outs = layer(outs)
        return outs + [_p6(outs[-1])] if self.p6 else outs
