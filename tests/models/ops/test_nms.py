"""ClusterNMS against plain greedy NMS on clustered detections, ties, and export."""

import numpy as np
import onnxruntime as ort
import pytest
import torch

from edgecap.models.ops import ClusterNMS, box_iou


def greedy_nms(boxes, scores, iou_threshold, max_candidates):
    """Kept indices in order: sort by (score desc, index asc), keep the top `max_candidates`,
    suppress IoU > threshold against every kept box. IoU from box_iou (tested in test_boxes),
    so both sides compare identical float32 values against the threshold."""
    order = sorted(range(len(scores)), key=lambda i: (-float(scores[i]), i))[:max_candidates]
    iou = box_iou(boxes, boxes)
    kept = []
    for i in order:
        if all(iou[i, j] <= iou_threshold for j in kept):
            kept.append(i)
    return kept


def clustered_problem(seed, n=150, clusters=6, image=(240, 320)):
    """Detector-like output: several people, each with a crowd of jittered overlapping boxes."""
    g = torch.Generator().manual_seed(seed)
    h, w = image
    centre = torch.rand(clusters, 2, generator=g) * torch.tensor([w, h])
    size = 30 + torch.rand(clusters, 2, generator=g) * 90
    member = torch.randint(0, clusters, (n,), generator=g)
    c = centre[member] + torch.randn(n, 2, generator=g) * size[member] * 0.15
    s = size[member] * (1 + 0.2 * torch.randn(n, 2, generator=g)).clamp(0.5, 1.5)
    boxes = torch.cat([c - s / 2, c + s / 2], dim=1)
    return boxes, torch.rand(n, generator=g)


def check_against_greedy(nms, boxes, scores):
    kept = greedy_nms(boxes, scores, nms.iou_threshold, nms.max_candidates)[: nms.max_detections]
    out_boxes, out_scores, valid = nms(boxes, scores)
    d = len(kept)
    assert valid.tolist() == [1.0] * d + [0.0] * (nms.max_detections - d)
    assert torch.equal(out_boxes[:d], boxes[kept]) and torch.equal(out_scores[:d], scores[kept])
    assert not out_boxes[d:].any() and not out_scores[d:].any()


@pytest.mark.parametrize("seed", range(20))
def test_cluster_nms_equals_greedy_on_clustered_boxes(seed):
    boxes, scores = clustered_problem(seed)
    check_against_greedy(ClusterNMS(0.5, 100, 100), boxes, scores)  # the whole keep set
    check_against_greedy(ClusterNMS(0.7, 64, 10), boxes, scores)


def test_fast_nms_alone_over_suppresses():
    """One iteration is Fast NMS; the unrolled iterations are what make the result exact."""
    differs = 0
    for seed in range(20):
        boxes, scores = clustered_problem(seed)
        kept = greedy_nms(boxes, scores, 0.5, 100)
        differs += int(ClusterNMS(0.5, 100, 100, iterations=1)(boxes, scores)[2].sum()) < len(kept)
    assert differs > 0


def test_ties_break_by_lower_index():
    """int8 models give many exactly equal scores; torch.topk orders them arbitrarily."""
    boxes, scores = clustered_problem(3, n=300)
    scores = (scores * 8).floor() / 8  # 8 distinct values, ties straddle the top-k cut
    boxes[1::7] = boxes[0::7][: len(boxes[1::7])]  # duplicated boxes with different scores
    nms = ClusterNMS(0.5, 100, 40)
    check_against_greedy(nms, boxes, scores)
    first = nms(boxes, scores)
    assert all(torch.equal(a, b) for a, b in zip(first, nms(boxes, scores)))


def test_fewer_survivors_than_slots_are_padded():
    boxes = torch.tensor([[0.0, 0, 10, 10], [1, 1, 11, 11], [0, 0, 10, 10], [50, 50, 60, 60]])
    scores = torch.tensor([0.9, 0.8, 0.9, 0.3])
    out_boxes, out_scores, valid = ClusterNMS(0.5, 4, 3)(boxes, scores)
    assert valid.tolist() == [1, 1, 0]
    assert out_boxes.tolist() == [[0, 0, 10, 10], [50, 50, 60, 60], [0, 0, 0, 0]]
    assert torch.allclose(out_scores, torch.tensor([0.9, 0.3, 0.0]))


def test_export_and_onnx_parity():
    boxes, scores = clustered_problem(0, n=200)
    scores = (scores * 16).floor() / 16  # ties: ORT's TopK order must not matter either
    module = ClusterNMS(0.5, 50, 10).eval()
    want = module(boxes, scores)
    program = torch.export.export(module, (boxes, scores))
    assert all(torch.equal(a, b) for a, b in zip(program.module()(boxes, scores), want))
    model = torch.onnx.export(program, (boxes, scores), dynamo=True, verbose=False).model_proto
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    sess = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    got = sess.run(None, {"boxes": boxes.numpy(), "scores": scores.numpy()})
    assert all(np.array_equal(a, b.numpy()) for a, b in zip(got, want))


def test_litert_parity():
    """Guards the topk workaround in select_candidates (an unused-indices topk fails to load)."""
    litert_torch = pytest.importorskip("litert_torch")
    boxes, scores = clustered_problem(1, n=200)
    scores = (scores * 16).floor() / 16
    module = ClusterNMS(0.5, 50, 10).eval()
    got = litert_torch.convert(module, (boxes, scores))(boxes, scores)
    assert all(np.array_equal(np.asarray(a), b.numpy()) for a, b in zip(got, module(boxes, scores)))


def test_cheap_selection_equals_exact_without_ties():
    boxes, scores = clustered_problem(5, n=400)  # continuous scores: no ties
    exact, cheap = ClusterNMS(0.6, 120, 30), ClusterNMS(0.6, 120, 30, tie_exact=False)
    assert all(torch.equal(a, b) for a, b in zip(exact(boxes, scores), cheap(boxes, scores)))
    check_against_greedy(cheap, boxes, scores)


def test_no_large_constants():
    """The (k, k) masks are computed, not stored: an RPN NMS with k = 1000 keeps KBs of buffers."""
    nms = ClusterNMS(0.7, 1000, 100)
    assert sum(b.numel() for b in nms.buffers()) < 5000
