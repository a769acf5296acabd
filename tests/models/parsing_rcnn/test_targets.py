"""Hand-built cases for the detector's training targets and losses (RPN, box head, DensePose)."""

import numpy as np
import pytest
import torch

from edgecap import EdgecapError
from edgecap.models.ops import BoxCoder
from edgecap.models.parsing_rcnn.losses import _at_points, box_loss, densepose_loss, distillation_losses, rpn_loss
from edgecap.models.parsing_rcnn.targets import (
    densepose_targets, match_anchors, rpn_targets, sample_labels, sample_proposals,
)


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# --- anchors ---------------------------------------------------------------------------------

ANCHORS = torch.tensor([
    [0.0, 0, 10, 10],    # IoU 1 with gt0 -> 1
    [5, 0, 15, 10],      # IoU 1/3 with gt0 -> ignore
    [20, 20, 30, 30],    # no overlap -> 0
    [0, 0, 10, 9],       # IoU 0.9 -> 1
    [40, 40, 50, 50],    # IoU 0.25 with gt1, its best (tied) -> 1 by low-quality match only
    [50, 50, 60, 60],    # the tie
])
GT = torch.tensor([[0.0, 0, 10, 10], [40, 40, 60, 60], [200, 200, 210, 210]])  # gt2 overlaps nothing


def test_match_anchors_rules_and_low_quality():
    labels, matched = match_anchors(ANCHORS, GT)
    assert labels.tolist() == [1, -1, 0, 1, 1, 1]
    assert matched[[0, 1, 3, 4, 5]].tolist() == [0, 0, 0, 1, 1]
    labels, _ = match_anchors(ANCHORS, GT, allow_low_quality=False)
    assert labels.tolist() == [1, -1, 0, 1, 0, 0]
    labels, matched = match_anchors(ANCHORS, torch.zeros(0, 4))
    assert labels.tolist() == [0] * 6 and matched.tolist() == [0] * 6


def test_sample_labels_fractions():
    labels = torch.cat([torch.ones(200), torch.zeros(1000), -torch.ones(50)]).long()
    out = sample_labels(labels, 256, 0.5, gen())
    assert (out == 1).sum() == 128 and (out == 0).sum() == 128
    assert (labels[out == 1] == 1).all() and (labels[out == 0] == 0).all() and (out[-50:] == -1).all()
    few = torch.cat([torch.ones(10), torch.zeros(1000)]).long()
    out = sample_labels(few, 256, 0.5, gen())
    assert (out == 1).sum() == 10 and (out == 0).sum() == 246  # negatives fill the batch
    assert not torch.equal(sample_labels(labels, 256, 0.5, gen(1)), sample_labels(labels, 256, 0.5, gen(2)))
    assert torch.equal(sample_labels(labels, 256, 0.5, gen(3)), sample_labels(labels, 256, 0.5, gen(3)))


def test_rpn_targets_and_loss():
    labels, reg = rpn_targets(ANCHORS, GT, batch_size_per_image=256, generator=gen())
    assert labels.tolist() == [1, -1, 0, 1, 1, 1]  # everything fits in the batch
    want = BoxCoder().encode(GT[[0, 0, 1, 1]], ANCHORS[[0, 3, 4, 5]])
    assert torch.allclose(reg[[0, 3, 4, 5]], want) and (reg[[1, 2]] == 0).all()

    perfect = rpn_loss(torch.where(labels == 1, 30.0, -30.0), reg.clone(), labels, reg)
    assert perfect["loss_rpn_cls"] < 1e-10 and perfect["loss_rpn_box"] == 0

    obj = torch.zeros(6, requires_grad=True)
    deltas = torch.zeros(6, 4, requires_grad=True)
    loss = rpn_loss(obj, deltas, labels, reg)
    assert torch.isclose(loss["loss_rpn_cls"], torch.tensor(np.log(2.0), dtype=torch.float32))
    assert loss["loss_rpn_box"] > 0
    sum(loss.values()).backward()
    assert obj.grad[1] == 0 and (obj.grad[[0, 2, 3, 4, 5]] != 0).all()  # the ignored anchor gets none
    assert (deltas.grad[[1, 2]] == 0).all() and deltas.grad[4].abs().sum() > 0

    none = torch.full((6,), -1)
    obj = torch.zeros(6, requires_grad=True)
    loss = rpn_loss(obj, deltas, none, reg)
    assert loss["loss_rpn_cls"] == 0 and loss["loss_rpn_box"] == 0
    sum(loss.values()).backward()
    assert (obj.grad == 0).all()


# --- box head --------------------------------------------------------------------------------

def test_sample_proposals_appends_gt():
    gt = torch.tensor([[10.0, 10, 50, 90], [100, 20, 140, 120]])
    far = torch.tensor([[300.0, 300, 340, 380], [200, 0, 230, 30], [0, 150, 20, 190]])
    rois, labels, matched, reg = sample_proposals(far, gt, generator=gen())
    assert labels.tolist() == [1, 1, 0, 0, 0]  # positives first: only the appended GT boxes
    assert torch.equal(rois[:2], gt[matched[:2]]) and (reg == 0).all()  # GT vs itself: zero deltas

    # Many positives: the positive fraction caps them.
    g = gen(1)
    jitter = gt[0] + torch.randn(40, 4, generator=g)
    xy = 400 + 50 * torch.rand(200, 2, generator=g)
    bg = torch.cat([xy, xy + 40], 1)
    rois, labels, matched, reg = sample_proposals(torch.cat([jitter, bg]), gt, 64, 0.25, generator=gen(2))
    assert len(rois) == 64 and labels.tolist() == [1] * 16 + [0] * 48
    coder = BoxCoder((10.0, 10.0, 5.0, 5.0))
    assert torch.allclose(coder.decode(reg[:16], rois[:16]), gt[matched[:16]], atol=1e-3)

    rois, labels, matched, reg = sample_proposals(far, torch.zeros(0, 4), generator=gen())
    assert labels.tolist() == [0, 0, 0] and (reg == 0).all()


def test_box_loss_perfect_and_gradients():
    gt = torch.tensor([[10.0, 10, 50, 90]])
    props = torch.tensor([[12.0, 8, 49, 93], [300, 300, 340, 380], [11, 12, 52, 88]])
    rois, labels, _, reg = sample_proposals(props, gt, generator=gen())
    assert labels.tolist() == [1, 1, 1, 0]
    logits = torch.stack([torch.where(labels == 1, -30.0, 30.0), torch.where(labels == 1, 30.0, -30.0)], 1)
    perfect = box_loss(logits, reg.clone(), labels, reg)
    assert perfect["loss_cls"] < 1e-10 and perfect["loss_box"] == 0

    logits = torch.zeros(4, 2, requires_grad=True)
    deltas = torch.zeros(4, 4, requires_grad=True)
    loss = box_loss(logits, deltas, labels, reg)
    assert loss["loss_cls"] > 0 and loss["loss_box"] > 0
    sum(loss.values()).backward()
    assert (logits.grad != 0).all() and (deltas.grad[3] == 0).all() and deltas.grad[0].abs().sum() > 0

    empty = box_loss(torch.zeros(0, 2, requires_grad=True), torch.zeros(0, 4, requires_grad=True),
                     torch.zeros(0, dtype=torch.long), torch.zeros(0, 4))
    assert all(v == 0 for v in empty.values())
    sum(empty.values()).backward()


# --- DensePose -------------------------------------------------------------------------------

GT_BOX = np.array([[10.0, 20, 110, 220], [300, 300, 340, 380]], np.float32)  # w 100, h 200; gt1 has no dp
POINTS = [
    np.array([[70, 30, 2, 0.1, 0.2],      # in the RoI below
              [105, 215, 24, 0.5, 0.6],   # in the RoI below
              [30, 100, 1, 0.3, 0.4]],    # left of the RoI: dropped
             np.float32),
    np.zeros((0, 5), np.float32),
]
ROIS = torch.tensor([[60.0, 20, 160, 220], [300, 300, 340, 380]])  # half a box right of gt0; gt1 itself
MATCHED = torch.tensor([0, 1])
S = 10


def hand_targets(**kw):
    masks = np.zeros((2, 256, 256), np.uint8)
    masks[0] = 1
    return densepose_targets(ROIS, MATCHED, POINTS, masks, GT_BOX, S, **kw)


def test_densepose_points_land_in_hand_computed_cells():
    t = hand_targets(min_iou=0.0)
    assert t["valid"].tolist() == [True, False]  # gt1 has no DensePose data
    assert t["point_roi"].tolist() == [0, 0]
    # p0: ((70-60) * 10/100, (30-20) * 10/200) = (1.0, 0.5); p1: (4.5, 9.75)
    assert torch.allclose(t["point_grid"], torch.tensor([[1.0, 0.5], [4.5, 9.75]]))
    assert t["point_cell"].tolist() == [[1, 0], [4, 9]]
    # bilinear around cell centres: g - 0.5 = (0.5, 0.0) and (4.0, 9.25), the latter edge-clamped in y
    assert t["point_lo"].tolist() == [[0, 0], [4, 9]] and t["point_hi"].tolist() == [[1, 1], [5, 9]]
    assert torch.allclose(t["point_frac"], torch.tensor([[0.5, 0.0], [0.0, 0.25]]))
    assert t["point_I"].tolist() == [2, 24]
    assert torch.allclose(t["point_U"], torch.tensor([0.1, 0.5]))
    assert torch.allclose(t["point_V"], torch.tensor([0.2, 0.6]))
    # coarse target (mask all 1): the RoI's left half lies in the GT box, its right half outside
    assert (t["coarse_segm"][0, :, :5] == 1).all() and (t["coarse_segm"][0, :, 5:] == 0).all()
    assert (t["coarse_segm"][1] == 0).all()

    # The default IoU filter (detectron2's 0.7) drops this IoU-1/3 RoI altogether.
    t = hand_targets()
    assert t["valid"].tolist() == [False, False] and t["point_roi"].numel() == 0 and (t["coarse_segm"] == 0).all()


def test_coarse_mask_resampling_shifted_roi():
    box = np.array([[0.0, 0, 64, 64]], np.float32)
    mask = np.zeros((1, 256, 256), np.uint8)
    mask[0, :, :128], mask[0, :, 128:] = 1, 14  # left half torso, right half head
    pts = [np.array([[32, 32, 1, 0.5, 0.5]], np.float32)]
    rois = torch.tensor([[0.0, 0, 64, 64], [32, 0, 96, 64], [-32, 0, 32, 64], [0, 32, 64, 96]])
    t = densepose_targets(rois, torch.zeros(4, dtype=torch.long), pts, mask, box, 8, min_iou=0.0)
    row = [1] * 4 + [14] * 4
    assert t["coarse_segm"][0].tolist() == [row] * 8                      # identity
    assert t["coarse_segm"][1].tolist() == [[14] * 4 + [0] * 4] * 8       # shifted right by half a box
    assert t["coarse_segm"][2].tolist() == [[0] * 4 + [1] * 4] * 8        # shifted left
    assert t["coarse_segm"][3].tolist() == [row] * 4 + [[0] * 8] * 4      # shifted down


def perfect_predictions(t, p=2, s=S):
    part = torch.full((p, 25, s, s), -20.0)
    u, v = torch.zeros(p, 24, s, s), torch.zeros(p, 24, s, s)
    for m, (r, i) in enumerate(zip(t["point_roi"], t["point_I"])):
        # part i around the point only (the hand-made points' neighbourhoods do not overlap);
        # U/V over the whole map of channel i - 1 (the points have different parts)
        (x0, y0), (x1, y1) = torch.minimum(t["point_lo"][m], t["point_cell"][m]).tolist(), \
            torch.maximum(t["point_hi"][m], t["point_cell"][m]).tolist()
        part[r, i, y0:y1 + 1, x0:x1 + 1] = 20.0
        u[r, i - 1], v[r, i - 1] = t["point_U"][m], t["point_V"][m]
    coarse = torch.nn.functional.one_hot(t["coarse_segm"], 15).permute(0, 3, 1, 2).float() * 40 - 20
    return part, u, v, coarse


def test_densepose_loss_perfect_random_and_gradients():
    t = hand_targets(min_iou=0.0)
    for interpolation in ("bilinear", "nearest"):
        loss = densepose_loss(*perfect_predictions(t), t, interpolation=interpolation)
        assert all(val < 1e-6 for val in loss.values()), loss
    g = gen(4)
    preds = [torch.randn(2, c, S, S, generator=g, requires_grad=True) for c in (25, 24, 24, 15)]
    loss = densepose_loss(*preds, t)
    assert all(val > 0 for val in loss.values()), loss
    sum(loss.values()).backward()
    part_grad, u_grad = preds[0].grad, preds[1].grad
    assert part_grad[0].abs().sum() > 0 and (part_grad[1] == 0).all()  # RoI 1 is not valid
    # p0 (part 2, bilinear weights 0.5 / 0.5 on row 0) and p1 (part 24) are the only U sources
    assert (u_grad[0, 1, 0, :2] != 0).all() and (u_grad[0, 1, 1] == 0).all()
    assert u_grad[0].abs().sum() == u_grad[0, [1, 23]].abs().sum()
    assert (preds[3].grad[1] == 0).all() and preds[3].grad[0].abs().sum() > 0

    # Weights scale each term; 2-channel coarse logits take a binarised target.
    loss2 = densepose_loss(*preds, t, part_weight=2.0, uv_weight=0.0, segm_weight=1.0)
    assert torch.isclose(loss2["loss_dp_I"], 2 * loss["loss_dp_I"]) and loss2["loss_dp_U"] == 0
    assert torch.isclose(loss2["loss_dp_segm"] * 5.0, loss["loss_dp_segm"])
    two = densepose_loss(*preds[:3], torch.randn(2, 2, S, S), t)
    assert two["loss_dp_segm"] > 0


def test_bilinear_vs_nearest_sampling():
    t = hand_targets(min_iou=0.0)
    ramp = torch.arange(S, dtype=torch.float32).expand(2, 3, S, S)  # value = column index
    bil = _at_points(ramp, None, t, "bilinear")
    near = _at_points(ramp, None, t, "nearest")
    assert bil.shape == (2, 3)
    assert torch.allclose(bil[:, 0], torch.tensor([0.5, 4.0])) and near[:, 0].tolist() == [1.0, 4.0]
    assert torch.allclose(_at_points(ramp, torch.tensor([1, 2]), t, "bilinear"), torch.tensor([0.5, 4.0]))


def test_densepose_empty_cases_stay_in_graph():
    # No positive RoIs at all.
    t = densepose_targets(torch.zeros(0, 4), torch.zeros(0, dtype=torch.long), [], np.zeros((0, 256, 256), np.uint8),
                          np.zeros((0, 4), np.float32), S)
    assert t["coarse_segm"].shape == (0, S, S) and t["point_roi"].numel() == 0
    preds = [torch.randn(0, c, S, S, requires_grad=True) for c in (25, 24, 24, 15)]
    loss = densepose_loss(*preds, t)
    assert all(val == 0 and val.requires_grad for val in loss.values())
    sum(loss.values()).backward()

    # RoIs whose GT has no dp data: all zero, gradients all zero.
    t = densepose_targets(ROIS[1:], MATCHED[1:], POINTS, np.zeros((2, 256, 256), np.uint8), GT_BOX, S, min_iou=0.0)
    preds = [torch.randn(1, c, S, S, requires_grad=True) for c in (25, 24, 24, 15)]
    loss = densepose_loss(*preds, t)
    assert all(val == 0 and val.requires_grad for val in loss.values())
    sum(loss.values()).backward()
    assert all((p.grad == 0).all() for p in preds)

    # A valid RoI none of whose points falls inside: only the segmentation term.
    roi = torch.tensor([[10.0, 120, 60, 210]])  # lower-left quarter of gt0: no point there
    t = densepose_targets(roi, torch.tensor([0]), POINTS, np.ones((2, 256, 256), np.uint8), GT_BOX, S, min_iou=0.0)
    assert t["valid"].tolist() == [True] and t["point_roi"].numel() == 0 and (t["coarse_segm"] == 1).all()
    loss = densepose_loss(*[torch.randn(1, c, S, S, requires_grad=True) for c in (25, 24, 24, 15)], t)
    assert loss["loss_dp_I"] == 0 and loss["loss_dp_U"] == 0 and loss["loss_dp_segm"] > 0


def test_densepose_loss_checks_shapes():
    t = hand_targets(min_iou=0.0)
    with pytest.raises(EdgecapError, match="do not match"):
        densepose_loss(*[torch.randn(2, c, 8, 8) for c in (25, 24, 24, 15)], t)


def head_outputs(g: torch.Generator, r: int = 3, p: int = 2, requires_grad: bool = False) -> tuple[torch.Tensor, ...]:
    """Random raw head outputs in HeadsForward's order: 50 anchors, r box RoIs, p dense RoIs."""
    shapes = [(50,), (50, 4), (r, 2), (r, 4), (p, 25, S, S), (p, 24, S, S), (p, 24, S, S), (p, 15, S, S)]
    return tuple(torch.randn(*s, generator=g).requires_grad_(requires_grad) for s in shapes)


def test_distillation_losses_zero_at_match_and_pull_towards_the_teacher():
    g = gen(5)
    teacher = head_outputs(g)
    same = distillation_losses(tuple(t.clone() for t in teacher), teacher)
    assert set(same) == {"distill_rpn_cls", "distill_rpn_box", "distill_cls", "distill_box", "distill_dp_I",
                         "distill_dp_UV", "distill_dp_segm"}
    assert all(abs(float(v)) < 1e-5 for v in same.values()), same

    student = head_outputs(g, requires_grad=True)
    loss = distillation_losses(student, teacher)
    assert all(v > 0 for v in loss.values()), loss
    sum(loss.values()).backward()
    assert all(s.grad.abs().sum() > 0 for s in student)
    assert all(t.grad is None for t in teacher)  # the teacher is a fixed target
    # A small step along the gradient lowers every term.
    with torch.no_grad():
        moved = tuple(s - 0.05 * s.grad / s.grad.abs().max() for s in student)
    after = distillation_losses(moved, teacher)
    assert all(after[k] < loss[k] for k in loss), (after, loss)


def test_distillation_uv_counts_only_where_the_teacher_sees_the_part():
    g = gen(6)
    teacher = list(head_outputs(g))
    teacher[4] = torch.full((2, 25, S, S), -20.0)
    teacher[4][:, 3] = 20.0  # the teacher is sure every pixel is part 3 (u/v channel 2)
    student = [t.clone() for t in teacher]
    student[5] = student[5] + 0.5
    student[5][:, 2] = teacher[5][:, 2]  # the only channel that matters still matches
    assert float(distillation_losses(tuple(student), tuple(teacher))["distill_dp_UV"]) < 1e-6
    student[5][:, 2] += 0.1
    assert float(distillation_losses(tuple(student), tuple(teacher))["distill_dp_UV"]) == pytest.approx(10 * 0.01, rel=1e-3)


def test_distillation_without_rois_stays_in_graph():
    student = head_outputs(gen(7), r=0, p=0, requires_grad=True)
    loss = distillation_losses(student, head_outputs(gen(8), r=0, p=0))
    assert all(v.requires_grad for v in loss.values())
    assert all(float(loss[k]) == 0 for k in ("distill_cls", "distill_box", "distill_dp_I", "distill_dp_UV", "distill_dp_segm"))
    sum(loss.values()).backward()


def test_qat_rejects_an_unknown_objective():
    from edgecap.models.parsing_rcnn.train import qat_finetune

    with pytest.raises(EdgecapError, match=r"QAT objective must be one of \('distill', 'task'\), got 'mse'"):
        qat_finetune(None, None, 1, 1e-5, [], 4, progress=False, objective="mse")
