"""Parsing R-CNN family: Table 4 parameter counts, static output shapes, padding, export, training pieces.

Shapes of every preset are checked on the meta device (no compute); real forwards run for
mobile_b (320 and 512) and for one ResNet preset (densepose_rcnn, ~7 s on one thread).
"""

import pytest
import torch

from edgecap import EdgecapError
from edgecap.models.parsing_rcnn import PRESETS, build_parsing_rcnn, preset
from edgecap.models.parsing_rcnn.params import PAPER_PARAMS, format_table, parameter_table

D = 10


@pytest.fixture(scope="module")
def mobile_b():
    torch.manual_seed(0)
    return build_parsing_rcnn("mobile_b").eval()


@pytest.fixture(scope="module")
def image():
    return torch.randn(1, 3, 320, 320, generator=torch.Generator().manual_seed(1))


def check_outputs(outputs, size: int, s: int, finite: bool = True) -> None:
    boxes, scores, part_logits, u, v, coarse_logits = outputs
    assert boxes.shape == (D, 4) and scores.shape == (D,)
    assert part_logits.shape == (D, 25, s, s) and coarse_logits.shape == (D, 15, s, s)
    assert u.shape == (D, 24, s, s) and v.shape == (D, 24, s, s)
    if finite:
        assert all(torch.isfinite(o).all() for o in outputs)
        assert (scores >= 0).all() and (scores <= 1).all() and (scores[:-1] >= scores[1:]).all()
        assert (boxes >= 0).all() and (boxes <= size).all()
        assert (boxes[scores == 0] == 0).all()  # empty slots carry box 0


def test_parameter_counts_match_paper():
    rows = parameter_table()
    print("\n" + format_table(rows))
    assert [r.name for r in rows] == list(PAPER_PARAMS)
    for r in rows:
        assert r.backbone + r.neck + r.rpn + r.box_head + r.dense_head == r.total
        assert abs(r.deviation_pct) < 10.0, f"{r.name}: {r.total / 1e6:.2f}M vs paper {r.paper / 1e6:.2f}M"


@pytest.mark.parametrize("name", list(PRESETS))
def test_static_output_shapes(name):
    cfg = PRESETS[name]
    with torch.device("meta"):
        model = build_parsing_rcnn(cfg).eval()
        outputs = model(torch.empty(1, 3, 320, 320))
    check_outputs(outputs, 320, cfg.dense_output_size, finite=False)
    assert cfg.dense_output_size == (28 if name == "densepose_rcnn" else 64)


def test_mobile_b_forward(mobile_b, image):
    with torch.no_grad():
        outputs = mobile_b(image)
    check_outputs(outputs, 320, 64)


def test_mobile_b_forward_512():
    torch.manual_seed(0)
    model = build_parsing_rcnn(preset("mobile_b", input_size=512)).eval()
    with torch.no_grad():
        outputs = model(torch.randn(1, 3, 512, 512))
    check_outputs(outputs, 512, 64)


def test_resnet_baseline_forward():
    torch.manual_seed(0)
    model = build_parsing_rcnn("densepose_rcnn").eval()
    with torch.no_grad():
        outputs = model(torch.randn(1, 3, 320, 320))
    check_outputs(outputs, 320, 28)


def test_empty_detection_slots_score_zero(mobile_b, image):
    """Only 2 live (disjoint) proposals: 2 detections, the other slots are exactly score 0, box 0."""
    proposals = torch.zeros(PRESETS["mobile_b"].rpn_post_nms_topk, 4)
    proposals[:2] = torch.tensor([[10.0, 10.0, 100.0, 200.0], [200.0, 50.0, 300.0, 300.0]])
    proposal_scores = (proposals[:, 2] > 0).float() * 0.9
    with torch.no_grad():
        boxes, scores = mobile_b.detect(mobile_b.features(image), proposals, proposal_scores)
    assert (scores[:2] > 0).all()
    assert (scores[2:] == 0).all() and (boxes[2:] == 0).all()
    # A threshold nothing passes leaves every slot empty.
    model = build_parsing_rcnn(preset("mobile_b", box_score_threshold=1.0))
    model.load_state_dict(mobile_b.state_dict())
    with torch.no_grad():
        boxes, scores, *_ = model.eval()(image)
    assert (scores == 0).all() and (boxes == 0).all()


def test_torch_export_mobile_b(mobile_b, image):
    program = torch.export.export(mobile_b, (image,))
    with torch.no_grad():
        for a, b in zip(mobile_b(image), program.module()(image)):
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)


def test_training_methods(image):
    torch.manual_seed(0)
    model = build_parsing_rcnn("mobile_b").train()
    features = model.features(image)
    assert [tuple(f.shape) for f in features] == [(1, 64, 320 // s, 320 // s) for s in (4, 8, 16, 32, 64)]
    objectness, deltas = model.rpn_outputs(features)
    a = (80 * 80 + 40 * 40 + 20 * 20 + 10 * 10 + 5 * 5) * 3
    assert model.anchors.shape == (a, 4) and objectness.shape == (a,) and deltas.shape == (a, 4)
    rois = torch.tensor([[10.0, 20.0, 120.0, 300.0], [150.0, 40.0, 310.0, 200.0], [0.0, 0.0, 320.0, 320.0]])
    class_logits, box_deltas = model.box_outputs(features, rois)
    assert class_logits.shape == (3, 2) and box_deltas.shape == (3, 4)
    dense = model.dense_outputs(features, rois)
    assert {k: tuple(t.shape) for k, t in dense.items()} == {
        "part_logits": (3, 25, 64, 64), "u": (3, 24, 64, 64), "v": (3, 24, 64, 64), "coarse_logits": (3, 15, 64, 64)}
    loss = objectness.mean() + deltas.mean() + class_logits.mean() + box_deltas.mean() + sum(
        t.mean() for t in dense.values())
    loss.backward()
    for part in (model.backbone, model.neck, model.rpn, model.box_head, model.dense_head, model.dense_predictor):
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in part.parameters())
    with pytest.raises(EdgecapError, match="batch 1"):
        model.rpn_outputs([torch.cat([f, f]) for f in features])


def test_unshare_rpn_head_keeps_outputs(mobile_b, image):
    import copy

    model = copy.deepcopy(mobile_b)
    with torch.no_grad():
        features = model.features(image)
        before = model.rpn_outputs(features)
        shared_params = sum(p.numel() for p in model.rpn.parameters())
        model.unshare()
        after = model.rpn_outputs(features)
    assert sum(p.numel() for p in model.rpn.parameters()) == 5 * shared_params
    for a, b in zip(before, after):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_separate_predictor_gives_each_map_its_own_deconv_with_the_same_outputs(mobile_b):
    """Export form: four deconvs (one int8 scale per map) computing what the joint one did."""
    import copy

    predictor = copy.deepcopy(mobile_b.dense_predictor)
    x = torch.randn(3, predictor.deconv.in_channels, 14, 14)
    with torch.no_grad():
        before = predictor(x)
        predictor.separate()
        after = predictor(x)
    assert [d.out_channels for d in predictor.deconvs] == list(predictor.splits)
    assert not hasattr(predictor, "deconv")
    for a, b in zip(before, after):
        assert a.shape == b.shape
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_bad_config_fails_loudly():
    with pytest.raises(EdgecapError, match="unknown ParsingRCNNConfig"):
        preset("mobile_b", neck_width=64)
    with pytest.raises(EdgecapError, match="BiFPN"):
        preset("mobile_b", neck_channels=100)
    with pytest.raises(EdgecapError, match="unknown Parsing R-CNN preset"):
        build_parsing_rcnn("mobile_c")
