"""Learnable algebraic triangulation (Iskakov et al., ICCV 2019): a per-view 2D network
(mobile backbone -> heatmaps -> soft-argmax, plus a per-joint confidence head) and the
confidence-weighted DLT (`dlt.WeightedDLT`), in one graph.

Inputs of `TriangulationNet` (the "whole" layout):
  views            float32 [B, V, 3, H, W]  RGB 0..255 as the cameras see them (not normalised:
                                            normalisation is in the graph)
  projections      float32 [B, V, 3, 4]     P = K [R | t] of each view in pixels of that image, world mm;
                                            a padded view (no camera) has P = 0 and gets weight 0
  camera_matrices  float32 [B, V, 3, 3]     K of each view (its skew is ignored)
  distortions      float32 [B, V, 5]        OpenCV (k1, k2, p1, p2, k3) of each view; zeros: none
Outputs:
  joints_3d    float32 [B, J, 3]  world mm (0 for an invalid joint)
  valid        float32 [B, J]     1: at least two views with weight and a solvable system
  points_2d    float32 [B, V, J, 2]  the per-view soft-argmax, undistorted (`Undistort`): pixels of the
                                     pinhole model P (pixel centres at integers), what the DLT takes
  confidences  float32 [B, V, J]  the per-view confidence head's sigmoid (before the view mask)

Parts (the "parts" layout): `per_view` (one image [1, 3, H, W], its camera_matrix [1, 3, 3] and
distortion [1, 5] -> points_2d [1, J, 2] undistorted, confidences [1, J]: each camera knows its
own lens) and `triangulate` (points_2d [1, V, J, 2], confidences [1, V, J], projections
[1, V, 3, 4] -> joints_3d, valid), glued by app.PartsRunner.

Soft-argmax (export-safe: reshape, mul, softmax, matmul with a constant grid): heatmap logits
h [N, J, h, w] at stride s; p = softmax(beta * h) over the h*w cells, beta = exp(log_beta)
learned; (x, y) = sum_cells p * (s * col + (s - 1) / 2, s * row + (s - 1) / 2): cell k covers
image pixels s*k .. s*k + s - 1, whose centre is s*k + (s - 1) / 2.
"""

from __future__ import annotations

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
    undistort_iterations: int = 5  # Undistort's Newton steps
    aux_2d_weight: float = 0.3  # training only: weight of the 2D soft-argmax L1 (px) beside the 3D loss
    heatmap_weight: float = 1.0  # training only: weight of the heatmap cross-entropy beside the 3D loss

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
        if not 0 <= self.undistort_iterations <= 32:
            raise EdgecapError(f"model.undistort_iterations must be in [0, 32], got {self.undistort_iterations}")
        if not 0.0 <= self.aux_2d_weight <= 1e4 or not 0.0 <= self.heatmap_weight <= 1e4:
            raise EdgecapError(f"model.aux_2d_weight and model.heatmap_weight must be in [0, 1e4], got "
                               f"{self.aux_2d_weight} and {self.heatmap_weight}")

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

    def logits(self, heatmaps: torch.Tensor) -> torch.Tensor:
        """[N, J, h * w]: beta * heatmaps, whose softmax the coordinates are the expectation of."""
        return heatmaps.reshape(-1, heatmaps.shape[1], self.size * self.size) * self.log_beta.exp()

    def forward(self, heatmaps: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.logits(heatmaps), dim=-1) @ self.grid


class Undistort(nn.Module):
    """Distorted pixels [N, J, 2] -> undistorted pixels (those of P = K [R | t]), given K [N, 3, 3]
    and OpenCV's (k1, k2, p1, p2, k3) [N, 5]: the inverse of OpenCV's distortion model, what
    cv2.undistortPoints computes, written out because no backend has that op. Newton's method on
    distort(x) = x_d in normalised coordinates with the 2x2 Jacobian inverted in closed form (mul,
    add, div, slicing only): quadratic convergence, where OpenCV's fixed-point iteration needs
    ~30 steps near the corners of a strongly distorted image (its default 5 leave pixels of error
    there). Zero distortion returns the input (to fp32 rounding). Checked against a converged
    cv2.undistortPoints in the tests."""

    def __init__(self, iterations: int = 5):
        super().__init__()
        self.iterations = iterations

    def forward(self, points: torch.Tensor, camera_matrix: torch.Tensor, distortion: torch.Tensor) -> torch.Tensor:
        fx, fy = camera_matrix[:, 0:1, 0:1], camera_matrix[:, 1:2, 1:2]  # [N, 1, 1]
        cx, cy = camera_matrix[:, 0:1, 2:3], camera_matrix[:, 1:2, 2:3]
        k1, k2, p1, p2, k3 = (distortion[:, i : i + 1].unsqueeze(-1) for i in range(5))
        xd, yd = (points[..., 0:1] - cx) / fx, (points[..., 1:2] - cy) / fy  # [N, J, 1]
        x, y = xd, yd
        for _ in range(self.iterations):
            r2 = x * x + y * y
            radial = 1.0 + ((k3 * r2 + k2) * r2 + k1) * r2
            slope = k1 + (2.0 * k2 + 3.0 * k3 * r2) * r2  # d radial / d r2
            ex = x * radial + 2.0 * p1 * x * y + p2 * (r2 + 2.0 * x * x) - xd  # distort(x, y) - (xd, yd)
            ey = y * radial + p1 * (r2 + 2.0 * y * y) + 2.0 * p2 * x * y - yd
            cross = 2.0 * (slope * x * y + p1 * x + p2 * y)  # d ex / dy = d ey / dx
            jxx = radial + 2.0 * slope * x * x + 2.0 * p1 * y + 6.0 * p2 * x
            jyy = radial + 2.0 * slope * y * y + 6.0 * p1 * y + 2.0 * p2 * x
            det = (jxx * jyy - cross * cross).clamp(min=1e-3)  # > 0 for a lens whose distortion is monotonic
            x, y = x - (jyy * ex - cross * ey) / det, y - (jxx * ey - cross * ex) / det
        return torch.cat([x * fx + cx, y * fy + cy], dim=-1)


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
    """One image [N, 3, H, W] 0..255, its K [N, 3, 3] and distortion [N, 5] -> points_2d [N, J, 2]
    undistorted pixels, confidences [N, J] in (0, 1)."""

    def __init__(self, cfg: TriangulationConfig):
        super().__init__()
        self.backbone = build_backbone(cfg.backbone)
        self.register_buffer("scale", 1.0 / (255.0 * torch.tensor(IMAGE_STD).view(1, 3, 1, 1)))
        self.register_buffer("shift", -(torch.tensor(IMAGE_MEAN) / torch.tensor(IMAGE_STD)).view(1, 3, 1, 1))
        self.heatmap_head = HeatmapHead(self.backbone.out_channels, cfg.head_channels, NUM_JOINTS)
        self.soft_argmax = SoftArgmax(cfg.heatmap_size, HEATMAP_STRIDE, cfg.beta)
        self.confidence_head = ConfidenceHead(self.backbone.out_channels[-1], cfg.confidence_hidden, NUM_JOINTS)
        self.undistort = Undistort(cfg.undistort_iterations)

    def forward(self, images: torch.Tensor, camera_matrix: torch.Tensor,
                distortion: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        feats = self.backbone(images * self.scale + self.shift)
        points = self.undistort(self.soft_argmax(self.heatmap_head(feats)), camera_matrix, distortion)
        return points, self.confidence_head(feats[-1])


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
    """views [B, V, 3, H, W], projections [B, V, 3, 4], camera_matrices [B, V, 3, 3], distortions
    [B, V, 5] -> joints_3d, valid, points_2d, confidences."""

    input_names = ("views", "projections", "camera_matrices", "distortions")
    output_names = ("joints_3d", "valid", "points_2d", "confidences")

    def __init__(self, cfg: TriangulationConfig):
        super().__init__()
        cfg.validate()
        self.cfg = cfg
        self.per_view = PerViewNet(cfg)
        self.triangulate = Triangulator(cfg.dlt_iterations)

    def forward(self, views: torch.Tensor, projections: torch.Tensor, camera_matrices: torch.Tensor,
                distortions: torch.Tensor):
        v, s = self.cfg.views, self.cfg.image_size
        points, conf = self.per_view(views.reshape(-1, 3, s, s), camera_matrices.reshape(-1, 3, 3),
                                     distortions.reshape(-1, 5))
        points, conf = points.reshape(-1, v, NUM_JOINTS, 2), conf.reshape(-1, v, NUM_JOINTS)
        joints, valid = self.triangulate(points, conf, projections)
        return joints, valid, points, conf


class PerViewPart(nn.Module):
    """The `per_view` part: image [1, 3, H, W], camera_matrix [1, 3, 3], distortion [1, 5] ->
    points_2d [1, J, 2] (undistorted), confidences [1, J]. The submodule keeps its whole-model
    name, so float_modules ("per_view.soft_argmax") apply."""

    def __init__(self, model: TriangulationNet):
        super().__init__()
        self.per_view = model.per_view

    def forward(self, image: torch.Tensor, camera_matrix: torch.Tensor, distortion: torch.Tensor):
        return self.per_view(image, camera_matrix, distortion)


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
    from edgecap.models.fold import folded_copy

    return folded_copy(model, "triangulation")


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


def heatmap_cross_entropy(logits: torch.Tensor, target_px: torch.Tensor, weight: torch.Tensor, size: int,
                          stride: int = HEATMAP_STRIDE, sigma_cells: float = 1.0) -> torch.Tensor:
    """Cross-entropy between the soft-argmax's distribution softmax(logits) [N, J, h * w] and a
    Gaussian (sigma in heatmap cells) around each target [N, J, 2] (image pixels, as seen in the
    image), averaged over entries with weight [N, J] > 0. It shapes the whole distribution, so the
    2D network learns far faster from scratch than through the soft-argmax's expectation alone."""
    centres = torch.arange(size, dtype=torch.float32, device=logits.device) * stride + (stride - 1) / 2.0
    gx = torch.exp(-0.5 * ((centres - target_px[..., 0:1]) / (stride * sigma_cells)) ** 2)  # [N, J, w]
    gy = torch.exp(-0.5 * ((centres - target_px[..., 1:2]) / (stride * sigma_cells)) ** 2)  # [N, J, h]
    target = (gy.unsqueeze(-1) * gx.unsqueeze(-2)).reshape(logits.shape)
    target = target / target.sum(-1, keepdim=True).clamp(min=1e-12)
    per = -(target * torch.log_softmax(logits.float(), dim=-1)).sum(-1)
    return (per * weight).sum() / weight.sum().clamp(min=1.0)


def points_l1_px(pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Mean |dx| + |dy| (pixels) over the weighted entries: pred, target [..., J, 2], weight [..., J]."""
    per = (pred.float() - target).abs().sum(-1)
    return (per * weight).sum() / weight.sum().clamp(min=1.0)
