"""RoIAlign / MultiLevelRoIAlign against a loop port of torchvision's roi_align, plus export."""

import math

import numpy as np
import onnxruntime as ort
import pytest
import torch

from edgecap.models.ops import MultiLevelRoIAlign, RoIAlign

# Person boxes in a 240x320 (H x W) image: ordinary, crossing each border, tiny, zero-size,
# larger than the image, the whole image, and completely outside it.
BOXES = torch.tensor([
    [40.0, 30.0, 180.0, 230.0],
    [-20.0, 100.0, 60.0, 260.0],
    [290.0, -15.0, 345.0, 90.0],
    [100.3, 100.7, 101.1, 102.0],
    [150.0, 150.0, 150.0, 150.0],
    [-100.0, -80.0, 500.0, 450.0],
    [0.0, 0.0, 320.0, 240.0],
    [-90.0, 250.0, -40.0, 300.0],
])


def feature_map(c: int, h: int, w: int, seed: int = 0) -> torch.Tensor:
    """CNN-like activations: smooth structure plus noise, non-negative after a ReLU, H != W."""
    g = torch.Generator().manual_seed(seed)
    ys, xs = torch.meshgrid(torch.linspace(0, 3, h), torch.linspace(0, 4, w), indexing="ij")
    smooth = torch.stack([torch.sin(ys * (i + 1) + xs) for i in range(c)])
    return torch.relu(smooth + 0.5 * torch.randn(c, h, w, generator=g)).unsqueeze(0)


def bilinear(f: torch.Tensor, y: float, x: float) -> torch.Tensor:
    """torchvision's bilinear_interpolate (roi_align_kernel.cpp) on (C, H, W)."""
    _, h, w = f.shape
    if y < -1.0 or y > h or x < -1.0 or x > w:
        return torch.zeros(f.shape[0], dtype=f.dtype)
    y, x = max(y, 0.0), max(x, 0.0)
    y_low, x_low = int(y), int(x)
    if y_low >= h - 1:
        y_high = y_low = h - 1
        y = float(y_low)
    else:
        y_high = y_low + 1
    if x_low >= w - 1:
        x_high = x_low = w - 1
        x = float(x_low)
    else:
        x_high = x_low + 1
    ly, lx = y - y_low, x - x_low
    hy, hx = 1.0 - ly, 1.0 - lx
    return (hy * hx * f[:, y_low, x_low] + hy * lx * f[:, y_low, x_high]
            + ly * hx * f[:, y_high, x_low] + ly * lx * f[:, y_high, x_high])


def roi_align_ref(features, boxes, size, scale, sampling_ratio, aligned):
    f = features[0].double()
    out = torch.zeros(len(boxes), f.shape[0], size, size, dtype=torch.float64)
    offset = 0.5 if aligned else 0.0
    g = sampling_ratio
    for k, box in enumerate(boxes.tolist()):
        x1, y1, x2, y2 = (v * scale - offset for v in box)
        rw, rh = x2 - x1, y2 - y1
        if not aligned:
            rw, rh = max(rw, 1.0), max(rh, 1.0)
        bw, bh = rw / size, rh / size
        for ph in range(size):
            for pw in range(size):
                acc = 0.0
                for iy in range(g):
                    for ix in range(g):
                        y = y1 + ph * bh + (iy + 0.5) * bh / g
                        x = x1 + pw * bw + (ix + 0.5) * bw / g
                        acc = acc + bilinear(f, y, x)
                out[k, :, ph, pw] = acc / (g * g)
    return out


@pytest.mark.parametrize("size,sampling_ratio,aligned", [(7, 2, True), (5, 1, True), (4, 3, False)])
def test_roi_align_matches_torchvision_semantics(size, sampling_ratio, aligned):
    features = feature_map(3, 30, 40)  # stride 8 on 240x320
    got = RoIAlign(size, 1 / 8, sampling_ratio, aligned)(features, BOXES)
    want = roi_align_ref(features, BOXES, size, 1 / 8, sampling_ratio, aligned)
    assert got.shape == (len(BOXES), 3, size, size)
    assert (got.double() - want).abs().max() < 2e-5
    assert want[-1].abs().max() == 0 and want[0].abs().max() > 0.1  # outside -> 0; not all zeros


def level_ref(box, k_min, k_max):
    """torchvision's LevelMapper for one box."""
    area = (box[2] - box[0]) * (box[3] - box[1])
    lvl = math.floor(4 + math.log2(math.sqrt(max(area, 1e-6)) / 224) + 1e-6)
    return min(max(lvl, k_min), k_max) - k_min


def test_multilevel_uses_the_fpn_level_of_each_box():
    strides = (8, 16, 32)
    features = [feature_map(3, math.ceil(240 / s), math.ceil(320 / s), seed=i) for i, s in enumerate(strides)]
    boxes = torch.cat([BOXES, torch.tensor([[10.0, 10.0, 250.0, 235.0], [0.0, 0.0, 100.0, 120.0]])])
    levels = [level_ref(b, 3, 5) for b in boxes.tolist()]
    assert set(levels) == {0, 1, 2}
    got = MultiLevelRoIAlign(7, strides, 2)(features, boxes)
    want = torch.stack([roi_align_ref(features[lv], boxes[k : k + 1], 7, 1 / strides[lv], 2, True)[0]
                        for k, lv in enumerate(levels)])
    assert (got.double() - want).abs().max() < 2e-5


def test_rejects_adaptive_sampling_and_irregular_strides():
    from edgecap import EdgecapError

    with pytest.raises(EdgecapError, match="sampling_ratio"):
        RoIAlign(7, 1 / 8, sampling_ratio=0)
    with pytest.raises(EdgecapError, match="strides"):
        MultiLevelRoIAlign(7, (8, 32))


class _ThreeLevels(torch.nn.Module):
    """Flat tensor inputs for the exporters."""

    def __init__(self):
        super().__init__()
        self.pool = MultiLevelRoIAlign(7, (8, 16, 32), 2)

    def forward(self, p3, p4, p5, boxes):
        return self.pool([p3, p4, p5], boxes)


def onnx_outputs(program: torch.export.ExportedProgram, args: tuple) -> list[np.ndarray]:
    """torch.onnx.export(dynamo=True) of an exported program -> onnxruntime (1 thread)."""
    model = torch.onnx.export(program, args, dynamo=True, verbose=False).model_proto
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    sess = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    return sess.run(None, {i.name: a.numpy() for i, a in zip(sess.get_inputs(), args)})


def test_export_and_onnx_parity():
    """Covers RoIAlign too: the multi-level module runs one per level."""
    module = _ThreeLevels().eval()
    levels = tuple(feature_map(4, math.ceil(240 / s), math.ceil(320 / s), i) for i, s in enumerate((8, 16, 32)))
    args = levels + (BOXES,)
    want = module(*args)
    program = torch.export.export(module, args)
    assert torch.equal(program.module()(*args), want)
    got = onnx_outputs(program, args)[0]
    assert np.abs(got - want.numpy()).max() < 1e-5
