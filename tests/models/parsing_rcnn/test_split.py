"""The "parts" layout: detector + per-RoI dense head, glued by the app's PartsRunner, equals the whole model."""

import numpy as np
import pytest
import torch

from edgecap.core.parts import parts_spec
from edgecap.core.runner import TorchRunner
from edgecap.models import get_family
from edgecap.models.parsing_rcnn.model import build_parsing_rcnn
from edgecap.models.parsing_rcnn.postprocess import decode_detections


@pytest.fixture(scope="module")
def model_and_image():
    torch.manual_seed(0)
    family = get_family("parsing_rcnn")
    form = family.export_form(build_parsing_rcnn("mobile_b").eval())
    image = np.random.default_rng(0).normal(size=(1, 3, 320, 320)).astype(np.float32)
    return family, form, image


def _glue(family, form, image, min_score=0.0):
    parts = family.parts(form, form.config, "parts")
    runners = {p.name: TorchRunner(p.module, p.input_names, p.output_names) for p in parts}
    feeds = family.part_inputs(parts, [{"image": image}])
    spec = parts_spec("parts", "pytorch", parts, list(form.output_names), {p.name: feeds[p.name][0] for p in parts})
    runner = family.compose("parts", runners, spec)
    runner.min_score = min_score
    return runner


def test_split_runner_equals_whole_model(model_and_image):
    family, form, image = model_and_image
    whole = TorchRunner(form, ["image"], list(form.output_names)).run({"image": image})
    glued = _glue(family, form, image).run({"image": image})
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
    runner = _glue(family, form, image)
    out = runner.run({"image": image})
    all_runs = runner.dense_runs
    threshold = float(np.sort(out["scores"][out["scores"] > 0])[-1])  # only the best box passes
    high = _glue(family, form, image, min_score=threshold)
    out_high = high.run({"image": image})
    assert all_runs == int((out["scores"] > 0).sum()) and high.dense_runs == 1
    best = int(np.argmax(out["scores"]))
    np.testing.assert_array_equal(out_high["part_logits"][best], out["part_logits"][best])


def test_split_inputs_feed_the_dense_part(model_and_image):
    family, form, image = model_and_image
    parts = family.parts(form, form.config, "parts")
    inputs = family.part_inputs(parts, [{"image": image}])
    assert inputs["detector"][0]["image"] is image
    dense = inputs["dense"]
    assert 1 <= len(dense) <= 3 and set(dense[0]) == {"features_p2", "box"}
    assert dense[0]["features_p2"].shape == (1, 64, 80, 80) and dense[0]["box"].shape == (1, 4)
