"""Cluster-NMS (Zheng et al. 2020, extending Fast NMS of Bolya et al.'s YOLACT) with static shapes.

Why hand-written: torchvision's `nms` is a custom op no mobile exporter knows, and greedy NMS
is a loop whose trip count and output length depend on the data. Cluster-NMS computes the
same keep set from the IoU matrix with a fixed number of matrix steps:
    keep_0 = 1;  keep_{t+1}[j] = [max_i keep_t[i] * IoU[i, j] * (i < j) <= threshold]
with candidates sorted by score. Step 1 is Fast NMS (which over-suppresses: a box removed by
an earlier box still suppresses later ones); each further step lets such boxes stop
suppressing. The fixed point is exactly greedy NMS, reached after as many steps as the
longest suppression chain; the export probe needed 6 on 20 clustered problems, 8 is the
default. No bool `&`; masks are floats and selections one-hot matmuls (the one gather reads
k scores, see `select_candidates`).

Ties (`tie_exact=True`, the default): candidates are ordered by score, then by lower input
index, in every backend (torch's own `topk` leaves the order of equal scores unspecified, and
int8 models produce many exact ties). Only `topk`'s values matter; each slot then picks, with
a one-hot row, the occurrence of its value that this order gives it. That costs
O(max_candidates * N): cheap for the box head's 100 proposals, 25M elements for an RPN's
1000 of 25,575 anchors, where `tie_exact=False` gathers the `topk` indices instead (tied
proposals may then come in another order on another backend; detections are compared at
task level anyway).

The (k, k) rank masks are built in the graph from two (k,) rank vectors and the input (see
`rank_masks`): as constants they would be 4 MB each at k = 1000, more than an int8 mobile
detector's weights.
"""

from __future__ import annotations

import torch
from torch import nn

from edgecap import EdgecapError
from edgecap.models.ops.boxes import box_iou


class ClusterNMS(nn.Module):
    """Single-class NMS: boxes (N, 4), scores (N,) -> boxes (D, 4), scores (D,), valid (D,).

    Keeps the top `max_candidates` (<= N) boxes by score, suppresses those with IoU >
    `iou_threshold` against a kept higher-ranked box (torchvision's rule), and returns the
    first D = `max_detections` survivors in score order. Unused slots have box 0, score 0
    and valid 0. Memory is O(max_candidates * N) for the tie-exact candidate selection.
    """

    def __init__(self, iou_threshold: float, max_candidates: int, max_detections: int, iterations: int = 8,
                 tie_exact: bool = True):
        super().__init__()
        if not 1 <= max_detections <= max_candidates:
            raise EdgecapError(
                f"ClusterNMS needs 1 <= max_detections <= max_candidates, got {max_detections}, {max_candidates}")
        if iterations < 1:
            raise EdgecapError(f"ClusterNMS needs iterations >= 1, got {iterations}")
        self.iou_threshold = iou_threshold
        self.max_candidates = max_candidates
        self.max_detections = max_detections
        self.iterations = iterations
        self.tie_exact = tie_exact
        rank = torch.arange(max_candidates, dtype=torch.float32)
        self.register_buffer("rank_row", rank.view(1, -1), persistent=False)
        self.register_buffer("rank_col", rank.view(-1, 1), persistent=False)
        self.register_buffer("slots", torch.arange(max_detections, dtype=torch.float32).view(-1, 1), persistent=False)

    def rank_masks(self, data: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """upper [i, j] = 1 where i ranks above j (i < j), and upper_incl (i <= j), both (k, k).
        `data` is any finite input tensor: adding relu(-|data[0]|) (= 0) makes the masks depend
        on the input, so converters that fold constant subgraphs (LiteRT, Core ML) cannot turn
        them into two (k, k) constants (8 MB at k = 1000) and compute them at run time instead.
        (LiteRT simplifies `data * 0`, and Core ML `clamp(data, 0, 0)`, to a constant 0.)"""
        row = self.rank_row + torch.relu(-data.reshape(-1)[:1].abs())
        upper = (self.rank_col < row).to(row.dtype)
        return upper, (self.rank_col <= row).to(row.dtype)

    def select_candidates(self, boxes: torch.Tensor, scores: torch.Tensor,
                          upper: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Top-k by (score desc, index asc): -> boxes (k, 4), scores (k,)."""
        top = scores.topk(self.max_candidates)  # sorted values; the indices' tie order is unspecified
        if not self.tie_exact:
            return boxes.index_select(0, top.indices), scores.index_select(0, top.indices)
        # = top.values: LiteRT lowers a topk whose indices go unused to STABLEHLO_SORT, which
        # its runtime lacks; reading the values through the indices keeps TOPK_V2.
        values = scores.index_select(0, top.indices)  # (k,)
        dtype = scores.dtype
        same = (values[None, :] == values[:, None]).to(dtype)  # (k, k)
        earlier_same = (same * upper.transpose(0, 1)).sum(1, keepdim=True)  # (k, 1) earlier slots with this value
        match = (scores[None, :] == values[:, None]).to(dtype)  # (k, N)
        nth = match.cumsum(1)  # (k, N) running count of matches in index order
        onehot = match * torch.relu(1.0 - (nth - earlier_same - 1.0).abs())  # (k, N)
        return torch.bmm(onehot.unsqueeze(0), boxes.unsqueeze(0)).squeeze(0), values

    def forward(self, boxes: torch.Tensor, scores: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if scores.shape[0] < self.max_candidates:
            raise EdgecapError(f"ClusterNMS: {scores.shape[0]} boxes but max_candidates={self.max_candidates}")
        upper, upper_incl = self.rank_masks(scores)
        cand_boxes, cand_scores = self.select_candidates(boxes, scores, upper)
        iou = box_iou(cand_boxes, cand_boxes) * upper  # (k, k), [i, j]: higher-ranked i vs j
        keep = torch.ones_like(cand_scores).unsqueeze(1)  # (k, 1)
        for _ in range(self.iterations):  # static unroll
            suppression = (keep * iou).amax(0)  # (k,) max IoU with a kept higher-ranked box
            keep = (suppression <= self.iou_threshold).to(iou.dtype).unsqueeze(1)
        # Survivor j goes to slot (number of survivors ranked <= j) - 1; cumsum as a matmul.
        rank = torch.bmm(keep.transpose(0, 1).unsqueeze(0), upper_incl.unsqueeze(0)).squeeze(0)  # (1, k)
        to_slot = keep.transpose(0, 1) * torch.relu(1.0 - (rank - 1.0 - self.slots).abs())  # (D, k) one-hot rows
        out_boxes = torch.bmm(to_slot.unsqueeze(0), cand_boxes.unsqueeze(0)).squeeze(0)
        out_scores = (to_slot * cand_scores).sum(1)
        return out_boxes, out_scores, to_slot.sum(1)
