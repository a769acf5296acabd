"""The two-graph form of Parsing R-CNN: a detector graph and a per-RoI DensePose head graph.

Why: a backend that cannot take the whole graph can take the halves, and an app pays for the
DensePose head once per person found instead of always for all D slots (the whole graph
runs the head on every slot, empty ones included).

    detector: image (1, 3, S, S) -> boxes (D, 4), scores (D,), features_p2[, _p3, ...]
              (the pyramid levels the DensePose head pools from)
    dense:    features_p2[, ...], box (1, 4) -> part_logits (1, 25, M, M), u, v (1, 24, M, M),
              coarse_logits (1, 15, M, M)

Each part holds only the submodules it runs, under the same names as in ParsingRCNN, so
`float_modules` and weight names carry over, and it reuses ParsingRCNN's own methods (they
only read those attributes), so the split computes exactly what the whole model computes.
`edgecap.models.parsing_rcnn.app.PartsRunner` runs the dense graph for each kept box and returns the
whole model's outputs, so callers see one model.
"""

from __future__ import annotations

import torch
from torch import nn

from edgecap.models.parsing_rcnn.model import PYRAMID_STRIDES, ParsingRCNN

PARTS = ("detector", "dense")
BOX_INPUT = "box"


def feature_names(model: ParsingRCNN) -> list[str]:
    """Names of the detector's feature outputs: the dense head's pyramid levels (P2 = stride 4)."""
    levels = range(len(PYRAMID_STRIDES))[model.dense_level_slice]
    return [f"features_p{level + 2}" for level in levels]


class DetectorPart(nn.Module):
    """image -> boxes, scores, and the dense head's pyramid levels."""

    features = ParsingRCNN.features
    proposals = ParsingRCNN.proposals
    box_outputs = ParsingRCNN.box_outputs
    detect = ParsingRCNN.detect

    def __init__(self, model: ParsingRCNN):
        super().__init__()
        self.config = model.config
        self.backbone, self.neck, self.rpn = model.backbone, model.neck, model.rpn
        self.box_pooler, self.box_head, self.box_decoder, self.box_nms, self.empty_slots = (
            model.box_pooler, model.box_head, model.box_decoder, model.box_nms, model.empty_slots)
        self.dense_level_slice = model.dense_level_slice

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, ...]:
        f = self.features(image)
        boxes, scores = self.detect(f, *self.proposals(f))
        return (boxes, scores, *f[self.dense_level_slice])


class DensePart(nn.Module):
    """The dense head's pyramid levels and one box (1, 4) -> that box's DensePose maps."""

    def __init__(self, model: ParsingRCNN):
        super().__init__()
        self.config = model.config
        self.dense_pooler, self.dense_head, self.dense_predictor = (
            model.dense_pooler, model.dense_head, model.dense_predictor)

    def forward(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        features, box = list(inputs[:-1]), inputs[-1]
        x = self.dense_head(self.dense_pooler(features, box))
        return tuple(self.dense_predictor(x))


def split_model(model: ParsingRCNN) -> dict[str, tuple[nn.Module, list[str], list[str]]]:
    """{part: (module, input names, output names)} of an (export-form) model."""
    feats = feature_names(model)
    return {
        "detector": (DetectorPart(model).eval(), ["image"], ["boxes", "scores", *feats]),
        "dense": (DensePart(model).eval(), [*feats, BOX_INPUT], ["part_logits", "u", "v", "coarse_logits"]),
    }
