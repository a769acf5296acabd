"""The triangulation family's model side: shapes and finiteness on real rig samples, the
soft-argmax, the soft-MSE loss by hand, padded views, the export form, and the "parts" layout
composed back into the whole model (eager and ONNX parts)."""

import dataclasses

import numpy as np
import pytest
import torch

from edgecap.core.config import apply_overrides
from edgecap.core.parts import parts_spec
from edgecap.core.runner import TorchRunner
from edgecap.models.triangulation import app
from edgecap.models.triangulation.family import TriangulationFamily
from edgecap.models.triangulation.model import SoftArgmax, TriangulationConfig, TriangulationNet, soft_mse_3d


@pytest.fixture(scope="module")
def quick():
    family = TriangulationFamily()
    run = apply_overrides(family.facts.run_config(), family.facts.quick_overrides)
    torch.manual_seed(0)
    model = family.build(run.model).eval()
    val = family.load_data(run, "val")
    # a sample with a padded view (a 2- or 3-camera rig) and one without, if the split has both
    masks = val.stacked()["view_mask"]
    padded = [i for i in range(len(val)) if masks[i].min() == 0]
    full = [i for i in range(len(val)) if masks[i].min() == 1]
    idx = (padded[:1] + full[:1]) or [0]
    batch = val.batch(idx)
    return family, run, model, val, app.model_inputs(batch), batch


def test_shapes_finite_and_outputs(quick):
    family, run, model, _, inputs, _ = quick
    v, s, n = run.model.views, run.model.image_size, len(inputs["views"])
    assert inputs["views"].shape == (n, v, 3, s, s)
    with torch.no_grad():
        out = model(*(torch.from_numpy(inputs[k]) for k in app.INPUTS))
    shapes = [(n, 17, 3), (n, 17), (n, v, 17, 2), (n, v, 17)]
    assert [tuple(o.shape) for o in out] == shapes and len(out) == len(family.output_names(run.model))
    assert all(torch.isfinite(o).all() for o in out)
    points, conf = out[2], out[3]
    assert (points >= -0.5).all() and (points <= s - 0.5).all()  # an expectation over pixel centres
    assert ((conf > 0) & (conf < 1)).all()


def test_padded_view_gets_no_weight(quick):
    """A view with P = 0 (padding) changes nothing, whatever its image holds."""
    _, _, model, _, inputs, _ = quick
    a_in = {k: a[-1:].copy() for k, a in inputs.items()}
    a_in["projections"][0, -1] = 0.0
    b_in = {k: a.copy() for k, a in a_in.items()}
    b_in["views"][0, -1] = np.random.default_rng(0).uniform(0, 255, b_in["views"][0, -1].shape)
    with torch.no_grad():
        a = model(*(torch.from_numpy(a_in[k]) for k in app.INPUTS))
        b = model(*(torch.from_numpy(b_in[k]) for k in app.INPUTS))
        full = model(*(torch.from_numpy(inputs[k][-1:]) for k in app.INPUTS))
    torch.testing.assert_close(a[0], b[0])
    torch.testing.assert_close(a[1], b[1])
    assert not torch.allclose(a[0], full[0])  # the view did count while it had a camera


def test_soft_argmax_recovers_a_peak():
    op = SoftArgmax(size=16, stride=4, beta=1.0)
    maps = torch.zeros(2, 3, 16, 16)
    maps[0, 0, 5, 9] = 60.0  # one cell: its centre in pixels, x = 4 * col + 1.5
    maps[0, 1, 0, 0] = 60.0
    maps[0, 2, 15, 15] = 60.0
    maps[1, :, 7, 2] = maps[1, :, 7, 3] = 60.0  # two equal neighbours: the midpoint
    out = op(maps)
    torch.testing.assert_close(out[0], torch.tensor([[37.5, 21.5], [1.5, 1.5], [61.5, 61.5]]))
    torch.testing.assert_close(out[1], torch.tensor([[11.5, 29.5]] * 3))
    flat = op(torch.zeros(1, 1, 16, 16))  # no peak: the image centre
    torch.testing.assert_close(flat, torch.tensor([[[31.5, 31.5]]]))


def test_soft_mse_by_hand():
    target = torch.zeros(1, 4, 3)
    pred = torch.tensor([[[10.0, 0, 0], [0, 24.0, 32.0], [0, 0, 0], [500.0, 0, 0]]])  # 10 mm, 40 mm, 0, 500 mm
    weight = torch.tensor([[1.0, 1.0, 1.0, 0.0]])  # the last joint is not visible in two views
    expected = (100.0 + 1600.0 ** 0.1 * 400.0 ** 0.9 + 0.0) / 3  # 459.48 for 40 mm
    assert abs(1600.0 ** 0.1 * 400.0 ** 0.9 - 459.479) < 1e-2
    assert abs(float(soft_mse_3d(pred, target, weight)) - expected) < 1e-3
    # continuous at the 20 mm threshold, and finite gradients at zero error
    at = torch.tensor([[[20.0, 0, 0]]])
    assert abs(float(soft_mse_3d(at, torch.zeros(1, 1, 3), torch.ones(1, 1))) - 400.0) < 1e-3
    p = torch.zeros(1, 2, 3, requires_grad=True)
    soft_mse_3d(p, torch.zeros(1, 2, 3), torch.ones(1, 2)).backward()
    assert torch.isfinite(p.grad).all()


def test_family_loss_uses_visible_and_valid_joints(quick):
    family, run, model, _, inputs, batch = quick
    targets = torch.from_numpy(app.pack_targets(batch))
    t = app.unpack_targets(targets, batch["view_mask"].shape[1])
    real = batch["view_mask"][..., None]
    np.testing.assert_array_equal(t["joints"].numpy(), batch["joints_3d"])
    np.testing.assert_array_equal(t["points"].numpy(), batch["points_2d"])
    np.testing.assert_array_equal(t["points_undistorted"].numpy(), batch["points_2d_undistorted"])
    np.testing.assert_array_equal(t["visible"].numpy(), batch["visibility"] * real)
    size = run.model.image_size
    inside = ((batch["points_2d"] >= -0.5) & (batch["points_2d"] < size - 0.5)).all(-1) * real
    np.testing.assert_array_equal(t["in_frame"].numpy(), inside)
    assert (t["in_frame"].numpy() >= t["visible"].numpy()).all()  # a visible joint is in the frame
    np.testing.assert_array_equal(t["weight_3d"].numpy(), (t["visible"].numpy().sum(1) >= 2).astype(np.float32))
    exact = (targets[..., :3], torch.ones(targets.shape[:2]))
    assert float(family.loss(exact, targets)) == 0.0


def test_training_loss_has_every_term_and_trains_the_whole_network(quick):
    """3D soft MSE + heatmap cross-entropy + 2D L1: each term moves the loss, and every
    parameter (backbone, heads, soft-argmax temperature) gets a gradient."""
    family, run, _, val, _, _ = quick
    torch.manual_seed(0)
    model = family.build(run.model).train()
    batch = family.sample_batch(val, np.random.default_rng(0), 2)
    losses = {}
    for name, overrides in {"all": {}, "no_heatmap": {"heatmap_weight": 0.0}, "no_l1": {"aux_2d_weight": 0.0}}.items():
        model.cfg = dataclasses.replace(run.model, **overrides)
        torch.manual_seed(1)
        losses[name] = family.training_loss(model, batch, torch.device("cpu"))
    assert float(losses["no_heatmap"]) < float(losses["all"]) and float(losses["no_l1"]) < float(losses["all"])
    model.zero_grad()
    losses["all"].backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing, missing


def test_heatmap_cross_entropy_by_hand():
    from edgecap.models.triangulation.model import heatmap_cross_entropy

    size, stride = 8, 4
    centres = torch.arange(size) * stride + 1.5
    target = torch.tensor([[[13.5, 9.5]]])  # cell (col 3, row 2)

    def gaussian_logits(x, y):  # log of a sigma = 1 cell Gaussian around (x, y) px
        gx, gy = -0.5 * ((centres - x) / stride) ** 2, -0.5 * ((centres - y) / stride) ** 2
        return (gy[:, None] + gx[None, :]).reshape(1, 1, size * size)

    right = heatmap_cross_entropy(gaussian_logits(13.5, 9.5), target, torch.ones(1, 1), size, stride)
    shifted = heatmap_cross_entropy(gaussian_logits(21.5, 9.5), target, torch.ones(1, 1), size, stride)
    flat = heatmap_cross_entropy(torch.zeros(1, 1, size * size), target, torch.ones(1, 1), size, stride)
    p = torch.softmax(gaussian_logits(13.5, 9.5), -1)
    entropy = float(-(p * p.log()).sum())  # the minimum: the target's own entropy
    assert abs(float(right) - entropy) < 1e-4
    assert entropy < float(shifted) and abs(float(flat) - np.log(size * size)) < 1e-4
    assert float(heatmap_cross_entropy(gaussian_logits(0, 0), target, torch.zeros(1, 1), size, stride)) == 0.0


def test_undistort_matches_converged_opencv_on_the_rigs():
    """Newton's method in the graph against cv2.undistortPoints run to convergence, over whole
    images (corners included) of cameras drawn by the synthetic rigs; the identity at zero distortion."""
    import cv2

    from edgecap.data.multiview.synthetic_rigs import RigDataConfig, make_sequence
    from edgecap.models.triangulation.model import Undistort

    grid = np.stack(np.meshgrid(np.linspace(-0.5, 95.5, 25), np.linspace(-0.5, 95.5, 25)), -1).reshape(-1, 2)
    cams = [c for s in range(12) for c in make_sequence(RigDataConfig(frames=1), 7, s).cameras]
    assert max(abs(c.dist[0]) for c in cams) > 0.2  # strong barrel distortion among them
    op = Undistort()
    criteria = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 200, 1e-14)
    for cam in cams:
        want = cv2.undistortPoints(grid.reshape(-1, 1, 2), cam.K, cam.dist, P=cam.K, criteria=criteria).reshape(-1, 2)
        got = op(torch.tensor(grid[None], dtype=torch.float32), torch.tensor(cam.K[None], dtype=torch.float32),
                 torch.tensor(cam.dist[None], dtype=torch.float32))[0].numpy()
        np.testing.assert_allclose(got, want, atol=2e-3)
    same = op(torch.tensor(grid[None], dtype=torch.float32), torch.eye(3)[None] * 50, torch.zeros(1, 5))
    torch.testing.assert_close(same[0], torch.tensor(grid, dtype=torch.float32), atol=1e-5, rtol=0)


def test_export_form_matches_and_config_checks(quick):
    family, run, model, _, inputs, _ = quick
    form = family.export_form(model)
    args = [torch.from_numpy(inputs[k]) for k in app.INPUTS]
    with torch.no_grad():
        for a, b in zip(model(*args), form(*args)):
            torch.testing.assert_close(b, a, atol=1e-3, rtol=1e-3)
    known = dict(form.named_modules())
    assert all(m in known for m in family.float_modules(run.model))
    with pytest.raises(Exception, match="data.image_size"):
        family.load_data(dataclasses.replace(run, model=dataclasses.replace(run.model, image_size=96)), "val")
    with pytest.raises(Exception, match="model.views"):
        TriangulationNet(TriangulationConfig(views=1))


def _composed(family, run, form, inputs, runners_for):
    parts = family.parts(form, run.model, "parts")
    feeds = family.part_inputs(parts, [{k: a[:1] for k, a in inputs.items()}])
    spec = parts_spec("parts", "pytorch", parts, family.output_names(run.model), {p.name: feeds[p.name][0] for p in parts})
    return family.compose("parts", runners_for(parts, feeds), spec), parts


def test_parts_composed_equal_whole(quick):
    family, run, model, _, inputs, _ = quick
    form = family.export_form(model)
    whole = TorchRunner(form, list(family.input_spec(run.model)), family.output_names(run.model))
    composed, parts = _composed(family, run, form, inputs, lambda parts, _: {
        p.name: TorchRunner(p.module, p.input_names, p.output_names) for p in parts})
    assert [p.name for p in parts] == ["per_view", "triangulate"]
    for p in parts:  # the float modules reach each part under their whole-model names
        assert any(m in dict(p.module.named_modules()) for m in family.float_modules(run.model))
    a, b = whole.run(inputs), composed.run(inputs)
    assert list(b) == family.output_names(run.model)
    for name in a:
        np.testing.assert_allclose(b[name], a[name], atol=1e-3, rtol=1e-4, err_msg=name)


def test_onnx_parts_composed_equal_whole(quick, tmp_path):
    from edgecap.backends.base import ExportRequest
    from edgecap.backends.onnx.export import export_onnx
    from edgecap.backends.onnx.runner import OnnxRunner

    family, run, model, _, inputs, _ = quick
    form = family.export_form(model)
    meta = family.metadata(run.model)

    def onnx_runners(parts, feeds):
        out = {}
        for p in parts:
            export_onnx(ExportRequest(p.module, feeds[p.name][0], p.output_names, "fp32", meta), tmp_path / f"{p.name}.onnx")
            out[p.name] = OnnxRunner(tmp_path / f"{p.name}.onnx")
        return out

    composed, _ = _composed(family, run, form, inputs, onnx_runners)
    whole = TorchRunner(form, list(family.input_spec(run.model)), family.output_names(run.model))
    a, b = whole.run(inputs), composed.run(inputs)
    np.testing.assert_array_equal(b["valid"], a["valid"])
    np.testing.assert_allclose(b["points_2d"], a["points_2d"], atol=1e-3)
    np.testing.assert_allclose(b["joints_3d"], a["joints_3d"], atol=0.05)  # mm
    assert composed.metadata()["model"] == "triangulation"


def test_predict_file_round_trip(quick, tmp_path):
    family, run, model, _, inputs, _ = quick
    runner = TorchRunner(family.export_form(model), list(app.INPUTS), family.output_names(run.model))
    one = {k: a[:1] for k, a in inputs.items()}
    np.savez(tmp_path / "in.npz", views=one["views"][0].astype(np.uint8), projections=one["projections"][0],
             camera_matrices=one["camera_matrices"][0], distortions=one["distortions"][0])
    summary = family.predict_file(runner, run.model, tmp_path / "in.npz", tmp_path / "out.npz")
    assert "1 sample(s)" in summary
    with np.load(tmp_path / "out.npz") as out:
        np.testing.assert_allclose(out["joints_3d"], runner.run(one)["joints_3d"], atol=1e-3)
        assert out["points_2d"].shape == (1, run.model.views, 17, 2)
    # without the lens arrays: no distortion
    np.savez(tmp_path / "pinhole.npz", views=one["views"], projections=one["projections"])
    family.predict_file(runner, run.model, tmp_path / "pinhole.npz", tmp_path / "out3.npz")
    pinhole = {**one, "distortions": np.zeros_like(one["distortions"])}
    with np.load(tmp_path / "out3.npz") as out:
        np.testing.assert_allclose(out["points_2d"], runner.run(pinhole)["points_2d"], atol=1e-3)
    np.savez(tmp_path / "bad.npz", views=inputs["views"][0])
    with pytest.raises(Exception, match="projections"):
        family.predict_file(runner, run.model, tmp_path / "bad.npz", tmp_path / "out2.npz")
    np.savez(tmp_path / "half.npz", views=one["views"], projections=one["projections"], distortions=one["distortions"])
    with pytest.raises(Exception, match="give both 'camera_matrices' and 'distortions'"):
        family.predict_file(runner, run.model, tmp_path / "half.npz", tmp_path / "out2.npz")
    np.savez(tmp_path / "shape.npz", views=one["views"], projections=one["projections"],
             camera_matrices=one["camera_matrices"], distortions=one["distortions"][..., :4])
    with pytest.raises(Exception, match=r"shape.npz: distortions has shape \(1, \d+, 4\)"):
        family.predict_file(runner, run.model, tmp_path / "shape.npz", tmp_path / "out2.npz")
