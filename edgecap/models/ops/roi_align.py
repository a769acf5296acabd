"""RoIAlign as two batched matmuls: out[k] = Wy[k] . F . Wx[k]^T.

Why hand-written: torchvision is not available and its `roi_align` is a custom op no mobile
exporter knows. Bilinear sampling is separable, so each box's sampling grid becomes two small
interpolation matrices and the pooling becomes `bmm`s. In the export probe this form matched
torchvision to 1e-5, converted on ONNX, LiteRT, ExecuTorch and Core ML, and was the fastest on
all of them; the gather (4x index_select) form ran 10-30x slower and grid_sample decomposed to
GATHER_ND on LiteRT (435 ms). `bmm` rather than `mm` so XNNPACK delegates it.

Semantics are torchvision's `roi_align` with a fixed `sampling_ratio` (the adaptive
ceil(roi_size / output_size) grid would make shapes depend on box sizes):
- aligned=True shifts box coordinates by -0.5 px (pixel centres), aligned=False instead
  forces boxes to at least 1x1 feature cells;
- a sample outside [-1, H] x [-1, W] contributes 0, one within is clamped to [0, H-1] x
  [0, W-1] before bilinear interpolation;
- each output cell averages sampling_ratio^2 samples.
Here weight(y, row) = relu(1 - |clamp(y) - row|) * valid(y) reproduces that interpolation
exactly, and the average over samples factorises into the y and x matrices.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from edgecap import EdgecapError
from edgecap.models.ops.boxes import box_area


class RoIAlign(nn.Module):
    """features (1, C, H, W), boxes (K, 4) image px (x1, y1, x2, y2) -> (K, C, S, S), S = output_size.

    `spatial_scale` maps image pixels to feature cells (1 / stride). Batch 1 only: the boxes
    all belong to the one image.
    """

    def __init__(self, output_size: int, spatial_scale: float, sampling_ratio: int = 2, aligned: bool = True):
        super().__init__()
        if sampling_ratio < 1:
            raise EdgecapError(f"RoIAlign: sampling_ratio must be >= 1 (adaptive is not static), got {sampling_ratio}")
        self.output_size = output_size
        self.spatial_scale = spatial_scale
        self.sampling_ratio = sampling_ratio
        self.aligned = aligned
        # Sample positions as fractions of the box size: (bin + (i + 0.5) / g) / S, bin-major.
        g = sampling_ratio
        frac = (torch.arange(output_size)[:, None] + (torch.arange(g)[None, :] + 0.5) / g) / output_size
        self.register_buffer("sample_frac", frac.reshape(1, -1, 1), persistent=False)  # (1, S*g, 1)

    def axis_weights(self, start: torch.Tensor, size: torch.Tensor, length: int) -> torch.Tensor:
        """Interpolation matrix along one axis: start, size (K, 1, 1) in cells -> (K, S, length)."""
        pos = start + size * self.sample_frac  # (K, S*g, 1)
        valid = (pos >= -1.0).to(pos.dtype) * (pos <= float(length)).to(pos.dtype)
        # `length` is a static Python int, so this arange is a constant in every exported graph.
        cells = torch.arange(length, dtype=pos.dtype, device=pos.device)
        # float(): an int clamp bound trips the ONNX exporter's type-promotion pass.
        w = torch.relu(1.0 - (pos.clamp(0.0, float(length - 1)) - cells).abs()) * valid  # (K, S*g, length)
        return w.reshape(-1, self.output_size, self.sampling_ratio, length).mean(2)

    def forward(self, features: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
        n, c, h, w = features.shape
        if n != 1:
            raise EdgecapError(f"RoIAlign takes one image's features (1, C, H, W), got {tuple(features.shape)}")
        k, s = boxes.shape[0], self.output_size
        offset = 0.5 if self.aligned else 0.0
        xy1 = boxes[:, 0:2] * self.spatial_scale - offset  # (K, 2)
        size = boxes[:, 2:4] * self.spatial_scale - offset - xy1
        if not self.aligned:
            size = size.clamp(min=1.0)
        wx = self.axis_weights(xy1[:, 0:1, None], size[:, 0:1, None], w)  # (K, S, W)
        wy = self.axis_weights(xy1[:, 1:2, None], size[:, 1:2, None], h)  # (K, S, H)
        # Rows for all boxes in one GEMM: (1, K*S, H) @ (1, H, C*W). One 4-D permute, not
        # reshape(C, H, W).permute(1, 0, 2): after a conv (NHWC inside LiteRT) litert-torch 0.10
        # folds that chain's transposes away when C == H (P3 at 512: 64 x 64 x 64) and pools
        # from the wrong axis.
        rows = features.permute(0, 2, 1, 3).reshape(1, h, c * w)
        t = torch.bmm(wy.reshape(1, k * s, h), rows).reshape(k, s * c, w)
        # Then columns, per box: (K, S*C, W) @ (K, W, S).
        out = torch.bmm(t, wx.transpose(1, 2))  # (K, S*C, S)
        return out.reshape(k, s, c, s).permute(0, 2, 1, 3)


class MultiLevelRoIAlign(nn.Module):
    """FPN RoIAlign: features [(1, C, H_l, W_l)] per stride, boxes (K, 4) image px -> (K, C, S, S).

    Box k goes to FPN level floor(canonical_level + log2(sqrt(area_k) / canonical_scale) + 1e-6),
    clamped to the available levels (Lin et al. 2017; torchvision's LevelMapper). To keep shapes
    static every level pools every box and a one-hot float mask picks each box's level
    (cost: len(strides) RoIAligns). `strides` must be consecutive powers of two, finest first.
    """

    def __init__(
        self,
        output_size: int,
        strides: Sequence[int],
        sampling_ratio: int = 2,
        canonical_level: int = 4,
        canonical_scale: float = 224.0,
        aligned: bool = True,
    ):
        super().__init__()
        levels = [math.log2(s) for s in strides]
        if not levels or levels != [float(round(levels[0]) + i) for i in range(len(levels))]:
            raise EdgecapError(f"MultiLevelRoIAlign: strides must be consecutive powers of 2, finest first: {strides}")
        self.strides = list(strides)
        self.canonical_level = canonical_level
        self.canonical_scale = canonical_scale
        self.k_min, self.k_max = levels[0], levels[-1]
        self.poolers = nn.ModuleList(RoIAlign(output_size, 1.0 / s, sampling_ratio, aligned) for s in strides)
        self.register_buffer("levels", torch.tensor(levels).view(1, -1), persistent=False)  # (1, L)

    def level_mask(self, boxes: torch.Tensor) -> torch.Tensor:
        """(K, 4) -> (K, L) one-hot float level assignment."""
        # log2 as log / ln 2: ONNX has no Log2 op.
        log2_size = 0.5 * torch.log(box_area(boxes).clamp(min=1e-6)) / math.log(2.0)
        level = torch.floor(self.canonical_level + log2_size - math.log2(self.canonical_scale) + 1e-6)
        level = level.clamp(self.k_min, self.k_max).unsqueeze(1)  # (K, 1), integer-valued
        return torch.relu(1.0 - (level - self.levels).abs())  # exact one-hot without bool ops

    def forward(self, features: Sequence[torch.Tensor], boxes: torch.Tensor) -> torch.Tensor:
        if len(features) != len(self.poolers):
            raise EdgecapError(f"MultiLevelRoIAlign: {len(features)} feature maps for strides {self.strides}")
        mask = self.level_mask(boxes)
        out = 0.0
        for i, (pool, feat) in enumerate(zip(self.poolers, features)):
            out = out + pool(feat, boxes) * mask[:, i : i + 1, None, None]
        return out
