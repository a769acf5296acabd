"""Training targets of the two-stage DensePose detector: RPN anchors, box-head RoIs, DensePose RoIs.

Pure tensor functions for ONE image; nothing here is exported, so boolean masks and `nonzero`
are fine. Conventions:
- boxes are (x1, y1, x2, y2) float32 input-image pixels;
- labels are int64: 1 = person (foreground), 0 = background, -1 = ignored;
- regression targets are `BoxCoder` deltas (dx, dy, dw, dh) of the matched GT box relative to
  the anchor/RoI, with the Detectron/detectron2 weights: (1, 1, 1, 1) for the RPN,
  (10, 10, 5, 5) for the box head; rows that are not positive hold 0;
- the DensePose heatmap of a RoI is an S x S grid stretched over the RoI: cell (row i, col j)
  covers [j, j + 1) x [i, i + 1) in "grid units" g = (p - roi_xy1) * S / roi_wh and is centred
  at g = j + 0.5, the sample position of `RoIAlign(aligned=True)`. (detectron2's DensePose
  losses put the value of cell j at g = j, half a cell off; at S = 112 that is < 1% of the box.)

Matching follows Faster R-CNN / detectron2's `Matcher`; sampling follows `subsample_labels`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from edgecap import EdgecapError
from edgecap.models.ops.boxes import BoxCoder, box_area, box_iou

RPN_BOX_WEIGHTS = (1.0, 1.0, 1.0, 1.0)
ROI_BOX_WEIGHTS = (10.0, 10.0, 5.0, 5.0)


def match_anchors(
    anchors: torch.Tensor, gt_boxes: torch.Tensor, fg_iou: float = 0.7, bg_iou: float = 0.3,
    allow_low_quality: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Faster R-CNN matching of anchors (A, 4) to GT boxes (G, 4).

    Each anchor takes its highest-IoU GT: label 1 if IoU >= fg_iou, 0 if IoU < bg_iou, -1 in
    between. With `allow_low_quality`, every GT's best anchor(s) (all ties) become 1 as well, so
    each GT gets at least one positive; a GT that overlaps no anchor at all (best IoU 0) is
    skipped rather than turning every anchor positive.
    Returns labels (A,) int64 in {1, 0, -1} and matched_gt (A,) int64, the argmax GT index
    (meaningful where labels == 1; 0 everywhere when G == 0, where all labels are 0).
    """
    if fg_iou < bg_iou:
        raise EdgecapError(f"match_anchors: fg_iou ({fg_iou}) must be >= bg_iou ({bg_iou})")
    n = anchors.shape[0]
    if gt_boxes.shape[0] == 0:
        zeros = torch.zeros(n, dtype=torch.int64, device=anchors.device)
        return zeros, zeros.clone()
    iou = box_iou(gt_boxes.float(), anchors.float())  # (G, A)
    best_iou, matched = iou.max(dim=0)
    labels = torch.full((n,), -1, dtype=torch.int64, device=anchors.device)
    labels[best_iou < bg_iou] = 0
    labels[best_iou >= fg_iou] = 1
    if allow_low_quality:
        best_per_gt = iou.max(dim=1, keepdim=True).values  # (G, 1)
        labels[((iou == best_per_gt) & (best_per_gt > 0)).any(dim=0)] = 1
    return labels, matched


def _randperm(n: int, generator: torch.Generator | None, device: torch.device) -> torch.Tensor:
    gen_device = generator.device if generator is not None else device
    return torch.randperm(n, generator=generator, device=gen_device).to(device)


def sample_labels(
    labels: torch.Tensor, batch_size_per_image: int, positive_fraction: float,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Random subsample of labels (N,) in {1, 0, -1}: at most batch_size * positive_fraction
    positives, negatives fill the rest of the batch; everything not drawn becomes -1.
    Returns a new (N,) int64 tensor."""
    pos = torch.nonzero(labels == 1).squeeze(1)
    neg = torch.nonzero(labels == 0).squeeze(1)
    num_pos = min(int(batch_size_per_image * positive_fraction), pos.numel())
    num_neg = min(batch_size_per_image - num_pos, neg.numel())
    out = torch.full_like(labels, -1)
    out[pos[_randperm(pos.numel(), generator, labels.device)[:num_pos]]] = 1
    out[neg[_randperm(neg.numel(), generator, labels.device)[:num_neg]]] = 0
    return out


def _encode(gt: torch.Tensor, boxes: torch.Tensor, positive: torch.Tensor, weights: Sequence[float]) -> torch.Tensor:
    """BoxCoder deltas (N, 4) of gt (N, 4) w.r.t. boxes (N, 4), zeroed where not `positive`."""
    coder = BoxCoder(weights).to(boxes.device)
    deltas = coder.encode(gt, boxes)
    return torch.where(positive[:, None], deltas, torch.zeros_like(deltas))


def rpn_targets(
    anchors: torch.Tensor, gt_boxes: torch.Tensor, *, fg_iou: float = 0.7, bg_iou: float = 0.3,
    batch_size_per_image: int = 256, positive_fraction: float = 0.5,
    weights: Sequence[float] = RPN_BOX_WEIGHTS, generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """RPN targets for anchors (A, 4) and GT boxes (G, 4), defaults of Faster R-CNN/detectron2.

    Returns labels (A,) int64, already subsampled (1 / 0 for the anchors of the loss, -1 for
    the rest), and reg_targets (A, 4) float32 deltas of the matched GT (0 where labels != 1).
    """
    labels, matched = match_anchors(anchors, gt_boxes, fg_iou, bg_iou, allow_low_quality=True)
    labels = sample_labels(labels, batch_size_per_image, positive_fraction, generator)
    if gt_boxes.shape[0] == 0:
        return labels, torch.zeros_like(anchors, dtype=torch.float32)
    reg = _encode(gt_boxes.float()[matched], anchors.float(), labels == 1, weights)
    return labels, reg


def sample_proposals(
    proposals: torch.Tensor, gt_boxes: torch.Tensor, num_samples: int = 128, positive_fraction: float = 0.25,
    fg_iou: float = 0.5, *, weights: Sequence[float] = ROI_BOX_WEIGHTS, generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Box-head RoIs of one image: proposals (N, 4) plus the GT boxes (G, 4) appended (so each GT
    is a positive RoI of IoU 1), matched to the GT; IoU >= fg_iou is a person, below is
    background (no ignore band, as in detectron2's ROI_HEADS.IOU_THRESHOLDS = [0.5]); then at
    most num_samples RoIs with at most num_samples * positive_fraction positives are drawn.

    Returns, positives first (R <= num_samples rows):
      rois (R, 4) float32 (detached), labels (R,) int64 {1, 0}, matched_gt (R,) int64 GT index
      (meaningful where labels == 1), reg_targets (R, 4) BoxCoder(weights) deltas (0 for bg).
    """
    rois = torch.cat([proposals.detach().float(), gt_boxes.detach().float().to(proposals.device)])
    if gt_boxes.shape[0] == 0:
        labels = torch.zeros(rois.shape[0], dtype=torch.int64, device=rois.device)
        matched = torch.zeros_like(labels)
    else:
        best_iou, matched = box_iou(gt_boxes.float().to(rois.device), rois).max(dim=0)
        labels = (best_iou >= fg_iou).to(torch.int64)
    sampled = sample_labels(labels, num_samples, positive_fraction, generator)
    keep = torch.cat([torch.nonzero(sampled == 1).squeeze(1), torch.nonzero(sampled == 0).squeeze(1)])
    rois, labels, matched = rois[keep], labels[keep], matched[keep]
    if gt_boxes.shape[0] == 0:
        return rois, labels, matched, torch.zeros_like(rois)
    reg = _encode(gt_boxes.float().to(rois.device)[matched], rois, labels == 1, weights)
    return rois, labels, matched, reg


def matched_iou(boxes: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """Row-wise IoU of boxes (N, 4) and gt (N, 4) -> (N,)."""
    lt = torch.maximum(boxes[:, 0:2], gt[:, 0:2])
    rb = torch.minimum(boxes[:, 2:4], gt[:, 2:4])
    wh = (rb - lt).clamp(min=0.0)
    inter = wh[:, 0] * wh[:, 1]
    return inter / (box_area(boxes) + box_area(gt) - inter).clamp(min=1e-6)


def densepose_targets(
    rois: torch.Tensor,
    matched_gt: torch.Tensor,
    gt_points: Sequence[np.ndarray | torch.Tensor],
    gt_coarse_masks: np.ndarray | torch.Tensor,
    gt_boxes: np.ndarray | torch.Tensor,
    heatmap_size: int,
    *,
    gt_has_dp: np.ndarray | torch.Tensor | None = None,
    min_iou: float = 0.7,
) -> dict[str, torch.Tensor]:
    """DensePose targets of the positive RoIs of one image.

    Inputs (as `DensePoseSample` holds them, numpy or torch):
      rois (P, 4) image px; matched_gt (P,) int64 GT index of each RoI;
      gt_points: G arrays (N_g, 5) = x, y (image px), I (0..24, 0 = background), U, V;
      gt_coarse_masks (G, M, M) labels 0..14 over each GT box (M = 256 in DensePose-COCO);
      gt_boxes (G, 4) image px; heatmap_size S;
      gt_has_dp (G,) bool, default "has at least one point".
    A RoI is `valid` (gets DensePose terms) when its GT has DensePose data and
    IoU(RoI, GT) >= min_iou (detectron2 ROI_DENSEPOSE_HEAD.FG_IOU_THRESHOLD = 0.7; pass 0 to
    train on every positive RoI). A point is kept when it lies in its RoI,
    x1 <= x < x2 and y1 <= y < y2 (detectron2's rule).

    Returns, on rois.device, with M = number of kept points (ordered by RoI):
      valid (P,) bool;
      coarse_segm (P, S, S) int64: the GT box's label map resampled into the RoI by nearest
        neighbour at the cell centres; outside the GT box, and for invalid RoIs, 0;
      point_roi (M,) int64 RoI index;
      point_grid (M, 2) float32 (x, y) in grid units, in [0, S);
      point_cell (M, 2) int64 (col, row) of the cell holding the point (nearest cell centre);
      point_lo, point_hi (M, 2) int64 and point_frac (M, 2) float32: bilinear corners (col, row)
        and weights of the hi corner around g - 0.5 (cell-centre coordinates), edge-clamped;
      point_I (M,) int64, point_U, point_V (M,) float32.
    """
    device, s = rois.device, int(heatmap_size)
    rois = rois.detach().float()
    matched_gt = torch.as_tensor(matched_gt, dtype=torch.int64, device=device)
    gt_boxes = torch.as_tensor(gt_boxes, dtype=torch.float32, device=device).reshape(-1, 4)
    masks = torch.as_tensor(gt_coarse_masks, device=device).to(torch.int64)
    pts = [torch.as_tensor(p, dtype=torch.float32, device=device).reshape(-1, 5) for p in gt_points]
    g = gt_boxes.shape[0]
    if len(pts) != g or masks.shape[0] != g:
        raise EdgecapError(f"densepose_targets: {g} GT boxes but {len(pts)} point sets and {masks.shape[0]} masks")
    if gt_has_dp is None:
        has_dp = torch.tensor([len(p) > 0 for p in pts], dtype=torch.bool, device=device)
    else:
        has_dp = torch.as_tensor(gt_has_dp, dtype=torch.bool, device=device)

    gt = gt_boxes[matched_gt]  # (P, 4)
    valid = has_dp[matched_gt] & (matched_iou(rois, gt) >= min_iou)
    xy1, wh = rois[:, 0:2], (rois[:, 2:4] - rois[:, 0:2]).clamp(min=1e-6)

    # Points: pair every valid RoI with its GT's points, keep those inside the RoI.
    all_pts = torch.cat(pts) if pts else torch.zeros(0, 5, device=device)
    counts = torch.tensor([len(q) for q in pts], dtype=torch.int64, device=device)
    pt_gt = torch.repeat_interleave(torch.arange(g, device=device), counts)  # (N,) GT of each point
    xy = all_pts[:, 0:2]
    inside = ((xy[None] >= rois[:, None, 0:2]) & (xy[None] < rois[:, None, 2:4])).all(-1)  # (P, N)
    roi_idx, pt_idx = torch.nonzero(valid[:, None] & (pt_gt[None] == matched_gt[:, None]) & inside, as_tuple=True)
    grid = (xy[pt_idx] - xy1[roi_idx]) * s / wh[roi_idx]  # (M, 2)
    centred = grid - 0.5
    lo = centred.floor().clamp(0, s - 1)
    frac = (centred - lo).clamp(0.0, 1.0)
    lo = lo.to(torch.int64)

    # Coarse segmentation: RoI cell centres -> GT mask pixels (pixel k covers [k, k + 1) of the M x M frame).
    msize = torch.tensor(masks.shape[-1:-3:-1], dtype=torch.float32, device=device)  # (M_x, M_y)
    cell = torch.arange(s, device=device, dtype=torch.float32)[None, :, None] + 0.5
    centres = xy1[:, None] + cell * wh[:, None] / s  # (P, S, 2) image px
    gt_wh = (gt[:, None, 2:4] - gt[:, None, 0:2]).clamp(min=1e-6)
    pix = ((centres - gt[:, None, 0:2]) / gt_wh * msize).floor()
    in_gt = (pix >= 0) & (pix < msize)  # (P, S, 2)
    pix = torch.minimum(pix.clamp(min=0), msize - 1).to(torch.int64)
    segm = masks[matched_gt[:, None, None], pix[:, :, None, 1], pix[:, None, :, 0]]  # (P, S, S)
    segm = segm * (in_gt[:, :, None, 1] & in_gt[:, None, :, 0] & valid[:, None, None])

    return {
        "valid": valid,
        "coarse_segm": segm,
        "point_roi": roi_idx,
        "point_grid": grid,
        "point_cell": grid.floor().clamp(0, s - 1).to(torch.int64),
        "point_lo": lo,
        "point_hi": (lo + 1).clamp(max=s - 1),
        "point_frac": frac,
        "point_I": all_pts[pt_idx, 2].round().to(torch.int64),
        "point_U": all_pts[pt_idx, 3],
        "point_V": all_pts[pt_idx, 4],
    }
