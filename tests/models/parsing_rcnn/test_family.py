"""The Parsing R-CNN family through the shared stages: train, resume, predict, pipeline."""

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from safetensors.torch import load_file

from edgecap import EdgecapError, api
from edgecap.cli import main
from edgecap.models import get_family
from edgecap.models.parsing_rcnn.config import PRESETS
from edgecap.stages.train import train

SMALL = ["data.train_images=6", "data.val_images=2", "data.max_people=2", "train.batch_size=1",
         "train.eval_every=100", "train.checkpoint_every=2", "train.warmup_steps=2"]


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return str(tmp_path_factory.mktemp("dp_cache"))


def config(cache, steps):
    return api.config("parsing_rcnn", SMALL + [f"data.cache_dir={cache}", f"train.steps={steps}"], preset="mobile_b")


def test_resume_continues_exactly(tmp_path, cache):
    train("parsing_rcnn", config(cache, 4), tmp_path / "straight", progress=False)
    train("parsing_rcnn", config(cache, 2), tmp_path / "resumed", progress=False)
    train("parsing_rcnn", config(cache, 4), tmp_path / "resumed", progress=False)
    a, b = load_file(tmp_path / "straight" / "model.safetensors"), load_file(tmp_path / "resumed" / "model.safetensors")
    assert a.keys() == b.keys() and all((a[k] == b[k]).all() for k in a)
    spec = json.loads((tmp_path / "straight" / "model.json").read_text())
    for key in ("box_AP", "dp_AP", "dp_gpsm_AP"):
        assert key in spec["val"] and key in spec["baselines"]["untrained"]


def test_predict_writes_iuv_and_contours(tmp_path, cache, capsys):
    run = tmp_path / "run"
    train("parsing_rcnn", config(cache, 1), run, progress=False)
    image = np.asarray(Image.open(next(Path(cache).rglob("*.jpg"))))  # a synthetic image
    Image.fromarray(image).save(tmp_path / "in.png")
    code = main(["predict", str(run), "--input", str(tmp_path / "in.png"), "--output", str(tmp_path / "iuv.png")])
    assert code == 0 and "wrote" in capsys.readouterr().out
    iuv = np.asarray(Image.open(tmp_path / "iuv.png"))
    assert iuv.shape == image.shape and iuv[..., 0].max() <= 24
    assert np.asarray(Image.open(tmp_path / "iuv_contours.png")).shape[:2] == image.shape[:2]
    (tmp_path / "bad.png").write_bytes(b"not an image")
    assert main(["predict", str(run), "--input", str(tmp_path / "bad.png"), "--output", str(tmp_path / "x.png")]) == 2
    assert "corrupt or not an image" in capsys.readouterr().err and not (tmp_path / "x.png").exists()


def test_pipeline_exports_validates_benches_and_reports(tmp_path, cache):
    """The whole pipeline on a 1-step run, ONNX only, 1 thread, few timed runs (the full run is
    `edgecap pipeline parsing_rcnn`); the bench includes the eager baselines and people counts."""
    run = tmp_path / "run"
    api.pipeline("parsing_rcnn", config(cache, 1), run, formats=["onnx"], threads=(1,), progress=False,
                 say=lambda *_: None, bench_options={"min_runs": 2, "min_seconds": 0.0, "warmup": 1},
                 layouts=["whole", "parts"])
    report = json.loads((run / "report.json").read_text())
    assert report["training"]["val"]["images"] == 2
    artifacts = {"parsing_rcnn_fp32.onnx", "parsing_rcnn_int8.onnx", "parsing_rcnn_fp32_parts.onnx",
                 "parsing_rcnn_int8_parts.onnx"}
    assert {a["name"] for a in report["export"]["artifacts"]} == artifacts
    assert {r["name"] for r in report["validation"]["artifacts"]} == artifacts
    assert set(json.loads((run / "pipeline_timings.json").read_text())) == {
        "train", "quantize", "export", "validate", "bench", "report"}
    bench = report["bench"]
    names = {r["name"] for r in bench["rows"]}
    assert {"densepose_rcnn_eager_fp32", "parsing_rcnn_eager_fp32", "pytorch_fp32"} <= names
    onnx = next(r for r in bench["rows"] if r["name"] == "parsing_rcnn_int8.onnx")
    assert onnx["speedup_vs_densepose_rcnn_eager_fp32"] > 0 and onnx["smaller_than_densepose_rcnn_eager_fp32"] > 10
    # The baseline's size is its real parameter count (the shared RPN head counted once, as trained).
    baseline = next(r for r in bench["rows"] if r["name"] == "densepose_rcnn_eager_fp32")
    model = get_family("parsing_rcnn").build(PRESETS["densepose_rcnn"])
    assert baseline["size_bytes"] == 4 * sum(p.numel() for p in model.parameters())
    assert sorted({p["people_in_image"] for p in bench["end_to_end"]}) == [1, 3, 10]
    assert all("people_detected" in p for p in bench["end_to_end"])
    md = (run / "report.md").read_text()
    assert "vs densepose_rcnn_eager_fp32" in md and "end to end" in md
    assert (run / "report_latency_accuracy.png").exists() and (run / "report_end_to_end.png").exists()


def test_unknown_config_name():
    with pytest.raises(EdgecapError, match="unknown --config 'mobile_c'"):
        api.config("parsing_rcnn", preset="mobile_c")


def test_export_form_folds_batchnorm_unshares_rpn_and_separates_predictor():
    import torch

    from edgecap.models import get_family
    from edgecap.models.fold import unfolded_batchnorms
    from edgecap.models.parsing_rcnn.model import build_parsing_rcnn

    torch.manual_seed(0)
    model = build_parsing_rcnn("mobile_b").train()
    with torch.no_grad():  # give BN non-trivial running statistics
        model.features(torch.randn(2, 3, 320, 320))
    model.eval()
    form = get_family("parsing_rcnn").export_form(model)
    assert unfolded_batchnorms(form) == [] and unfolded_batchnorms(model) != []
    assert not form.rpn.head.shared and model.rpn.head.shared
    assert form.dense_predictor.deconvs is not None and model.dense_predictor.deconvs is None
    x = torch.randn(1, 3, 320, 320)
    with torch.no_grad():
        for a, b in zip(model(x), form(x)):
            assert torch.allclose(a, b, atol=1e-4, rtol=1e-4)


def test_end_to_end_rejects_bad_images():
    from edgecap.models.parsing_rcnn.app import end_to_end
    from edgecap.models.parsing_rcnn.config import PRESETS

    for bad in (np.zeros((64, 64), np.uint8), np.zeros((64, 64, 3), np.float32), np.zeros((64, 64, 4), np.uint8)):
        with pytest.raises(EdgecapError, match="expected an RGB uint8 image"):
            end_to_end(None, PRESETS["mobile_b"], bad)


def test_bench_scenes_have_the_requested_people(tmp_path):
    from edgecap.models.parsing_rcnn.app import bench_scenes

    run = api.config("parsing_rcnn")
    scenes = bench_scenes(run, tmp_path, people=(1, 3))
    assert [s["people_in_image"] for s in scenes] == [1, 3]
    assert scenes[0]["people_visible"] == 1 and 1 <= scenes[1]["people_visible"] <= 3
    assert np.asarray(Image.open(scenes[1]["file"])).shape == (320, 320, 3)
