"""The two-graph form: detector + per-RoI dense head, glued by SplitRunner, equals the whole model."""

import numpy as np
import pytest
import torch

from edgecap.models import get_family
from edgecap.models.parsing_rcnn.model import build_parsing_rcnn
from edgecap.runtime import TorchRunner
from edgecap.runtime.densepose_post import decode_detections
from edgecap.runtime.split import SplitRunner


@pytest.fixture(scope="module")
def model_and_image():
    torch.manual_seed(0)
    family = get_family("parsing_rcnn")
    form = family.export_form(build_parsing_rcnn("mobile_b").eval())
    image = np.random.default_rng(0).normal(size=(1, 3, 320, 320)).astype(np.float32)
    return family, form, image


def _glue(family, form, min_score=0.0):
    parts = family.split_model(form)
    runners = {p: TorchRunner(m, i, o) for p, (m, i, o) in parts.items()}
    spec = {"format": "pytorch", "outputs": list(form.output_names),
            "parts": {p: {"inputs": i, "outputs": o} for p, (_, i, o) in parts.items()}}
    s = form.config.dense_output_size
    spec["parts"]["dense"]["output_shapes"] = {"part_logits": [1, 25, s, s], "u": [1, 24, s, s], "v": [1, 24, s, s],
                                               "coarse_logits": [1, 15, s, s]}
    return SplitRunner(runners["detector"], runners["dense"], spec, min_score)


def test_split_runner_equals_whole_model(model_and_image):
    family, form, image = model_and_image
    whole = TorchRunner(form, ["image"], list(form.output_names)).run({"image": image})
    glued = _glue(family, form).run({"image": image})
    assert list(glued) == list(form.output_names)
    kept = whole["scores"] > 0
    assert kept.any()  # the untrained model keeps boxes at its 0.05 threshold
    np.testing.assert_array_equal(glued["boxes"], whole["boxes"])
    np.testing.assert_array_equal(glued["scores"], whole["scores"])
    for name in ("part_logits", "u", "v", "coarse_logits"):
        np.testing.assert_allclose(glued[name][kept], whole[name][kept], atol=1e-5)
        assert not glued[name][~kept].any()  # empty slots: the dense graph never ran
    a, b = decode_detections(glued, 0.05), decode_detections(whole, 0.05)
    assert len(a) == len(b) and all((x.I == y.I).all() for x, y in zip(a, b))


def test_split_runner_skips_low_scores(model_and_image):
    family, form, image = model_and_image
    runner = _glue(family, form)
    out = runner.run({"image": image})
    all_runs = runner.dense_runs
    threshold = float(np.sort(out["scores"][out["scores"] > 0])[-1])  # only the best box passes
    high = _glue(family, form, min_score=threshold)
    out_high = high.run({"image": image})
    assert all_runs == int((out["scores"] > 0).sum()) and high.dense_runs == 1
    best = int(np.argmax(out["scores"]))
    np.testing.assert_array_equal(out_high["part_logits"][best], out["part_logits"][best])


def test_split_inputs_feed_the_dense_part(model_and_image):
    family, form, image = model_and_image
    parts = family.split_model(form)
    inputs = family.split_inputs(parts, [{"image": image}])
    assert inputs["detector"][0]["image"] is image
    dense = inputs["dense"]
    assert 1 <= len(dense) <= 3 and set(dense[0]) == {"features_p2", "box"}
    assert dense[0]["features_p2"].shape == (1, 64, 80, 80) and dense[0]["box"].shape == (1, 4)
