"""box_iou against a loop, BoxCoder round trip and clamp, AnchorGenerator layout, export."""

import math

import numpy as np
import onnxruntime as ort
import torch
from torch import nn

from edgecap.models.ops import AnchorGenerator, BoxCoder, box_iou


def person_boxes(n: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(n, 2, generator=g) * torch.tensor([320.0, 240.0]) - 20
    wh = torch.rand(n, 2, generator=g) * torch.tensor([80.0, 160.0]) + 4
    return torch.cat([xy, xy + wh], dim=1)


def test_box_iou_matches_loop():
    a = torch.cat([person_boxes(12), torch.tensor([[5.0, 5, 5, 5], [0, 0, 10, 10]])])
    b = torch.cat([person_boxes(9, seed=1), torch.tensor([[5.0, 5, 5, 5], [5, 0, 15, 10], [100, 100, 110, 110]])])
    want = torch.zeros(len(a), len(b), dtype=torch.float64)
    for i, (ax1, ay1, ax2, ay2) in enumerate(a.tolist()):
        for j, (bx1, by1, bx2, by2) in enumerate(b.tolist()):
            inter = max(0.0, min(ax2, bx2) - max(ax1, bx1)) * max(0.0, min(ay2, by2) - max(ay1, by1))
            union = (ax2 - ax1) * (ay2 - ay1) + (bx2 - bx1) * (by2 - by1) - inter
            want[i, j] = inter / union if union > 0 else 0.0
    got = box_iou(a, b)
    assert (got.double() - want).abs().max() < 1e-6
    assert got[-1, -3] == 0  # two empty boxes: 0, not NaN
    assert math.isclose(got[-1, -2].item(), 1 / 3, rel_tol=1e-6)
    assert (got > 0.1).sum() > 2  # the random boxes do overlap


def test_box_coder_round_trip_and_clamp():
    anchors, boxes = person_boxes(50), person_boxes(50, seed=1)
    for weights in [(1.0, 1.0, 1.0, 1.0), (10.0, 10.0, 5.0, 5.0)]:
        coder = BoxCoder(weights)
        deltas = coder.encode(boxes, anchors)
        assert (coder(deltas, anchors) - boxes).abs().max() < 1e-3
        assert (coder.encode(coder(deltas, anchors), anchors) - deltas).abs().max() < 1e-4
    # Known values: anchor centre (10, 20) size (20, 40); dx=0.5 -> +10 px; dw=log 2 -> width 40.
    anchor = torch.tensor([[0.0, 0.0, 20.0, 40.0]])
    got = BoxCoder()(torch.tensor([[0.5, -0.25, math.log(2.0), 0.0]]), anchor)
    assert torch.allclose(got, torch.tensor([[0.0, -10.0, 40.0, 30.0]]))
    # Wild dw/dh are clamped at log(1000/16): at most 62.5x the anchor size.
    wide = BoxCoder()(torch.tensor([[0.0, 0.0, 50.0, 50.0]]), anchor)
    assert torch.allclose(wide[0, 2:] - wide[0, :2], torch.tensor([1250.0, 2500.0]))


def test_anchor_count_centres_and_shapes():
    strides, sizes, ratios = (8, 16, 32), ((32.0,), (64.0, 90.0), (128.0,)), (0.5, 1.0, 2.0)
    gen = AnchorGenerator(strides, sizes, ratios, image_size=(240, 320))
    anchors = gen()
    assert gen.feature_sizes == [(30, 40), (15, 20), (8, 10)]
    assert gen.num_anchors_per_location == [3, 6, 3]
    assert anchors.shape == (30 * 40 * 3 + 15 * 20 * 6 + 8 * 10 * 3, 4)
    # Level 1 (stride 16), location (y=2, x=5): centre (88, 40), anchors ratio-major then size.
    start = 30 * 40 * 3
    level1 = anchors[start : start + 15 * 20 * 6].view(15, 20, 6, 4)
    a = level1[2, 5]
    assert torch.allclose((a[:, 0:2] + a[:, 2:4]) / 2, torch.tensor([88.0, 40.0]).expand(6, 2))
    wh = a[:, 2:4] - a[:, 0:2]
    assert torch.allclose(wh[:, 1] / wh[:, 0], torch.tensor([0.5, 0.5, 1.0, 1.0, 2.0, 2.0]))
    assert torch.allclose((wh[:, 0] * wh[:, 1]).sqrt(), torch.tensor([64.0, 90.0] * 3))
    # The last anchor centre of the coarsest level is at the last (partial) cell.
    assert torch.allclose((anchors[-1, 0:2] + anchors[-1, 2:4]) / 2, torch.tensor([9.5 * 32, 7.5 * 32]))


def test_select_computes_the_anchors_at_flat_indices():
    gen = AnchorGenerator((8, 16, 32), ((32.0,), (64.0, 90.0), (128.0,)), (0.5, 1.0, 2.0), image_size=(240, 320))
    every = torch.arange(gen.num_anchors)
    assert gen.num_anchors == gen.anchors.shape[0]
    assert (gen.select(every) - gen.anchors).abs().max() < 1e-4  # float32 rounding of the sums
    picked = torch.tensor([gen.num_anchors - 1, 0, 3600, 3599, 5401])  # level edges, any order
    assert (gen.select(picked) - gen.anchors[picked]).abs().max() < 1e-4
    # Only the small tables are tensors of the module: no (A, 4) constant reaches an export.
    assert sum(b.numel() for b in gen.buffers()) < 100
    program = torch.export.export(_Select(gen), (picked,))
    assert torch.equal(program.module()(picked), gen.select(picked))
    tensors = [*program.state_dict.values(), *program.constants.values()]
    assert tensors and all(t.numel() < 100 for t in tensors)


def test_select_in_onnx_runtime_equals_the_anchors():
    """ORT runs select's float floor/divide arithmetic exactly: every anchor of a 320 input."""
    gen = AnchorGenerator((4, 8, 16, 32, 64), [[32.0], [64.0], [128.0], [256.0], [512.0]], (0.5, 1.0, 2.0),
                          image_size=(320, 320))
    every = torch.arange(gen.num_anchors)
    model = torch.onnx.export(_Select(gen), (every,), dynamo=True, verbose=False).model_proto
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    got = sess.run(None, {sess.get_inputs()[0].name: every.numpy()})[0]
    assert np.array_equal(got, gen.anchors.numpy())


class _Select(nn.Module):
    def __init__(self, gen):
        super().__init__()
        self.gen = gen

    def forward(self, indices):
        return self.gen.select(indices)


def test_export_and_onnx_parity():
    coder = BoxCoder((10.0, 10.0, 5.0, 5.0)).eval()
    anchors = person_boxes(64)
    deltas = torch.randn(64, 4, generator=torch.Generator().manual_seed(2))
    deltas[:8, 2:] = 30.0  # beyond the clamp
    want = coder(deltas, anchors)
    program = torch.export.export(coder, (deltas, anchors))
    assert torch.equal(program.module()(deltas, anchors), want)
    model = torch.onnx.export(program, (deltas, anchors), dynamo=True, verbose=False).model_proto
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    sess = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    got = sess.run(None, {"deltas": deltas.numpy(), "anchors": anchors.numpy()})[0]
    assert np.abs(got - want.numpy()).max() < 1e-3  # pixels; exp() differs in the last ulp
