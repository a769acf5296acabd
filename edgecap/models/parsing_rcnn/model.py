"""Parsing R-CNN family (DensePose R-CNN, Parsing R-CNN, Mobile Parsing R-CNN A/B) with static shapes.

Inference, `ParsingRCNN.forward(image (1, 3, H, W) float32 normalised)`:
    backbone -> neck [P2..P6]
    -> RPN: objectness + deltas on constant anchors, top-k, decode, clip, Cluster-NMS -> P proposals
    -> multi-level RoIAlign (P2-P5, 7x7) -> box head -> decode, clip, score threshold, Cluster-NMS
    -> D = max_detections boxes (empty slots: score 0, box 0)
    -> RoI pooling of the D boxes (P2, or P2-P5 with the FPN level mapping) -> DensePose head
returns boxes (D, 4) xyxy px, scores (D,), part_logits (D, 25, S, S), u (D, 24, S, S),
v (D, 24, S, S), coarse_logits (D, 15, S, S) with S = 2 * dense RoI size. No Python control flow
depends on tensor values; every shape is fixed by the config.

Training uses the pieces as methods on one image at a time (batch 1; loop over images):
`features`, `rpn_outputs` with `anchors`, `proposals`, `box_outputs`, `dense_outputs`, and
the box coders `rpn.decoder.box_coder` (weights 1, 1, 1, 1) and `box_decoder.box_coder` (10, 10, 5, 5).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from edgecap import EdgecapError
from edgecap.models.backbones import build_backbone
from edgecap.core.arrays import TensorSpec
from edgecap.models.ops import AnchorGenerator, BoxCoder, ClusterNMS, MultiLevelRoIAlign, RoIAlign, RoIPool
from edgecap.models.parsing_rcnn.config import PRESETS, ParsingRCNNConfig
from edgecap.models.parsing_rcnn.heads import (
    ASPP, ConvBoxHead, DensePoseASPPHead, DensePoseConvHead, DensePosePredictor, LinearBoxHead, RPNHead,
)
from edgecap.models.parsing_rcnn.necks import FPN, BiFPN

PYRAMID_STRIDES = (4, 8, 16, 32, 64)  # P2..P6
BOX_LEVELS = 4  # the box head pools from P2-P5


def clip_boxes(boxes: torch.Tensor, image_max: torch.Tensor) -> torch.Tensor:
    """(K, 4) xyxy -> clipped to [0, W] x [0, H]; image_max = [W, H, W, H] (4,) buffer."""
    return torch.minimum(boxes.clamp(min=0.0), image_max)


def nonempty(boxes: torch.Tensor) -> torch.Tensor:
    """(K, 4) -> (K,) float: 1 where the box has positive width and height."""
    # Float product, not bool `&` (Core ML's torch.export frontend rejects __and__).
    size = boxes[:, 2:4] - boxes[:, 0:2]
    return (size[:, 0] > 0).to(boxes.dtype) * (size[:, 1] > 0).to(boxes.dtype)


class MultiLevelRoIPool(MultiLevelRoIAlign):
    """MultiLevelRoIAlign's FPN level mapping and one-hot level mask, with RoIPool at each level.

    features [(1, C, H_l, W_l)], boxes (K, 4) image px -> (K, C, S, S).
    """

    def __init__(self, output_size: int, strides: Sequence[int]):
        super().__init__(output_size, strides)
        self.poolers = nn.ModuleList(RoIPool(output_size, 1.0 / s) for s in strides)


class Pooler(nn.Module):
    """RoI pooling from a list of pyramid levels: the plain op for one level, the FPN level
    mapping (Lin et al. 2017) for several. features [(1, C, H_l, W_l)], boxes (K, 4) px -> (K, C, S, S).

    kind: "roialign" (sampling_ratio samples per bin and axis, `aligned` half-pixel shift) or "roipool".
    """

    def __init__(self, kind: str, output_size: int, strides: Sequence[int], sampling_ratio: int = 2,
                 aligned: bool = True):
        super().__init__()
        self.kind, self.output_size, self.multilevel = kind, output_size, len(strides) > 1
        if kind not in ("roialign", "roipool"):
            raise EdgecapError(f"Pooler kind must be 'roialign' or 'roipool', got {kind!r}")
        if self.multilevel:
            self.op = (MultiLevelRoIAlign(output_size, strides, sampling_ratio, aligned=aligned) if kind == "roialign"
                       else MultiLevelRoIPool(output_size, strides))
        else:
            self.op = (RoIAlign(output_size, 1.0 / strides[0], sampling_ratio, aligned) if kind == "roialign"
                       else RoIPool(output_size, 1.0 / strides[0]))

    def forward(self, features: Sequence[torch.Tensor], boxes: torch.Tensor) -> torch.Tensor:
        return self.op(features, boxes) if self.multilevel else self.op(features[0], boxes)


class _ClippedDecoder(nn.Module):
    """Shared part of the two decoders: a box coder and clipping to the image. Parameter-free;
    each decoder is a module of its own so int8 flows keep the box arithmetic in fp32
    (`float_modules`: PT2E tells modules apart only by their forward calls)."""

    def __init__(self, weights: tuple[float, float, float, float], image_size: tuple[int, int]):
        super().__init__()
        self.box_coder = BoxCoder(weights)
        h, w = image_size
        self.register_buffer("image_max", torch.tensor([w, h, w, h], dtype=torch.float32), persistent=False)

    def decode(self, deltas: torch.Tensor, references: torch.Tensor) -> torch.Tensor:
        return clip_boxes(self.box_coder.decode(deltas, references), self.image_max)


class ProposalDecoder(_ClippedDecoder):
    """RPN outputs -> the top `k` anchors as clipped boxes (k, 4) and probabilities (k,), 0 for
    empty boxes."""

    def __init__(self, k: int, image_size: tuple[int, int]):
        super().__init__((1.0, 1.0, 1.0, 1.0), image_size)
        self.k = k

    def forward(self, objectness: torch.Tensor, deltas: torch.Tensor,
                anchors: AnchorGenerator) -> tuple[torch.Tensor, torch.Tensor]:
        top = objectness.topk(self.k)
        # index_select gathers the k chosen delta rows (a one-hot matmul would need a (k, A)
        # matrix, 25M entries at 320x320); the k anchors are computed from the indices.
        boxes = self.decode(deltas.index_select(0, top.indices), anchors.select(top.indices))
        return boxes, torch.sigmoid(top.values) * nonempty(boxes)


class DetectionDecoder(_ClippedDecoder):
    """Box-head outputs on the proposals -> clipped boxes (P, 4) and person probabilities (P,),
    zero for empty proposals, empty boxes and scores under `score_threshold` (fp32: a quantized
    softmax also fails LiteRT's int8 kernel check, "output->params.scale not near 1.f / 256")."""

    def __init__(self, score_threshold: float, image_size: tuple[int, int]):
        super().__init__((10.0, 10.0, 5.0, 5.0), image_size)
        self.score_threshold = score_threshold

    def forward(self, class_logits: torch.Tensor, deltas: torch.Tensor, proposals: torch.Tensor,
                proposal_scores: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        boxes = self.decode(deltas, proposals)
        scores = torch.softmax(class_logits, dim=1)[:, 1]
        # Float masks instead of boolean indexing keep the number of candidates static.
        scores = scores * (proposal_scores > 0).to(scores.dtype) * nonempty(boxes)
        return boxes, scores * (scores > self.score_threshold).to(scores.dtype)


class EmptySlots(nn.Module):
    """Zero the boxes of output slots whose score is 0 (fp32, like the NMS before it)."""

    def forward(self, boxes: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        return boxes * (scores > 0).to(boxes.dtype).unsqueeze(1)


class RegionProposalNetwork(nn.Module):
    """RPN for one static image size.

    outputs(features [P2..P6] of one image) -> objectness logits (A,), deltas (A, 4) for `anchors` (A, 4).
    forward(features) -> proposals (P, 4) xyxy px, scores (P,) in (0, 1); empty slots have box 0,
    score 0. Steps: top `pre_nms_topk` anchors by objectness over all levels, decode, clip to the
    image, zero the scores of empty boxes, Cluster-NMS keeping `post_nms_topk` = P.
    """

    def __init__(self, head: RPNHead, anchor_generator: AnchorGenerator, image_size: tuple[int, int],
                 pre_nms_topk: int = 1000, post_nms_topk: int = 100, nms_iou: float = 0.7):
        super().__init__()
        self.head, self.anchor_generator = head, anchor_generator
        self.pre_nms_topk = min(pre_nms_topk, anchor_generator.num_anchors)
        self.decoder = ProposalDecoder(self.pre_nms_topk, image_size)
        # tie_exact=False: the tie-exact selection would compare 1000 x A (25,575 at 320) scores.
        self.nms = ClusterNMS(nms_iou, self.pre_nms_topk, post_nms_topk, tie_exact=False)

    @property
    def anchors(self) -> torch.Tensor:
        return self.anchor_generator.anchors

    def outputs(self, features: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        if features[0].shape[0] != 1:
            raise EdgecapError(f"RPN takes one image's features (batch 1), got batch {features[0].shape[0]}")
        objectness, deltas = self.head(features)
        return objectness[0], deltas[0]

    def forward(self, features: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        boxes, scores = self.decoder(*self.outputs(features), self.anchor_generator)
        boxes, scores, _ = self.nms(boxes, scores)
        return boxes, scores


class ParsingRCNN(nn.Module):
    """Two-stage DensePose detector assembled from parts (torchvision style).

    backbone: image (N, 3, H, W) -> [C2..C5]; neck: -> [P2..P6] (N, C, H/s, W/s), s = 4..64;
    rpn: RegionProposalNetwork; box_head: (R, C, 7, 7) -> class_logits (R, 2), box_deltas (R, 4);
    dense_head: (R, C, S0, S0) -> (R, dense_head.out_channels, S0, S0). Parts left out default
    from `config`: dense_predictor (DensePosePredictor), box_pooler (RoIAlign over P2-P5),
    dense_pooler (config.dense_pooling over config.dense_levels).
    """

    input_names = ("image",)
    output_names = ("boxes", "scores", "part_logits", "u", "v", "coarse_logits")

    def __init__(self, backbone: nn.Module, neck: nn.Module, rpn: RegionProposalNetwork, box_head: nn.Module,
                 dense_head: nn.Module, config: ParsingRCNNConfig, dense_predictor: nn.Module | None = None,
                 box_pooler: nn.Module | None = None, dense_pooler: nn.Module | None = None):
        super().__init__()
        self.config = cfg = config
        self.backbone, self.neck, self.rpn, self.box_head, self.dense_head = backbone, neck, rpn, box_head, dense_head
        self.dense_predictor = dense_predictor or DensePosePredictor(dense_head.out_channels)
        self.box_pooler = box_pooler or Pooler("roialign", cfg.box_roi_size, PYRAMID_STRIDES[:BOX_LEVELS],
                                               cfg.sampling_ratio, cfg.box_roi_aligned)
        self.dense_level_slice = slice(cfg.dense_levels[0] - 2, cfg.dense_levels[-1] - 1)
        self.dense_pooler = dense_pooler or Pooler(cfg.dense_pooling, cfg.dense_roi_size,
                                                   PYRAMID_STRIDES[self.dense_level_slice], cfg.sampling_ratio)
        self.box_decoder = DetectionDecoder(cfg.box_score_threshold, cfg.image_size)
        self.box_nms = ClusterNMS(cfg.box_nms_iou, rpn.nms.max_detections, cfg.max_detections)  # P -> D
        self.empty_slots = EmptySlots()

    def input_spec(self) -> dict[str, TensorSpec]:
        return {"image": TensorSpec((1, 3) + self.config.image_size)}

    def unshare(self) -> ParsingRCNN:
        """Before PT2E int8 (outputs unchanged): give each pyramid level its own RPN head copy,
        and each DensePose output map its own predictor deconv (so its own int8 scale)."""
        self.rpn.head.unshare()
        if hasattr(self.dense_predictor, "separate"):
            self.dense_predictor.separate()
        return self

    # -- pieces (also the training interface) ---------------------------------------------------

    @property
    def anchors(self) -> torch.Tensor:
        """(A, 4) xyxy px, the order of `rpn_outputs`."""
        return self.rpn.anchors

    def features(self, image: torch.Tensor) -> list[torch.Tensor]:
        """(N, 3, H, W) -> [P2, P3, P4, P5, P6], P_l (N, C, H / 2^l, W / 2^l)."""
        return self.neck(self.backbone(image))

    def rpn_outputs(self, features: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """One image's features -> objectness logits (A,), box deltas (A, 4) relative to `anchors`."""
        return self.rpn.outputs(features)

    def proposals(self, features: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """One image's features -> proposals (P, 4) xyxy px, scores (P,); empty slots are 0."""
        return self.rpn(features)

    def box_outputs(self, features: Sequence[torch.Tensor], rois: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One image's features, rois (R, 4) px -> class_logits (R, 2) [background, person],
        box_deltas (R, 4) relative to the rois (decode with `box_decoder.box_coder`)."""
        return self.box_head(self.box_pooler(features[:BOX_LEVELS], rois))

    def dense_outputs(self, features: Sequence[torch.Tensor], rois: torch.Tensor) -> dict[str, torch.Tensor]:
        """One image's features, rois (R, 4) px -> part_logits (R, 25, S, S), u (R, 24, S, S),
        v (R, 24, S, S), coarse_logits (R, 15, S, S), each map stretched over its roi."""
        x = self.dense_head(self.dense_pooler(features[self.dense_level_slice], rois))
        part_logits, u, v, coarse_logits = self.dense_predictor(x)
        return {"part_logits": part_logits, "u": u, "v": v, "coarse_logits": coarse_logits}

    def detect(self, features: Sequence[torch.Tensor], proposals: torch.Tensor,
               proposal_scores: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Box head on the proposals -> boxes (D, 4) xyxy px, scores (D,) person probability, sorted.

        Empty proposals (score 0), scores under `box_score_threshold` and empty boxes score 0;
        slots left after NMS have score 0 and box 0.
        """
        boxes, scores = self.box_decoder(*self.box_outputs(features, proposals), proposals, proposal_scores)
        boxes, scores, _ = self.box_nms(boxes, scores)
        return self.empty_slots(boxes, scores), scores

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """image (1, 3, H, W) -> boxes (D, 4), scores (D,), part_logits (D, 25, S, S), u (D, 24, S, S),
        v (D, 24, S, S), coarse_logits (D, 15, S, S)."""
        features = self.features(image)
        boxes, scores = self.detect(features, *self.proposals(features))
        dense = self.dense_outputs(features, boxes)
        return boxes, scores, dense["part_logits"], dense["u"], dense["v"], dense["coarse_logits"]


def build_parsing_rcnn(cfg: ParsingRCNNConfig | str) -> ParsingRCNN:
    """Build a model from a config or a preset name ("densepose_rcnn", "parsing_rcnn", "mobile_a", "mobile_b")."""
    if isinstance(cfg, str):
        if cfg not in PRESETS:
            raise EdgecapError(f"unknown Parsing R-CNN preset {cfg!r}; available: {sorted(PRESETS)}")
        cfg = PRESETS[cfg]
    cfg.validate()
    backbone = build_backbone(cfg.backbone)
    c = cfg.neck_channels
    neck = (FPN(backbone.out_channels, c) if cfg.neck == "fpn"
            else BiFPN(backbone.out_channels, c, cfg.bifpn_repeats))
    anchor_generator = AnchorGenerator(PYRAMID_STRIDES, [[s] for s in cfg.anchor_sizes], cfg.anchor_ratios,
                                       cfg.image_size)
    rpn_head = RPNHead(c, anchor_generator.num_anchors_per_location[0], len(PYRAMID_STRIDES), cfg.share_rpn_head)
    rpn = RegionProposalNetwork(rpn_head, anchor_generator, cfg.image_size, cfg.rpn_pre_nms_topk,
                                cfg.rpn_post_nms_topk, cfg.rpn_nms_iou)
    box_head = (LinearBoxHead(c, cfg.box_roi_size, cfg.box_head_channels) if cfg.box_head == "linear"
                else ConvBoxHead(c, cfg.box_head_channels))
    if cfg.dense_head == "conv":
        dense_head = DensePoseConvHead(c, cfg.dense_channels, cfg.dense_convs)
    else:
        aspp = ASPP(c, cfg.dense_aspp_channels, cfg.dense_channels, cfg.dense_aspp_dilations)
        dense_head = DensePoseASPPHead(aspp, cfg.dense_non_local, cfg.dense_convs)
    return ParsingRCNN(backbone, neck, rpn, box_head, dense_head, cfg)
