"""Learnable algebraic triangulation (Iskakov et al., ICCV 2019): a per-view 2D network
(mobile backbone -> heatmaps -> soft-argmax, plus a per-joint confidence head) and the
confidence-weighted DLT (`dlt.WeightedDLT`), in one graph.

Inputs of `TriangulationNet` (the "whole" layout):
  views        float32 [B, V, 3, H, W]  RGB 0..255 (not normalised: normalisation is in the graph),
                                        undistorted images (the DLT uses P = K [R | t] only)
  projections  float32 [B, V, 3, 4]     P = K [R | t] of each view in pixels of that image, world mm;
                                        a padded view (no camera) has P = 0 and gets weight 0
Outputs:
  joints_3d    float32 [B, J, 3]  world mm (0 for an invalid joint)
  valid        float32 [B, J]     1: at least two views with weight and a solvable system
  points_2d    float32 [B, V, J, 2]  the per-view soft-argmax, image pixels (pixel centres at integers)
  confidences  float32 [B, V, J]  the per-view confidence head's sigmoid (before the view mask)

Parts (the "parts" layout): `per_view` (one image [1, 3, H, W] -> points_2d [1, J, 2],
confidences [1, J]) and `triangulate` (points_2d [1, V, J, 2], confidences [1, V, J],
projections [1, V, 3, 4] -> joints_3d, valid), glued by app.PartsRunner.

Soft-argmax (export-safe: reshape, mul, softmax, matmul with a constant grid): heatmap logits
h [N, J, h, w] at stride s; p = softmax(beta * h) over the h*w cells, beta = exp(log_beta)
learned; (x, y) = sum_cells p * (s * col + (s - 1) / 2, s * row + (s - 1) / 2): cell k covers
image pixels s*k .. s*k + s - 1, whose centre is s*k + (s - 1) / 2.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from edgecap import EdgecapError
from edgecap.models.backbones import BACKBONES, build_backbone
from edgecap.models.backbones.common import ConvBNAct
from edgecap.models.triangulation.dlt import WeightedDLT

NUM_JOINTS = 17  # h36m order (edgecap.data.skeletons.H36M), pelvis first
IMAGE_MEAN = (0.485, 0.456, 0.406)  # ImageNet RGB, applied in the graph to x / 255
IMAGE_STD = (0.229, 0.224, 0.225)
HEATMAP_STRIDE = 4


@dataclass(frozen=True)
class TriangulationConfig:
    backbone: str = "mobilenet_v3_small"  # any of edgecap.models.backbones.BACKBONES
    image_size: int = 96  # square views, pixels (= data.image_size)
    views: int = 4  # V, views per sample (= data.views); fewer cameras: padded views with P = 0
    head_channels: int = 48  # width of the heatmap head (top-down over C2..C5)
    confidence_hidden: int = 32  # hidden width of the confidence MLP
    beta: float = 1.0  # initial soft-argmax inverse temperature (learned as log_beta)
    dlt_iterations: int = 4  # WeightedDLT's Rayleigh-quotient refinement steps
    aux_2d_weight: float = 0.3  # training only: weight of the 2D soft-argmax L1 (px) beside the 3D loss

    def validate(self) -> None:
        if self.backbone not in BACKBONES:
            raise EdgecapError(f"model.backbone must be one of {sorted(BACKBONES)}, got {self.backbone!r}")
        if not 32 <= self.image_size <= 1024 or self.image_size % 32:
            raise EdgecapError(f"model.image_size must be a multiple of 32 in [32, 1024], got {self.image_size}")
        if not 2 <= self.views <= 64:
            raise EdgecapError(f"model.views must be in [2, 64], got {self.views}")
        if not 1 <= self.head_channels <= 4096 or not 1 <= self.confidence_hidden <= 4096:
            raise EdgecapError(f"model.head_channels and model.confidence_hidden must be in [1, 4096], got "
                               f"{self.head_channels} and {self.confidence_hidden}")
        if not 1e-3 <= self.beta <= 1e4 or not 0 <= self.dlt_iterations <= 16:
            raise EdgecapError(f"model.beta must be in [1e-3, 1e4] and model.dlt_iterations in [0, 16], got "
                               f"{self.beta} and {self.dlt_iterations}")
        if not 0.0 <= self.aux_2d_weight <= 1e4:
            raise EdgecapError(f"model.aux_2d_weight must be in [0, 1e4], got {self.aux_2d_weight}")

    @property
    def heatmap_size(self) -> int:
        return self.image_size // HEATMAP_STRIDE


class SoftArgmax(nn.Module):
    """Heatmap logits [N, J, h, w] -> image pixels [N, J, 2] (scheme in the module docstring)."""

    def __init__(self, size: int, stride: int, beta: float):
        super().__init__()
        self.size = size
        centres = torch.arange(size, dtype=torch.float32) * stride + (stride - 1) / 2.0
        grid = torch.stack([centres.repeat(size), centres.repeat_interleave(size)], dim=1)  # (h*w, 2): x, y
        self.register_buffer("grid", grid)
        self.log_beta = nn.Parameter(torch.full((1,), math.log(beta)))  # (1,), not 0-dim (export-probe item 8)

    def forward(self, heatmaps: torch.Tensor) -> torch.Tensor:
        j = heatmaps.shape[1]
        logits = heatmaps.reshape(-1, j, self.size * self.size) * self.log_beta.exp()
        return torch.softmax(logits, dim=-1) @ self.grid


class HeatmapHead(nn.Module):
    """Top-down over C2..C5 (1x1 laterals, nearest 2x upsampling, add), a 3x3 conv, 1x1 to J maps
    at stride 4: [C2, C3, C4, C5] -> [N, J, H/4, W/4]."""

    def __init__(self, in_channels: list[int], width: int, joints: int):
        super().__init__()
        self.laterals = nn.ModuleList(nn.Conv2d(c, width, 1) for c in in_channels)
        self.smooth = ConvBNAct(width, width, 3)
        self.out = nn.Conv2d(width, joints, 1)

    def forward(self, feats: list[torch.Tensor]) -> torch.Tensor:
        x = self.laterals[-1](feats[-1])
        for lateral, f in zip(reversed(self.laterals[:-1]), reversed(feats[:-1])):
            x = F.interpolate(x, size=f.shape[-2:], mode="nearest") + lateral(f)
        return self.out(self.smooth(x))


class ConfidenceHead(nn.Module):
    """Global average pool of the last stage -> Linear -> ReLU -> Linear -> sigmoid: [N, C5, h, w] -> [N, J]."""

    def __init__(self, channels: int, hidden: int, joints: int):
        super().__init__()
        self.fc1, self.act, self.fc2 = nn.Linear(channels, hidden), nn.ReLU(), nn.Linear(hidden, joints)

    def forward(self, c5: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.fc2(self.act(self.fc1(c5.mean((-2, -1))))))


class PerViewNet(nn.Module):
    """One image [N, 3, H, W] 0..255 -> points_2d [N, J, 2] pixels, confidences [N, J] in (0, 1)."""

    def __init__(self, cfg: TriangulationConfig):
        super().__init__()
        self.backbone = build_backbone(cfg.backbone)
        self.register_buffer("scale", 1.0 / (255.0 * torch.tensor(IMAGE_STD).view(1, 3, 1, 1)))
        self.register_buffer("shift", -(torch.tensor(IMAGE_MEAN) / torch.tensor(IMAGE_STD)).view(1, 3, 1, 1))
        self.heatmap_head = HeatmapHead(self.backbone.out_channels, cfg.head_channels, NUM_JOINTS)
        self.soft_argmax = SoftArgmax(cfg.heatmap_size, HEATMAP_STRIDE, cfg.beta)
        self.confidence_head = ConfidenceHead(self.backbone.out_channels[-1], cfg.confidence_hidden, NUM_JOINTS)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        feats = self.backbone(images * self.scale + self.shift)
        return self.soft_argmax(self.heatmap_head(feats)), self.confidence_head(feats[-1])


class Triangulator(nn.Module):
    """points [B, V, J, 2], confidences [B, V, J], projections [B, V, 3, 4] -> joints [B, J, 3] mm, valid [B, J].
    A view whose P is all zeros (padding) gets confidence 0; the rest is WeightedDLT, in fp32."""

    def __init__(self, iterations: int = 4):
        super().__init__()
        self.dlt = WeightedDLT(iterations=iterations)

    def forward(self, points: torch.Tensor, confidences: torch.Tensor,
                projections: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        view_mask = (projections.abs().sum((-2, -1)) > 0).to(confidences.dtype)  # (B, V)
        return self.dlt(points, confidences * view_mask.unsqueeze(-1), projections)


class TriangulationNet(nn.Module):
    """views [B, V, 3, H, W], projections [B, V, 3, 4] -> joints_3d, valid, points_2d, confidences."""

    output_names = ("joints_3d", "valid", "points_2d", "confidences")

    def __init__(self, cfg: TriangulationConfig):
        super().__init__()
        cfg.validate()
        self.cfg = cfg
        self.per_view = PerViewNet(cfg)
        self.triangulate = Triangulator(cfg.dlt_iterations)

    def forward(self, views: torch.Tensor, projections: torch.Tensor):
        v, s = self.cfg.views, self.cfg.image_size
        points, conf = self.per_view(views.reshape(-1, 3, s, s))
        points, conf = points.reshape(-1, v, NUM_JOINTS, 2), conf.reshape(-1, v, NUM_JOINTS)
        joints, valid = self.triangulate(points, conf, projections)
        return joints, valid, points, conf


class PerViewPart(nn.Module):
    """The `per_view` part: image [1, 3, H, W] -> points_2d [1, J, 2], confidences [1, J]. The
    submodule keeps its whole-model name, so float_modules ("per_view.soft_argmax") apply."""

    def __init__(self, model: TriangulationNet):
        super().__init__()
        self.per_view = model.per_view

    def forward(self, image: torch.Tensor):
        return self.per_view(image)


class TriangulatePart(nn.Module):
    """The `triangulate` part: points_2d [1, V, J, 2], confidences [1, V, J], projections [1, V, 3, 4]
    -> joints_3d [1, J, 3], valid [1, J]; kept fp32 whole (float_modules: "triangulate")."""

    def __init__(self, model: TriangulationNet):
        super().__init__()
        self.triangulate = model.triangulate

    def forward(self, points: torch.Tensor, confidences: torch.Tensor, projections: torch.Tensor):
        return self.triangulate(points, confidences, projections)


def fold_for_export(model: TriangulationNet) -> TriangulationNet:
    """An eval-mode copy with every BatchNorm folded into its conv; same outputs."""
    from edgecap.models.fold import fold_batchnorm, unfolded_batchnorms

    form = fold_batchnorm(copy.deepcopy(model).eval())
    left = unfolded_batchnorms(form)
    if left:
        raise EdgecapError(f"triangulation export form: BatchNorm not folded in {left}")
    return form


# -- losses (training only) ------------------------------------------------------------------------

SOFT_MSE_THRESHOLD_MM2 = 400.0  # 20 mm


def soft_mse_3d(pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor,
                threshold: float = SOFT_MSE_THRESHOLD_MM2) -> torch.Tensor:
    """The reference's soft MSE, per joint: e = |pred - target|^2 (mm^2) where e <= threshold, else
    e^0.1 * threshold^0.9 (continuous at the threshold; it grows like d^0.2, so far-off joints pull
    little), averaged over joints with weight > 0. pred, target [B, J, 3]; weight [B, J] in {0, 1}.
    (Iskakov et al.'s KeypointsMSESmoothLoss applies the same rule per coordinate; here per joint.)"""
    e = ((pred.float() - target) ** 2).sum(-1)
    soft = e.clamp(min=threshold) ** 0.1 * threshold ** 0.9  # clamp: no inf gradient at e = 0
    per_joint = torch.where(e <= threshold, e, soft)
    return (per_joint * weight).sum() / weight.sum().clamp(min=1.0)


def points_l1_px(pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Mean |dx| + |dy| (pixels) over the weighted entries: pred, target [..., J, 2], weight [..., J]."""
    per = (pred.float() - target).abs().sum(-1)
    return (per * weight).sum() / weight.sum().clamp(min=1.0)
