"""Training of Parsing R-CNN: per-image targets, the loss module DDP wraps, and QAT.

One image's step: RPN targets for the anchors, box-head RoIs sampled from the proposals plus
the GT boxes, up to `max_dense_rois` of those RoIs for the DensePose head, then the losses of
`losses.py`. `plan_image` does the target side (it draws from torch's global RNG, which the
training loop checkpoints), so float training and QAT share it exactly.

QAT (`qat_finetune`): PT2E QAT needs one exportable forward, and the detector's training
path is per image with data-dependent RoI sets. `HeadsForward` is that path with static
shapes: image + RoIs padded to fixed counts -> raw RPN, box and DensePose head outputs. The
RoIs come from the float model's proposals (eager, no grad); the fake-quantized graph
computes the heads, and by default it learns to match the float model's outputs on them
(distillation): fine-tuning on the task losses moved the trained DensePose head in float
(GPSm 0.134 -> 0.125 in 300 steps on a 3000-step run); distillation at the family's lr keeps
the float APs. Neither beat PTQ's artifacts on a 4500-step run (README). Weights are then
copied back by name; the RPN head's per-level copies train as one head.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from edgecap import EdgecapError
from edgecap.data.densepose_coco import DensePoseSample
from edgecap.models.parsing_rcnn.losses import box_loss, densepose_loss, distillation_losses, rpn_loss
from edgecap.models.parsing_rcnn.model import ParsingRCNN
from edgecap.models.parsing_rcnn.targets import densepose_targets, matched_iou, rpn_targets, sample_proposals

DENSE_MIN_IOU = 0.7  # detectron2 ROI_DENSEPOSE_HEAD.FG_IOU_THRESHOLD, also densepose_targets' default
BOX_ROIS = 128  # sample_proposals' num_samples: RoIs per image for the box head


@dataclass
class ImagePlan:
    """Targets of one image: RPN labels/regression for every anchor, the box-head RoIs with
    labels/regression, the DensePose RoIs (rows of `rois`) and their DensePose targets."""

    rpn_labels: torch.Tensor
    rpn_reg: torch.Tensor
    rois: torch.Tensor
    labels: torch.Tensor
    reg: torch.Tensor
    dense_rois: torch.Tensor
    dense_targets: dict


def dense_roi_indices(rois, labels, matched, gt, has_dp, max_rois: int) -> torch.Tensor:
    """Indices of up to max_rois RoIs for the DensePose head, drawn at random among those that
    get DensePose terms (person, IoU >= DENSE_MIN_IOU with a GT that has dp points). Taking
    the first positives instead wastes most of the head's batch on RoIs whose IoU is in
    [0.5, 0.7) and which `densepose_targets` then marks invalid."""
    ok = (labels == 1) & has_dp.to(rois.device)[matched]
    if len(gt):
        ok &= matched_iou(rois, gt.to(rois.device).float()[matched]) >= DENSE_MIN_IOU
    idx = torch.nonzero(ok).flatten()
    return idx[torch.randperm(len(idx))[:max_rois]]


def plan_image(model: ParsingRCNN, sample: DensePoseSample, scale: float, proposals: torch.Tensor,
               max_dense_rois: int) -> ImagePlan:
    """Targets of one letterboxed image (scale = letterbox factor) given its proposals (P, 4)."""
    gt = torch.from_numpy(sample.boxes * scale)
    rpn_labels, rpn_reg = rpn_targets(model.anchors, gt)
    rois, labels, matched, reg = sample_proposals(proposals, gt, num_samples=BOX_ROIS)
    has_dp = torch.from_numpy(sample.has_dp)
    pos = dense_roi_indices(rois, labels, matched, gt, has_dp, max_dense_rois)
    points = [torch.from_numpy(p * np.array([scale, scale, 1, 1, 1], np.float32)) for p in sample.points]
    targets = densepose_targets(rois[pos], matched[pos], points, torch.from_numpy(sample.coarse_masks), gt,
                                model.config.dense_output_size, gt_has_dp=has_dp)
    return ImagePlan(rpn_labels, rpn_reg, rois, labels, reg, rois[pos], targets)


def image_losses(plan: ImagePlan, rpn: tuple, box: tuple, dense: tuple) -> dict[str, torch.Tensor]:
    """rpn = (objectness, deltas), box = (class_logits, deltas) of plan.rois, dense =
    (part_logits, u, v, coarse_logits) of plan.dense_rois -> the named losses."""
    losses = rpn_loss(*rpn, plan.rpn_labels, plan.rpn_reg)
    losses.update(box_loss(*box, plan.labels, plan.reg))
    losses.update(densepose_loss(*dense, plan.dense_targets))
    return losses


class ParsingRCNNTrainer(nn.Module):
    """forward(images, samples) -> total loss; wraps the model so DDP sees one forward."""

    def __init__(self, model: ParsingRCNN, max_dense_rois: int):
        super().__init__()
        self.model, self.max_dense_rois = model, max_dense_rois
        self.last_losses: dict[str, float] = {}

    def forward(self, images: torch.Tensor, samples: list[tuple[DensePoseSample, float]]) -> torch.Tensor:
        m = self.model
        feats = m.features(images)
        total, parts = images.new_zeros(()), {}
        for i, (sample, scale) in enumerate(samples):
            f = [level[i : i + 1] for level in feats]
            rpn = m.rpn_outputs(f)
            with torch.no_grad():
                proposals, scores = m.proposals([x.detach() for x in f])
            plan = plan_image(m, sample, scale, proposals[scores > 0], self.max_dense_rois)
            dense = m.dense_outputs(f, plan.dense_rois)
            losses = image_losses(plan, rpn, m.box_outputs(f, plan.rois),
                                  (dense["part_logits"], dense["u"], dense["v"], dense["coarse_logits"]))
            for k, v in losses.items():
                total = total + v / len(samples)
                parts[k] = parts.get(k, 0.0) + float(v.detach()) / len(samples)
        self.last_losses = parts
        return total


class HeadsForward(nn.Module):
    """The training path with static shapes, for PT2E QAT: image (1, 3, S, S), box RoIs
    (BOX_ROIS, 4) and dense RoIs (max_dense_rois, 4), both zero-padded -> objectness, RPN
    deltas, class logits, box deltas, part logits, u, v, coarse logits (padded rows too)."""

    def __init__(self, model: ParsingRCNN):
        super().__init__()
        self.model = model

    def forward(self, image: torch.Tensor, rois: torch.Tensor, dense_rois: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return head_outputs(self.model, self.model.features(image), rois, dense_rois)


def head_outputs(m: ParsingRCNN, f: list[torch.Tensor], rois: torch.Tensor,
                 dense_rois: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """HeadsForward's outputs from features `f` already computed (the float teacher's, in QAT)."""
    objectness, deltas = m.rpn_outputs(f)
    class_logits, box_deltas = m.box_outputs(f, rois)
    d = m.dense_outputs(f, dense_rois)
    return objectness, deltas, class_logits, box_deltas, d["part_logits"], d["u"], d["v"], d["coarse_logits"]


def _unpadded(outputs: tuple[torch.Tensor, ...], r: int, p: int) -> tuple[torch.Tensor, ...]:
    """HeadsForward outputs without the padded RoI rows: r box RoIs, p dense RoIs."""
    return (outputs[0], outputs[1], outputs[2][:r], outputs[3][:r], *(o[:p] for o in outputs[4:]))


def _pad(rows: torch.Tensor, n: int) -> torch.Tensor:
    """(k, 4) boxes -> (n, 4): a dummy 16 px box fills the rest (its outputs are dropped)."""
    if rows.shape[0] > n:
        raise EdgecapError(f"QAT: {rows.shape[0]} RoIs, the static graph takes {n}")
    fill = torch.tensor([[0.0, 0.0, 16.0, 16.0]]).expand(n - rows.shape[0], 4)
    return torch.cat([rows.float(), fill])


QAT_OBJECTIVES = ("distill", "task")


def qat_finetune(model: ParsingRCNN, sample_batch, steps: int, lr: float, float_modules: list[str],
                 max_dense_rois: int, progress: bool = True, objective: str = "distill") -> ParsingRCNN:
    """Fine-tune the export-form `model` under int8 fake quantization (XNNPACK scheme, minus
    `float_modules`); returns a float copy with the new weights.
    `sample_batch(step)` -> (images (1, 3, S, S) numpy, [(DensePoseSample, scale)]).
    objective "distill": match the float model's head outputs (`distillation_losses`);
    "task": the training losses against the ground truth."""
    import copy

    from torchao.quantization.pt2e import move_exported_model_to_eval
    from torchao.quantization.pt2e.quantize_pt2e import prepare_qat_pt2e
    from edgecap.core.console import progress as progress_bar

    from edgecap.quantization.pt2e import xnnpack_quantizer
    from edgecap.quantization.qat import copy_trained_weights, optimizer_step

    if steps < 1 or lr <= 0:
        raise EdgecapError(f"QAT needs steps >= 1 and lr > 0, got steps={steps}, lr={lr}")
    if objective not in QAT_OBJECTIVES:
        raise EdgecapError(f"QAT objective must be one of {QAT_OBJECTIVES}, got {objective!r}")
    teacher = copy.deepcopy(model).eval()  # proposals (and with "distill" the targets) come from the float model
    size = model.config.input_size
    example = (torch.zeros(1, 3, size, size), _pad(torch.zeros(0, 4), BOX_ROIS), _pad(torch.zeros(0, 4), max_dense_rois))
    try:
        gm = torch.export.export(HeadsForward(copy.deepcopy(model).eval()), example).module()
        gm = prepare_qat_pt2e(gm, xnnpack_quantizer([f"model.{m}" for m in float_modules], is_qat=True))
    except Exception as e:
        raise EdgecapError(f"QAT: export/prepare_qat_pt2e of Parsing R-CNN failed: {type(e).__name__}: {e}") from e
    move_exported_model_to_eval(gm)  # no BN left (folded); keeps observers updating
    opt = torch.optim.Adam([p for p in gm.parameters() if p.requires_grad], lr=lr)
    tied = rpn_level_copies(dict(gm.named_parameters()))
    for step in progress_bar(range(steps), desc="QAT", disable=not progress):
        images, samples = sample_batch(step)
        total = torch.zeros(())
        for i, (sample, scale) in enumerate(samples):
            image = torch.from_numpy(images[i : i + 1])
            with torch.no_grad():
                features = teacher.features(image)
                proposals, scores = teacher.proposals(features)
            plan = plan_image(teacher, sample, scale, proposals[scores > 0], max_dense_rois)
            r, p = plan.rois.shape[0], plan.dense_rois.shape[0]
            inputs = (image, _pad(plan.rois, BOX_ROIS), _pad(plan.dense_rois, max_dense_rois))
            out = _unpadded(gm(*inputs), r, p)
            if objective == "task":
                losses = image_losses(plan, out[:2], out[2:4], out[4:])
            else:
                with torch.no_grad():  # the teacher's features serve its proposals and its targets
                    reference = _unpadded(head_outputs(teacher, features, *inputs[1:]), r, p)
                losses = distillation_losses(out, reference)
            total = total + sum(losses.values()) / len(samples)
        optimizer_step(opt, total, step, steps, lr, gm, tied)
    return copy_trained_weights(model, gm.model)


def rpn_level_copies(named: dict[str, nn.Parameter]) -> list[list[nn.Parameter]]:
    """The export form's per-level copies of the shared RPN head (`RPNHead.unshare`), grouped
    by weight. QAT keeps each group equal: it stays one head, as trained, and the exporters
    store equal constants once (fine-tuned apart, they cost +0.16 MB in ExecuTorch int8)."""
    groups: dict[str, list[nn.Parameter]] = {}
    for name, p in named.items():
        m = re.search(r"(^|\.)rpn\.head\.levels\.\d+\.", name)
        if m:
            groups.setdefault(name[: m.start()] + "rpn.head.levels.*." + name[m.end():], []).append(p)
    return [g for g in groups.values() if len(g) > 1]
