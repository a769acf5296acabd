"""Training losses of the two-stage DensePose detector, on the targets of `targets.py`.

Every function returns a dict of scalar tensors. When there is nothing to supervise (no sampled
anchors, no RoIs, no DensePose points) the loss is `prediction.sum() * 0`: zero, but still part
of the graph, so `backward()` and DDP work unchanged.

Default weights (facts from detectron2 `projects/DensePose/densepose/config.py`, used by
`densepose/modeling/losses/chart.py`):
  PART_WEIGHTS = 1.0              -> loss_dp_I     (CE of the 24 + 1 fine parts at the points)
  POINT_REGRESSION_WEIGHTS = 0.01 -> loss_dp_U, loss_dp_V (smooth-L1, SUMMED over the points)
  INDEX_WEIGHTS = 5.0             -> loss_dp_segm  (CE of the coarse segmentation, mean)
(Parsing R-CNN's `rcnn/core/config.py` uses the same except POINT_REGRESSION_WEIGHTS = 0.001.)
RPN and box head follow Faster R-CNN as in maskrcnn-benchmark: smooth-L1 beta 1/9 for the RPN,
1.0 for the box head.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from edgecap import EdgecapError

PART_WEIGHT = 1.0
POINT_REGRESSION_WEIGHT = 0.01
INDEX_WEIGHT = 5.0


def _zero(t: torch.Tensor) -> torch.Tensor:
    return t.sum() * 0.0


def rpn_loss(
    objectness: torch.Tensor, deltas: torch.Tensor, labels: torch.Tensor, reg_targets: torch.Tensor,
    beta: float = 1.0 / 9,
) -> dict[str, torch.Tensor]:
    """objectness (A,) logits, deltas (A, 4), labels (A,) in {1, 0, -1}, reg_targets (A, 4) from
    `rpn_targets` (anchors of several images may be concatenated).

    loss_rpn_cls: binary CE over the sampled anchors (labels >= 0), mean;
    loss_rpn_box: smooth-L1 (beta) over the positives, summed and divided by the number of
    sampled anchors."""
    sampled = labels >= 0
    n = int(sampled.sum())
    if n == 0:
        return {"loss_rpn_cls": _zero(objectness), "loss_rpn_box": _zero(deltas)}
    cls = F.binary_cross_entropy_with_logits(objectness[sampled], labels[sampled].to(objectness.dtype))
    pos = labels == 1
    box = F.smooth_l1_loss(deltas[pos], reg_targets[pos], beta=beta, reduction="sum") / n
    return {"loss_rpn_cls": cls, "loss_rpn_box": box}


def box_loss(
    class_logits: torch.Tensor, box_deltas: torch.Tensor, labels: torch.Tensor, reg_targets: torch.Tensor,
    beta: float = 1.0,
) -> dict[str, torch.Tensor]:
    """class_logits (R, 2) (0 = background, 1 = person), box_deltas (R, 4) class-agnostic,
    labels (R,) {1, 0}, reg_targets (R, 4) from `sample_proposals`.

    loss_cls: CE, mean over the R RoIs; loss_box: smooth-L1 (beta) over the positives, summed
    and divided by R."""
    r = labels.numel()
    if r == 0:
        return {"loss_cls": _zero(class_logits), "loss_box": _zero(box_deltas)}
    cls = F.cross_entropy(class_logits, labels)
    pos = labels > 0
    box = F.smooth_l1_loss(box_deltas[pos], reg_targets[pos], beta=beta, reduction="sum") / r
    return {"loss_cls": cls, "loss_box": box}


def _at_points(z: torch.Tensor, channel: torch.Tensor | None, targets: dict, interpolation: str) -> torch.Tensor:
    """Values of z (P, C, S, S) at the target points: (M, C) for channel None, else (M,) at
    channel[m] of point m. Bilinear between the 4 cell centres around the point, or nearest."""
    roi = targets["point_roi"]
    ch = slice(None) if channel is None else channel
    if interpolation == "nearest":
        x, y = targets["point_cell"].unbind(1)
        return z[roi, ch, y, x]
    (x0, y0), (x1, y1) = targets["point_lo"].unbind(1), targets["point_hi"].unbind(1)
    fx, fy = targets["point_frac"].unbind(1)
    if channel is None:
        fx, fy = fx[:, None], fy[:, None]
    return (z[roi, ch, y0, x0] * (1 - fx) * (1 - fy) + z[roi, ch, y0, x1] * fx * (1 - fy)
            + z[roi, ch, y1, x0] * (1 - fx) * fy + z[roi, ch, y1, x1] * fx * fy)


def densepose_loss(
    part_logits: torch.Tensor, u: torch.Tensor, v: torch.Tensor, coarse_logits: torch.Tensor, targets: dict,
    *, part_weight: float = PART_WEIGHT, uv_weight: float = POINT_REGRESSION_WEIGHT,
    segm_weight: float = INDEX_WEIGHT, interpolation: str = "bilinear", uv_beta: float = 1.0,
) -> dict[str, torch.Tensor]:
    """DensePose chart losses of the P positive RoIs (rows aligned with `densepose_targets`).

    part_logits (P, 25, S, S) fine parts (0 = background), u, v (P, 24, S, S) chart coordinates
    per part (channel I - 1), coarse_logits (P, D, S, S) with D = 15 (labels 0..14) or 2
    (person vs background, the target is binarised).
    loss_dp_I: CE of the logits interpolated at the points (`interpolation` "bilinear" as
      detectron2's BilinearInterpolationHelper, or "nearest" = the cell holding the point), mean;
    loss_dp_U / loss_dp_V: smooth-L1 (uv_beta; detectron2 uses F.smooth_l1_loss's default 1.0)
      of the U/V channel of the GT part at the foreground points, SUMMED (as detectron2);
    loss_dp_segm: CE of coarse_logits against coarse_segm over all S x S cells of the valid RoIs.
    Each is multiplied by its weight.
    """
    if interpolation not in ("bilinear", "nearest"):
        raise EdgecapError(f"densepose_loss: interpolation must be 'bilinear' or 'nearest', got {interpolation!r}")
    segm_gt = targets["coarse_segm"]
    if part_logits.shape[0] != segm_gt.shape[0] or part_logits.shape[-2:] != segm_gt.shape[-2:]:
        raise EdgecapError(f"densepose_loss: predictions {tuple(part_logits.shape)} do not match the targets "
                           f"(P, S, S) = {tuple(segm_gt.shape)}")
    labels_i = targets["point_I"]
    fg = labels_i > 0
    if labels_i.numel() == 0:
        loss_i, loss_u, loss_v = _zero(part_logits), _zero(u), _zero(v)
    else:
        loss_i = F.cross_entropy(_at_points(part_logits, None, targets, interpolation), labels_i) * part_weight
        ch = (labels_i - 1).clamp(min=0)
        u_est = _at_points(u, ch, targets, interpolation)[fg]
        v_est = _at_points(v, ch, targets, interpolation)[fg]
        loss_u = F.smooth_l1_loss(u_est, targets["point_U"][fg], beta=uv_beta, reduction="sum") * uv_weight
        loss_v = F.smooth_l1_loss(v_est, targets["point_V"][fg], beta=uv_beta, reduction="sum") * uv_weight
    valid = targets["valid"]
    if not bool(valid.any()):
        loss_segm = _zero(coarse_logits)
    else:
        gt = segm_gt[valid]
        if coarse_logits.shape[1] == 2:
            gt = (gt > 0).to(torch.int64)
        loss_segm = F.cross_entropy(coarse_logits[valid], gt) * segm_weight
    return {"loss_dp_I": loss_i, "loss_dp_U": loss_u, "loss_dp_V": loss_v, "loss_dp_segm": loss_segm}


def distillation_losses(student: tuple[torch.Tensor, ...], teacher: tuple[torch.Tensor, ...]) -> dict[str, torch.Tensor]:
    """QAT by matching the float model: the raw head outputs of the fake-quantized graph
    (`student`) against the float model's (`teacher`) on the same image and RoIs, each
    (objectness (A,), rpn deltas (A, 4), class_logits (R, 2), box_deltas (R, 4), part_logits
    (P, 25, S, S), u, v (P, 24, S, S), coarse_logits (P, D, S, S)).

    Class-like outputs are matched by KL divergence of their softmax (binary CE for the RPN);
    regressions by squared error weighted by how much the teacher believes in them: RPN
    deltas by its objectness, u/v channel k by its probability of part k at that pixel (u/v
    of an absent part never reach the IUV output). The UV term is scaled x10 so that a
    0.03 chart-coordinate error (~1e-3 squared) weighs about as much as a 0.01-nat part KL.
    """
    obj_s, rpn_s, cls_s, box_s, part_s, u_s, v_s, coarse_s = student
    obj_t, rpn_t, cls_t, box_t, part_t, u_t, v_t, coarse_t = (t.detach() for t in teacher)

    def kl(s: torch.Tensor, t: torch.Tensor) -> torch.Tensor:  # mean over rows/pixels, summed over classes
        if s.numel() == 0:
            return _zero(s)
        return F.kl_div(F.log_softmax(s, 1), F.log_softmax(t, 1), log_target=True, reduction="none").sum(1).mean()

    def weighted_sq(s: torch.Tensor, t: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        return (w * (s - t) ** 2).sum() / w.sum().clamp(min=1e-6)

    p_obj = torch.sigmoid(obj_t)
    p_part = F.softmax(part_t, 1)[:, 1:]
    return {
        "distill_rpn_cls": F.binary_cross_entropy_with_logits(obj_s, p_obj)
        - F.binary_cross_entropy_with_logits(obj_t, p_obj),  # minus the teacher's entropy: 0 at a perfect match
        "distill_rpn_box": weighted_sq(rpn_s, rpn_t, p_obj[:, None]),
        "distill_cls": kl(cls_s, cls_t),
        "distill_box": ((box_s - box_t) ** 2).mean() if box_s.numel() else _zero(box_s),
        "distill_dp_I": kl(part_s, part_t),
        "distill_dp_UV": 10.0 * (weighted_sq(u_s, u_t, p_part) + weighted_sq(v_s, v_t, p_part)),
        "distill_dp_segm": kl(coarse_s, coarse_t),
    }
