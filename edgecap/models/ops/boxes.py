"""Box utilities for the detector: pairwise IoU, the R-CNN box coder and static anchors.

Boxes are (x1, y1, x2, y2) in input-image pixels, float32. Everything here is plain
elementwise arithmetic on static shapes (slices and `cat`, no gathers, no boolean masks), so
it exports unchanged to ONNX, LiteRT, ExecuTorch and Core ML. Keep these modules in fp32 in
int8 flows: XNNPACK and LiteRT reject a quantized IoU/decode division (export-probe.md 7, 14).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from edgecap import EdgecapError


def box_area(boxes: torch.Tensor) -> torch.Tensor:
    """(..., 4) -> (...); degenerate boxes have area 0."""
    wh = (boxes[..., 2:4] - boxes[..., 0:2]).clamp(min=0.0)
    return wh[..., 0] * wh[..., 1]


def box_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Pairwise IoU: a (N, 4), b (M, 4) -> (N, M).

    The union is clamped at 1e-6, so two empty boxes have IoU 0 (torchvision gives NaN,
    which would poison the max reductions of the NMS).
    """
    lt = torch.maximum(a[:, None, 0:2], b[None, :, 0:2])
    rb = torch.minimum(a[:, None, 2:4], b[None, :, 2:4])
    wh = (rb - lt).clamp(min=0.0)
    inter = wh[..., 0] * wh[..., 1]
    union = box_area(a)[:, None] + box_area(b)[None, :] - inter
    return inter / union.clamp(min=1e-6)


class BoxCoder(nn.Module):
    """The standard R-CNN box parameterisation (dx, dy, dw, dh), as in torchvision/detectron2.

    encode(boxes, anchors) -> deltas, decode(deltas, anchors) -> boxes; all (..., 4) with
    broadcasting leading dims. `forward` is `decode`, so the module can be excluded from
    quantization by name. With widths/heights w, h and centres x, y:
        dx = wx (x_box - x_anc) / w_anc     dw = ww log(w_box / w_anc)
    and decoding clamps dw/ww, dh/wh at `bbox_xform_clip` = log(1000/16) so exp() cannot
    overflow on wild regressions.
    """

    def __init__(self, weights: Sequence[float] = (1.0, 1.0, 1.0, 1.0), bbox_xform_clip: float = math.log(1000.0 / 16)):
        super().__init__()
        if len(weights) != 4:
            raise EdgecapError(f"BoxCoder weights must be 4 numbers (wx, wy, ww, wh), got {weights}")
        self.register_buffer("weights", torch.tensor(weights, dtype=torch.float32), persistent=False)
        self.bbox_xform_clip = bbox_xform_clip

    @staticmethod
    def _centre_size(boxes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        size = boxes[..., 2:4] - boxes[..., 0:2]
        return boxes[..., 0:2] + 0.5 * size, size

    def encode(self, boxes: torch.Tensor, anchors: torch.Tensor) -> torch.Tensor:
        """Regression targets of `boxes` relative to `anchors` (both (..., 4), positive sizes)."""
        ctr, size = self._centre_size(boxes)
        actr, asize = self._centre_size(anchors)
        w = self.weights
        return torch.cat([w[0:2] * (ctr - actr) / asize, w[2:4] * torch.log(size / asize)], dim=-1)

    def decode(self, deltas: torch.Tensor, anchors: torch.Tensor) -> torch.Tensor:
        """Boxes (..., 4) from `deltas` (..., 4) applied to `anchors` (..., 4)."""
        actr, asize = self._centre_size(anchors)
        w = self.weights
        dxy = deltas[..., 0:2] / w[0:2]
        dwh = (deltas[..., 2:4] / w[2:4]).clamp(max=self.bbox_xform_clip)
        ctr = dxy * asize + actr
        half = 0.5 * torch.exp(dwh) * asize
        return torch.cat([ctr - half, ctr + half], dim=-1)

    def forward(self, deltas: torch.Tensor, anchors: torch.Tensor) -> torch.Tensor:
        return self.decode(deltas, anchors)


class AnchorGenerator(nn.Module):
    """All anchors of an FPN for one static input size.

    Level l has stride `strides[l]`, feature size ceil(H / s) x ceil(W / s) and one anchor per
    (size in `sizes[l]`, ratio in `aspect_ratios`) at every location. A ratio r = h / w keeps
    the area size^2: w = size / sqrt(r), h = size * sqrt(r). Anchors are centred at
    ((x + offset) s, (y + offset) s); offset 0.5 puts them at the cell centres.

    Order (what the RPN head's outputs must be flattened to): levels in order, then locations
    row-major (y, x), then anchors with index ratio_index * len(sizes[l]) + size_index,
    i.e. a head output (1, A_l, H_l, W_l) permuted to (1, H_l, W_l, A_l) and flattened.

    `anchors` (all A of them, for training targets) is built on first use and is not a buffer.
    `select(indices)` computes only the anchors the RPN keeps, from the flat indices and two
    small tables (per level, per base shape): a constant of all anchors would be 0.4 MB of
    the int8 artifact at 320 x 320 (25,575 x 4 float32), 10% of it, and exporters fold an
    in-graph arange/meshgrid back into that constant.
    """

    def __init__(
        self,
        strides: Sequence[int],
        sizes: Sequence[Sequence[float]],
        aspect_ratios: Sequence[float],
        image_size: tuple[int, int],
        offset: float = 0.5,
    ):
        super().__init__()
        if len(strides) != len(sizes):
            raise EdgecapError(f"AnchorGenerator: {len(strides)} strides but {len(sizes)} size tuples")
        self.strides, self.offset = tuple(strides), offset
        height, width = image_size
        ratios = torch.tensor(aspect_ratios, dtype=torch.float64)
        self.feature_sizes, bases, rows, start = [], [], [], 0
        for stride, level_sizes in zip(strides, sizes):
            fh, fw = math.ceil(height / stride), math.ceil(width / stride)
            self.feature_sizes.append((fh, fw))
            s = torch.tensor(level_sizes, dtype=torch.float64)
            half_w = (s[None, :] / ratios.sqrt()[:, None]).reshape(-1) / 2  # (R*S,)
            half_h = (s[None, :] * ratios.sqrt()[:, None]).reshape(-1) / 2
            bases.append(torch.stack([-half_w, -half_h, half_w, half_h], dim=1))  # (A_l, 4)
            count = fh * fw * len(half_w)
            # start, end, anchors per location, feature width, stride, first base row
            rows.append([start, start + count, len(half_w), fw, stride, sum(len(b) for b in bases[:-1])])
            start += count
        self.num_anchors_per_location = [len(aspect_ratios) * len(s) for s in sizes]
        self.num_anchors = start
        # Every entry is an integer below 2^24 or a base half-size: exact enough in float32.
        self.register_buffer("level_table", torch.tensor(rows, dtype=torch.float32), persistent=False)
        self.register_buffer("bases", torch.cat(bases).float(), persistent=False)
        self._all: torch.Tensor | None = None

    @property
    def anchors(self) -> torch.Tensor:
        """(A, 4) every anchor, built once with meshgrids, on the device of the module."""
        device = self.bases.device
        if self._all is None or self._all.device != device:
            levels, first = [], 0
            for (fh, fw), stride, per in zip(self.feature_sizes, self.strides, self.num_anchors_per_location):
                base, first = self.bases[first : first + per].double().cpu(), first + per
                ys = (torch.arange(fh, dtype=torch.float64) + self.offset) * stride
                xs = (torch.arange(fw, dtype=torch.float64) + self.offset) * stride
                cy, cx = torch.meshgrid(ys, xs, indexing="ij")
                centres = torch.stack([cx, cy, cx, cy], dim=-1).reshape(-1, 1, 4)  # (H_l*W_l, 1, 4)
                levels.append((centres + base[None]).reshape(-1, 4))
            self._all = torch.cat(levels).float().to(device)
        return self._all

    def select(self, indices: torch.Tensor) -> torch.Tensor:
        """Anchors (k, 4) at flat indices (k,) into `anchors`, computed in float32 arithmetic
        (compare, matmul, floor), which every backend runs: no gather from a big constant."""
        i = indices.to(torch.float32).unsqueeze(1)  # exact: indices < 2^24
        table = self.level_table
        # (k, L) one-hot as a product of floats: Core ML's torch frontend has no boolean `&`.
        level = (i >= table[:, 0]).to(torch.float32) * (i < table[:, 1]).to(torch.float32)
        start, per, width, stride, first = (level @ table[:, c : c + 1] for c in (0, 2, 3, 4, 5))
        local = i - start
        location = torch.floor(local / per)  # fractions are >= 1 / per: no rounding across
        shape = local - location * per
        y = torch.floor(location / width)
        x = location - y * width
        cx, cy = (x + self.offset) * stride, (y + self.offset) * stride
        rows = torch.arange(self.bases.shape[0], dtype=torch.float32, device=i.device)
        base = ((first + shape) == rows).to(torch.float32) @ self.bases  # (k, 4)
        return torch.cat([cx, cy, cx, cy], dim=1) + base

    def forward(self) -> torch.Tensor:
        """-> (A, 4) anchors, A = sum_l H_l * W_l * num_anchors_per_location[l]."""
        return self.anchors
