"""RoIPool against a loop port of torchvision's roi_pool CPU kernel, plus export."""

import math

import numpy as np
import onnxruntime as ort
import pytest
import torch

from edgecap.models.ops import RoIPool
from tests.models.ops.test_roi_align import BOXES as ALIGN_BOXES

# 240x320 (H x W) image, stride 8: ordinary, border-crossing, tiny, zero-size, larger than the
# image, completely outside, and corners at exact half cells (x*0.125 = n.5) that exercise
# C's round-half-away-from-zero (torch.round would round them to even).
# The first ones are RoIAlign's boxes (less the whole image), then the half-cell corners.
BOXES = torch.cat([ALIGN_BOXES[[0, 1, 2, 3, 4, 5, 7]], torch.tensor([[36.0, 20.0, 84.0, 132.0], [-12.0, -4.0, 44.0, 28.0]])])


def c_round(x: np.float32) -> int:
    return int(math.copysign(math.floor(abs(x) + 0.5), x))


def roi_pool_ref(features: torch.Tensor, boxes: torch.Tensor, size: int, scale: float) -> torch.Tensor:
    """roi_pool_kernel.cpp, with exact integer bin edges (the kernel's float32 edges are off by
    one cell in ~0.15% of bins; see roi_pool.py)."""
    f = features[0]
    _, h, w = f.shape
    out = torch.zeros(len(boxes), f.shape[0], size, size)
    f32 = np.float32
    for k, box in enumerate(boxes.numpy()):
        x1, y1, x2, y2 = (c_round(v * f32(scale)) for v in box)
        n_w, n_h = max(x2 - x1 + 1, 1), max(y2 - y1 + 1, 1)
        for ph in range(size):
            for pw in range(size):
                hs = min(max(ph * n_h // size + y1, 0), h)
                he = min(max(-(-(ph + 1) * n_h // size) + y1, 0), h)
                ws = min(max(pw * n_w // size + x1, 0), w)
                we = min(max(-(-(pw + 1) * n_w // size) + x1, 0), w)
                if he > hs and we > ws:
                    out[k, :, ph, pw] = f[:, hs:he, ws:we].amax((1, 2))
    return out


def feature_map(c: int, h: int, w: int, shift: float = 0.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    ys, xs = torch.meshgrid(torch.linspace(0, 3, h), torch.linspace(0, 4, w), indexing="ij")
    smooth = torch.stack([torch.sin(ys * (i + 1) + xs) for i in range(c)])
    return (smooth + 0.5 * torch.randn(c, h, w, generator=g) + shift).unsqueeze(0)


@pytest.mark.parametrize("size,shift", [(7, 0.0), (3, 0.0), (7, -5.0)])
def test_roi_pool_matches_torchvision_semantics(size, shift):
    """shift=-5: all-negative features, so empty bins must give 0, not the masked fill value."""
    features = feature_map(3, 30, 40, shift)
    got = RoIPool(size, 1 / 8)(features, BOXES)
    want = roi_pool_ref(features, BOXES, size, 1 / 8)
    assert got.shape == (len(BOXES), 3, size, size)
    assert torch.equal(got, want)  # a max selects values: exact
    assert (want == 0).any() and (want != 0).any()
    if shift < 0:
        assert (want < 0).all(dim=(1, 2, 3)).any()  # some boxes fully on the map


def test_export_and_onnx_parity():
    module = RoIPool(7, 1 / 8).eval()
    args = (feature_map(4, 30, 40), BOXES)
    want = module(*args)
    program = torch.export.export(module, args)
    assert torch.equal(program.module()(*args), want)
    model = torch.onnx.export(program, args, dynamo=True, verbose=False).model_proto
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    sess = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    got = sess.run(None, {i.name: a.numpy() for i, a in zip(sess.get_inputs(), args)})[0]
    assert np.array_equal(got, want.numpy())


def test_litert_parity():
    """LiteRT turns x / 7 into x * (1/7): bin edges computed by division moved by one cell."""
    litert_torch = pytest.importorskip("litert_torch")
    module = RoIPool(7, 1 / 8).eval()
    args = (feature_map(4, 30, 40), BOXES)
    got = litert_torch.convert(module, args)(*args)
    assert np.array_equal(np.asarray(got), module(*args).numpy())
