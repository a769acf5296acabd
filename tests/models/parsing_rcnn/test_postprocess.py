import numpy as np
import pytest
from PIL import Image

from edgecap import EdgecapError
from edgecap.data.densepose_parts import FINE_TO_COARSE
from edgecap.data.synthetic_densepose import generate_densepose
from edgecap.models.parsing_rcnn.postprocess import Detection, decode_detections, dim_image, draw_iuv_contours, paste_iuv


def _outputs(d=3, s=4):
    return {"boxes": np.zeros((d, 4), np.float32), "scores": np.zeros(d, np.float32),
            "part_logits": np.zeros((d, 25, s, s), np.float32), "u": np.zeros((d, 24, s, s), np.float32),
            "v": np.zeros((d, 24, s, s), np.float32), "coarse_logits": np.zeros((d, 15, s, s), np.float32)}


def _det(box, labels, u=None, v=None, score=0.9):
    labels = np.asarray(labels, np.int64)
    u = np.full(labels.shape, 0.5, np.float32) if u is None else np.asarray(u, np.float32)
    v = np.full(labels.shape, 0.25, np.float32) if v is None else np.asarray(v, np.float32)
    return Detection(np.asarray(box, np.float64), score, labels, u, v)


def test_decode_hand_made_logits():
    out = _outputs()
    out["boxes"][:] = [[10, 20, 50, 80], [0, 0, 5, 5], [0, 0, 0, 0]]
    out["scores"][:] = [0.3, 0.9, 0.0]  # slot 2 is a padded slot
    parts = np.array([[0, 3, 3, 7], [1, 2, 24, 7], [5, 5, 9, 9], [0, 12, 12, 0]])
    for d in range(2):
        np.put_along_axis(out["part_logits"][d], parts[None], 4.0, axis=0)
        out["coarse_logits"][d, 1] = 1.0  # foreground ...
        out["coarse_logits"][d, 0, 2, 2] = 3.0  # ... except here: part 9 must become background
        out["coarse_logits"][d, 0, 0, 0] = 3.0  # fine and coarse agree on background
        out["u"][d] = np.arange(24)[:, None, None] / 30.0  # U of part p = (p - 1) / 30
        out["v"][d] = 1.0 - np.arange(24)[:, None, None] / 30.0
    out["u"][1, 23, 1, 2] = 1.7  # raw regression outside [0, 1] is clipped
    out["v"][1, 2, 0, 1] = -0.2

    dets = decode_detections(out)  # threshold 0.5: slot 1 only
    assert [d.index for d in dets] == [1]
    det = dets[0]
    expect = parts.copy()
    expect[2, 2] = 0
    np.testing.assert_array_equal(det.I, expect)
    np.testing.assert_array_equal(det.box, [0, 0, 5, 5])
    assert det.score == pytest.approx(0.9)
    fg = expect > 0
    want_u = np.where(fg, (expect - 1) / 30.0, 0.0)
    want_u[1, 2] = 1.0
    want_v = np.where(fg, 1.0 - (expect - 1) / 30.0, 0.0)
    want_v[0, 1] = 0.0
    np.testing.assert_allclose(det.U, want_u, atol=1e-6)
    np.testing.assert_allclose(det.V, want_v, atol=1e-6)
    assert det.U.shape == det.V.shape == det.I.shape == (4, 4)

    # Lower threshold: both, highest score first; a padded slot (score 0) never comes out.
    assert [d.index for d in decode_detections(out, score_threshold=0.2)] == [1, 0]
    assert [d.index for d in decode_detections(out, score_threshold=0.0)] == [1, 0]
    assert decode_detections(out, score_threshold=0.95) == []
    # A runtime that kept a batch axis of 1 decodes the same.
    batched = decode_detections({k: v[None] for k, v in out.items()})
    np.testing.assert_array_equal(batched[0].I, det.I)


def test_decode_rejects_bad_outputs():
    out = _outputs()
    with pytest.raises(EdgecapError, match="lack"):
        decode_detections({k: v for k, v in out.items() if k != "u"})
    out["u"] = out["u"][:, :20]
    with pytest.raises(EdgecapError, match="expected"):
        decode_detections(out)


def test_paste_known_pixels():
    labels = np.arange(1, 17).reshape(4, 4)
    u = labels / 20.0
    v = 1.0 - labels / 20.0
    det = _det([10, 20, 18, 28], labels, u, v)
    for interp in ("bilinear", "nearest"):  # every label differs, so bilinear = nearest here
        iuv, people = paste_iuv([det], (40, 50), uv_interpolation=interp)
        assert iuv.shape == (40, 50, 3) and iuv.dtype == np.uint8
        block = iuv[20:28, 10:18]
        np.testing.assert_array_equal(block[:, :, 0], np.kron(labels, np.ones((2, 2), int)))
        q_u, q_v = (np.round(x.astype(np.float64) * 255) for x in (det.U, det.V))  # of the float32 maps
        np.testing.assert_array_equal(block[:, :, 1], np.kron(q_u, np.ones((2, 2))))
        np.testing.assert_array_equal(block[:, :, 2], np.kron(q_v, np.ones((2, 2))))
        outside = np.ones((40, 50), bool)
        outside[20:28, 10:18] = False
        assert not iuv[outside].any()
        np.testing.assert_array_equal(people[0], iuv)

    # One part with a U ramp: bilinear interpolates between cell centres, nearest keeps cells.
    ramp = np.tile(np.arange(4) / 3.0, (4, 1))
    det = _det([10, 20, 18, 28], np.ones((4, 4)), ramp, ramp.T)
    iuv, _ = paste_iuv([det], (40, 50))
    sx = np.clip((np.arange(8) + 0.5) * 0.5 - 0.5, 0, 3)  # pixel centres in map cell units
    np.testing.assert_array_equal(iuv[20, 10:18, 1], np.round(sx / 3 * 255))
    np.testing.assert_array_equal(iuv[20:28, 10, 2], np.round(sx / 3 * 255))
    iuv, _ = paste_iuv([det], (40, 50), uv_interpolation="nearest")
    np.testing.assert_array_equal(iuv[20, 10:18, 1], np.round(np.repeat(np.arange(4) / 3, 2) * 255))

    # Fractional box: pixels whose centres fall inside, background cells paste nothing.
    labels = np.zeros((4, 4), int)
    labels[1:3, 1:3] = 7
    iuv, _ = paste_iuv([_det([10.4, 20.0, 18.4, 28.0], labels)], (40, 50))
    assert set(np.unique(iuv[:, :, 0])) == {0, 7}
    rows, cols = np.nonzero(iuv[:, :, 0])
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (22, 25, 12, 15)
    with pytest.raises(EdgecapError):
        paste_iuv([_det([0, 0, 4, 4], labels[:3])], (10, 10))
    with pytest.raises(EdgecapError):
        paste_iuv([_det([0, 0, 4, 4], labels + 30)], (10, 10))


def test_overlap_resolved_by_score():
    a = _det([0, 0, 8, 8], np.full((4, 4), 2), score=0.6)
    b = _det([4, 4, 12, 12], np.full((4, 4), 5), score=0.9)
    for dets in ([a, b], [b, a]):
        iuv, people = paste_iuv(dets, (16, 16))
        assert (iuv[4:12, 4:12, 0] == 5).all()  # b (higher score) wins the overlap
        assert (iuv[0:4, 0:8, 0] == 2).all() and (iuv[0:8, 0:4, 0] == 2).all()
        by_score = {d.score: p for d, p in zip(dets, people)}
        assert (by_score[0.6][0:8, 0:8, 0] == 2).all()  # per-person images keep the whole person
        assert (by_score[0.9][4:12, 4:12, 0] == 5).all()
    # A higher-scoring box's background hides nobody.
    hollow = np.full((4, 4), 9)
    hollow[0:2, 0:2] = 0
    c = _det([4, 4, 12, 12], hollow, score=0.95)
    iuv, _ = paste_iuv([a, c], (16, 16))
    assert (iuv[4:8, 4:8, 0] == 2).all() and (iuv[8:12, 8:12, 0] == 9).all()
    assert (iuv[4:8, 4:8, 1] == 128).all() and (iuv[4:8, 4:8, 2] == 64).all()  # a's U, V came along
    # Equal scores: the earlier detection wins.
    d1, d2 = _det([0, 0, 8, 8], np.full((4, 4), 3), score=0.7), _det([0, 0, 8, 8], np.full((4, 4), 4), score=0.7)
    assert (paste_iuv([d1, d2], (8, 8))[0][:, :, 0] == 3).all()
    assert (paste_iuv([d2, d1], (8, 8))[0][:, :, 0] == 4).all()


def test_box_partly_outside_and_degenerate_boxes():
    labels = np.arange(1, 17).reshape(4, 4)
    iuv, _ = paste_iuv([_det([-4, -4, 4, 4], labels)], (10, 10))
    np.testing.assert_array_equal(iuv[0:4, 0:4, 0], np.kron(labels[2:, 2:], np.ones((2, 2), int)))
    assert not iuv[4:, :].any() and not iuv[:, 4:].any()
    iuv, _ = paste_iuv([_det([6, 7, 14, 15], labels)], (10, 10))  # past the right and bottom edges
    np.testing.assert_array_equal(iuv[7:10, 6:10, 0], np.kron(labels, np.ones((2, 2), int))[0:3, 0:4])
    for box in ([5, 5, 5, 9], [5, 5, 3, 9], [np.nan, 0, 4, 4], [20, 20, 30, 30], [-9, -9, -1, -1],
                [3.6, 3.6, 3.9, 3.9]):  # empty, inverted, NaN, outside, outside, no pixel centre
        iuv, people = paste_iuv([_det(box, labels)], (10, 10))
        assert not iuv.any() and not people[0].any(), box
    iuv, people = paste_iuv([], (6, 7))
    assert iuv.shape == (6, 7, 3) and people == []


def _perfect_detections(part, u, v, inst, size):
    """Detections whose S x S maps sample the ground truth of each person at the cell centres."""
    dets = []
    for k in range(1, int(inst.max()) + 1):
        mask = inst == k
        if mask.sum() < 30:
            continue
        rows, cols = np.nonzero(mask)
        x0, y0, x1, y1 = cols.min(), rows.min(), cols.max() + 1, rows.max() + 1
        gx = np.floor(x0 + (np.arange(size) + 0.5) * (x1 - x0) / size).astype(np.int64)
        gy = np.floor(y0 + (np.arange(size) + 0.5) * (y1 - y0) / size).astype(np.int64)
        cell = np.ix_(gy, gx)
        labels = np.where(mask[cell], part[cell], 0).astype(np.int64)
        dets.append(Detection(np.array([x0, y0, x1, y1], np.float64), float(mask.mean()), labels,
                              np.where(labels > 0, u[cell], 0).astype(np.float32),
                              np.where(labels > 0, v[cell], 0).astype(np.float32)))
    return dets


def _as_outputs(dets, size, slots):
    """Model-like outputs that decode to `dets` (padded to `slots` with score 0)."""
    out = _outputs(slots, size)
    for k, d in enumerate(dets):
        out["boxes"][k], out["scores"][k] = d.box, d.score
        np.put_along_axis(out["part_logits"][k], d.I[None], 5.0, axis=0)
        np.put_along_axis(out["coarse_logits"][k], FINE_TO_COARSE[d.I][None].astype(np.int64), 5.0, axis=0)
        ch = np.clip(d.I - 1, 0, 23)[None]
        out["u"][k] = 0.77  # other charts hold decoys
        np.put_along_axis(out["u"][k], ch, d.U[None], axis=0)
        np.put_along_axis(out["v"][k], ch, d.V[None], axis=0)
    return out


@pytest.fixture(scope="module")
def synthetic():
    return generate_densepose(2, (256, 256), max_people=4, seed=3)


def test_round_trip_on_synthetic_ground_truth(synthetic):
    dense = synthetic.dense
    for n in range(len(synthetic.images)):
        part, u, v, inst = dense.part_index[n], dense.u[n], dense.v[n], dense.instance[n]
        body = part > 0
        # At 128 x 128 per box (2x the mobile models' 64): decode model-like outputs, paste.
        dets = _perfect_detections(part, u, v, inst, 128)
        assert len(dets) >= 1
        decoded = decode_detections(_as_outputs(dets, 128, slots=len(dets) + 3), score_threshold=0.0)
        assert len(decoded) == len(dets)
        iuv, _ = paste_iuv(decoded, part.shape)
        agree = iuv[:, :, 0] == part
        assert agree[body].mean() > 0.95
        both = body & agree
        assert np.abs(iuv[:, :, 1] / 255.0 - u)[both].mean() < 0.02
        assert np.abs(iuv[:, :, 2] / 255.0 - v)[both].mean() < 0.03
        assert (iuv[:, :, 0][~body] > 0).mean() < 0.01
        # With a map cell per pixel or finer, the paste is exact (nearest U, V: to 1/255).
        dets = _perfect_detections(part, u, v, inst, 256)
        iuv, _ = paste_iuv(dets, part.shape, uv_interpolation="nearest")
        np.testing.assert_array_equal(iuv[:, :, 0], part)
        assert np.abs(iuv[:, :, 1] / 255.0 - u)[body].max() <= 0.5 / 255 + 1e-6
        assert np.abs(iuv[:, :, 2] / 255.0 - v)[body].max() <= 0.5 / 255 + 1e-6


def test_draw_contours(synthetic, tmp_path):
    image = np.ascontiguousarray(synthetic.images[0][:200, :])  # non-square: (200, 256)
    dense = synthetic.dense
    part, u, v, inst = (a[0][:200] for a in (dense.part_index, dense.u, dense.v, dense.instance))
    iuv, _ = paste_iuv(_perfect_detections(part, u, v, inst, 64), part.shape)
    body = iuv[:, :, 0] > 0
    assert body.sum() > 1000
    out = draw_iuv_contours(image, iuv, tmp_path / "vis" / "contours.png")
    drawn = np.asarray(Image.open(out).convert("RGB"))
    assert drawn.shape == image.shape
    dimmed = dim_image(image, 0.5)
    np.testing.assert_array_equal(drawn[~body], dimmed[~body])  # background: only dimmed
    changed = np.abs(drawn.astype(int) - dimmed).max(axis=2) > 30
    assert changed[body].mean() > 0.2  # contour lines cover a good part of the body
    assert sorted(p.name for p in (tmp_path / "vis").iterdir()) == ["contours.png"]  # no temp file left
    # A title keeps the size; nothing drawn on an image without people.
    out = draw_iuv_contours(image, iuv, tmp_path / "titled.png", title="frame 0")
    assert np.asarray(Image.open(out)).shape[:2] == image.shape[:2]
    out = draw_iuv_contours(image, np.zeros_like(iuv), tmp_path / "empty.png", dim=0.3)
    np.testing.assert_array_equal(np.asarray(Image.open(out).convert("RGB")), dim_image(image, 0.3))
    with pytest.raises(EdgecapError):
        draw_iuv_contours(image, iuv[:100], tmp_path / "bad.png")


def _random_outputs(rng, d=4, s=8):
    out = _outputs(d, s)
    out["boxes"][:] = [[10, 10, 60, 90], [100, 20, 150, 110], [30, 40, 70, 120], [0, 0, 0, 0]][:d]
    out["scores"][:] = [0.9, 0.8, 0.6, 0.0][:d]
    for name in ("part_logits", "u", "v", "coarse_logits"):
        out[name][:] = rng.normal(size=out[name].shape).astype(np.float32)
    return out


def test_detection_parity_identical_and_reordered_slots():
    from edgecap.models.parsing_rcnn.postprocess import detection_parity

    ref = _random_outputs(np.random.default_rng(0))
    same = detection_parity(ref, ref)
    assert same["matched"] == same["reference"] == 3 and same["label_agreement"] == 1.0
    assert same["box_max_abs_px"] == same["logit_max_abs"] == same["uv_max_abs"] == 0.0
    # The same detections in other slots (near-tied scores reorder them): still all matched.
    order = [2, 0, 1, 3]
    moved = {k: v[order] for k, v in ref.items()}
    p = detection_parity(moved, ref)
    assert p["matched"] == 3 and p["label_agreement"] == 1.0 and p["logit_max_abs"] == 0.0


def test_detection_parity_reports_differences():
    from edgecap.models.parsing_rcnn.postprocess import detection_parity

    ref = _random_outputs(np.random.default_rng(1))
    art = {k: v.copy() for k, v in ref.items()}
    art["boxes"][0] += 2.0  # 2 px shift, still IoU > 0.5
    art["part_logits"][1] += 0.25 * np.random.default_rng(2).normal(size=art["part_logits"][1].shape)
    art["scores"][2] = 0.0  # the artifact misses the third person
    p = detection_parity(art, ref)
    assert p["reference"] == 3 and p["artifact"] == 2 and p["matched"] == 2
    assert p["box_max_abs_px"] == pytest.approx(2.0)
    assert 0 < p["logit_max_abs"] < 2.0 and 0.3 < p["label_agreement"] < 1.0
