"""RoIPool (Fast R-CNN max pooling over quantized bins) from static-shape tensor ops.

This is the pooling of the DensePose R-CNN baseline that Mobile Parsing R-CNN is compared
with; the mobile model itself uses RoIAlign (roi_align.py).

Why hand-written: torchvision is not available and its `roi_pool` is a custom op no mobile
exporter knows; a loop over boxes and bins would make data-dependent slices. Instead every
bin gets a 0/1 row mask and column mask over the feature map, and the max is taken over the
masked map in two separable steps. Masked-out cells are replaced by the map's global minimum
rather than by -BIG, which keeps the max exact and cannot overflow in fp16 (Core ML).

Semantics are torchvision's `roi_pool`: box corners are scaled and rounded half away from
zero, the box covers n = round(x2) - round(x1) + 1 cells (at least 1), bin p spans
[floor(p n / S), ceil((p + 1) n / S)) cells from the box start, clipped to the map, and an
empty bin outputs 0. One deliberate difference: the bin edges here are exact. torchvision
computes them as float32 p * (n / S), which puts an edge one cell off in about 0.15% of
bins (7 bins over 57 cells: the last ends at ceil(57.000004) = 58), and backends
round differently again (LiteRT turns / 7 into * (1/7)). Edges from precomputed p / S plus
a 1e-3 margin (fractional parts are multiples of 1/S) are the same on every backend.
"""

from __future__ import annotations

import torch
from torch import nn

from edgecap import EdgecapError


def _round_half_away(x: torch.Tensor) -> torch.Tensor:
    """C's round(): halves away from zero (torch.round rounds them to even)."""
    a = x.abs()
    f = torch.floor(a)
    return torch.sign(x) * (f + (a - f >= 0.5).to(x.dtype))


class RoIPool(nn.Module):
    """features (1, C, H, W), boxes (K, 4) image px (x1, y1, x2, y2) -> (K, C, S, S), S = output_size.

    Memory: one (K, C, H, S, W) intermediate, fine for the baseline's sizes.
    """

    def __init__(self, output_size: int, spatial_scale: float):
        super().__init__()
        self.output_size = output_size
        self.spatial_scale = spatial_scale
        edges = torch.arange(output_size + 1, dtype=torch.float64) / output_size
        self.register_buffer("bin_start", edges[:-1].float().view(1, -1, 1), persistent=False)  # p / S
        self.register_buffer("bin_end", edges[1:].float().view(1, -1, 1), persistent=False)  # (p + 1) / S

    def axis_masks(self, start: torch.Tensor, end: torch.Tensor, length: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Rounded box start/end cells (K, 1, 1) -> cell masks (K, S, length), bin non-empty (K, S, 1)."""
        cells_in_box = (end - start + 1.0).clamp(min=1.0)
        lo = (torch.floor(cells_in_box * self.bin_start + 1e-3) + start).clamp(0.0, float(length))
        hi = (torch.ceil(cells_in_box * self.bin_end - 1e-3) + start).clamp(0.0, float(length))
        # `length` is a static Python int, so this arange is a constant in every exported graph.
        cells = torch.arange(length, dtype=start.dtype, device=start.device)
        mask = (cells >= lo).to(start.dtype) * (cells < hi).to(start.dtype)
        return mask, (hi > lo).to(start.dtype)

    def forward(self, features: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
        n, c, h, w = features.shape
        if n != 1:
            raise EdgecapError(f"RoIPool takes one image's features (1, C, H, W), got {tuple(features.shape)}")
        k, s = boxes.shape[0], self.output_size
        corners = _round_half_away(boxes * self.spatial_scale)[:, :, None, None]  # (K, 4, 1, 1)
        mx, nonempty_x = self.axis_masks(corners[:, 0], corners[:, 2], w)  # (K, S, W), (K, S, 1)
        my, nonempty_y = self.axis_masks(corners[:, 1], corners[:, 3], h)  # (K, S, H), (K, S, 1)
        floor_value = features.amin(dim=(1, 2, 3), keepdim=True)  # a full amin() does not export to ONNX
        # Max over each bin's columns: (1, C, H, 1, W) x (K, 1, 1, S, W) -> (K, C, H, S).
        mx = mx.reshape(k, 1, 1, s, w)
        t = (features.reshape(1, c, h, 1, w) * mx + floor_value * (1.0 - mx)).amax(-1)
        # Then over its rows: (K, C, 1, H, S) x (K, 1, S, H, 1) -> (K, C, S, S).
        my = my.reshape(k, 1, s, h, 1)
        out = (t.reshape(k, c, 1, h, s) * my + floor_value * (1.0 - my)).amax(3)
        return out * (nonempty_y * nonempty_x.transpose(1, 2)).unsqueeze(1)
