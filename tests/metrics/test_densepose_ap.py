"""DensePose GPS / GPSm AP and the geodesic models on hand-built cases with known answers."""

import os
import pickle

import numpy as np
import pytest
from pycocotools import mask as mask_utils
from scipy.io import savemat

from edgecap import EdgecapError
from edgecap.metrics.densepose import (
    PAPER_KAPPA,
    SMPL_PART_KAPPA,
    ChartGeodesics,
    TableGeodesics,
    densepose_ap,
    gps_score,
)

W, H = 100, 150  # person box in pixels: area 15000 > 96^2, a "large" person
BOX_A = [20.0, 20.0, W, H]
BOX_B = [200.0, 20.0, W, H]
ROWS, COLS = np.meshgrid(np.arange(5, H, 25), np.arange(5, W, 20), indexing="ij")  # 6 x 5 points
ROWS, COLS = ROWS.ravel(), COLS.ravel()
UNIT = ChartGeodesics(np.ones((24, 2)))  # chart distance = geodesic distance in metres


def truth():
    """The person's true I, U, V at box resolution (H, W): all part 1 (torso back)."""
    r, c = np.mgrid[0:H, 0:W]
    return np.ones((H, W), int), 0.1 + 0.5 * (c + 0.5) / W, 0.1 + 0.8 * (r + 0.5) / H


def person(box=BOX_A, image_id=1, dense=True, masks=False):
    """A DensePose-COCO annotation whose points sit at the centres of box pixels (ROWS, COLS)."""
    ann = {"image_id": image_id, "category_id": 1, "bbox": box, "area": W * H, "iscrowd": 0}
    if dense:
        i, u, v = truth()
        ann.update(dp_x=((COLS + 0.5) * 255 / W).tolist(), dp_y=((ROWS + 0.5) * 255 / H).tolist(),
                   dp_I=i[ROWS, COLS].tolist(), dp_U=u[ROWS, COLS].tolist(), dp_V=v[ROWS, COLS].tolist())
    if masks:  # the whole box is body; counts as str, as read from the JSON file
        rle = mask_utils.encode(np.asfortranarray(np.ones((256, 256), np.uint8)))
        ann["dp_masks"] = [{"size": rle["size"], "counts": rle["counts"].decode()}] + [[]] * 13
    return ann


def dataset(*anns, image_ids=(1,)):
    images = [{"id": i, "height": 400, "width": 400} for i in image_ids]
    return {"images": images, "annotations": list(anns), "categories": [{"id": 1, "name": "person"}]}


def det(box=BOX_A, score=0.9, image_id=1, maps=None):
    i, u, v = truth() if maps is None else maps
    return {"image_id": image_id, "bbox": box, "score": score, "category_id": 1, "I": i, "U": u, "V": v}


def ap(gt, dets, **kw):
    return densepose_ap(gt, dets, UNIT, kappa=PAPER_KAPPA, **kw)


def shifted_u(gps):
    """Maps whose U is off by the chart distance d that gives GPS exp(-d^2 / (2 kappa^2)) = gps."""
    i, u, v = truth()
    return i, u + PAPER_KAPPA * np.sqrt(-2 * np.log(gps)), v


def test_perfect_prediction_gives_ap_1():
    res = ap(dataset(person()), [det()])
    assert res == pytest.approx({"AP": 1.0, "AP50": 1.0, "AP75": 1.0, "APm": -1.0, "APl": 1.0})


def test_maps_at_another_resolution_are_sampled_at_box_pixel_centres():
    maps = [np.zeros((3 * H, 3 * W)) for _ in range(3)]  # background except under pixel centres
    for big, m in zip(maps, truth()):
        big[1::3, 1::3] = m
    assert gps_score(det(maps=maps), person(), UNIT, PAPER_KAPPA) == pytest.approx(1.0)


def test_uniform_chart_error_gives_known_gps_and_ap():
    d = det(maps=shifted_u(0.72))
    assert gps_score(d, person(), UNIT, PAPER_KAPPA) == pytest.approx(0.72)
    res = ap(dataset(person()), [d])
    assert res["AP"] == pytest.approx(0.5)  # passes 0.50, .., 0.70: 5 of 10 thresholds
    assert res["AP50"] == pytest.approx(1.0) and res["AP75"] == 0.0


def test_part_sizes_scale_the_chart_distance():
    sizes = np.ones((24, 2))
    sizes[0] = [2.0, 0.5]
    d = ChartGeodesics(sizes).distance([1, 1, 2, 0], [0.1, 0.1, 0.1, 0.1], [0.2] * 4,
                                       [1, 2, 2, 0], [0.4, 0.1, 0.4, 0.1], [0.6, 0.2, 0.2, 0.2])
    np.testing.assert_allclose(d, [np.hypot(2 * 0.3, 0.5 * 0.4), np.inf, 0.3, np.inf])
    with pytest.raises(ValueError, match="24, 2"):
        ChartGeodesics(np.ones((25, 2)))


def test_official_per_part_kappa():
    # Torso (part 1) normalises by 0.351 m, a hand (part 3) by 0.107 m.
    assert SMPL_PART_KAPPA[[1, 3, 5, 7, 11, 15, 19, 23]] == pytest.approx(
        [0.351, 0.107, 0.126, 0.237, 0.173, 0.142, 0.128, 0.150])
    i, u, v = truth()
    i[:, W // 2:] = 3
    ann = person()
    ann["dp_I"] = i[ROWS, COLS].tolist()
    g = gps_score(det(maps=(i, u + 0.1, v)), ann, UNIT)
    on_torso = np.mean(COLS < W // 2)
    expected = on_torso * np.exp(-0.01 / (2 * 0.351**2)) + (1 - on_torso) * np.exp(-0.01 / (2 * 0.107**2))
    assert g == pytest.approx(expected)


def test_wrong_part_points_count_zero():
    i, u, v = truth()
    i[ROWS[::3], COLS[::3]] = 2  # a third of the points on the wrong part, U, V still right
    d = det(maps=(i, u, v))
    assert gps_score(d, person(), UNIT, PAPER_KAPPA) == pytest.approx(2 / 3)
    assert ap(dataset(person()), [d])["AP"] == pytest.approx(0.4)  # passes 0.50 .. 0.65


def test_points_outside_the_box_or_on_background_count_zero():
    i, u, v = (m[:, : W // 2] for m in truth())  # a box over the left half of the person
    left = det(box=[20.0, 20.0, W / 2, H], maps=(i, u, v))
    assert gps_score(left, person(), UNIT, PAPER_KAPPA) == pytest.approx(np.mean(COLS < W // 2))
    i, u, v = truth()
    assert gps_score(det(maps=(0 * i, u, v)), person(), UNIT, PAPER_KAPPA) == 0.0


def test_dp_scale_256_reads_annotations_written_with_256():
    # Points written as dp_x = (c + 0.5) * 256 / W (detectron2 training, edgecap's synthetic data):
    # read with the official 255 the last row of a 150-pixel box falls outside it.
    cols, rows = np.arange(0, W, 10), np.full(W // 10, H - 1)  # points on the box's last row
    i, u, v = truth()
    ann = {"bbox": BOX_A, "dp_x": (cols + 0.5) * 256 / W, "dp_y": (rows + 0.5) * 256 / H,
           "dp_I": i[rows, cols], "dp_U": u[rows, cols], "dp_V": v[rows, cols]}
    assert gps_score(det(), ann, UNIT, PAPER_KAPPA, dp_scale=256) == pytest.approx(1.0)
    assert gps_score(det(), ann, UNIT, PAPER_KAPPA) == 0.0


def test_missed_person_halves_recall():
    res = ap(dataset(person(BOX_A), person(BOX_B)), [det(BOX_A)])
    assert res["AP"] == pytest.approx(51 / 101)  # precision 1 up to recall 0.5


def test_duplicate_is_a_false_positive():
    gt = dataset(person(BOX_A), person(BOX_B))
    # Ranked TP, FP (duplicate), TP: precision 1 up to recall 0.5, then 2/3.
    dets = [det(BOX_A, 0.9), det(BOX_A, 0.8), det(BOX_B, 0.7)]
    assert ap(gt, dets)["AP"] == pytest.approx((51 + 50 * 2 / 3) / 101)


def test_gpsm_multiplies_in_the_mask_iou():
    # The detection's box is twice as tall, all body: mask IoU 0.5, GPS 1, GPSm sqrt(0.5) = 0.71.
    i, u, v = (np.vstack([m, m]) for m in truth())
    d = det(box=[20.0, 20.0, W, 2 * H], maps=(i, u, v))
    gt = dataset(person(masks=True))
    assert ap(gt, [d])["AP"] == pytest.approx(1.0)
    assert ap(gt, [d], gpsm=True)["AP"] == pytest.approx(0.5)  # passes 0.50 .. 0.70


def test_official_ignore_rules():
    # A detection on an image without persons is ignored, not a false positive.
    gt = dataset(person(), image_ids=(1, 2))
    assert ap(gt, [det(score=0.5), det(score=0.9, image_id=2)])["AP"] == pytest.approx(1.0)
    # So is one on a person without dense points when the boxes overlap with IoU >= 0.8.
    gt = dataset(person(BOX_A), person(BOX_B, dense=False))
    assert ap(gt, [det(BOX_A, 0.5), det(BOX_B, 0.9)])["AP"] == pytest.approx(1.0)
    # A detection overlapping no person stays a false positive.
    assert ap(gt, [det(BOX_A, 0.5), det([20.0, 200.0, W, H], 0.9)])["AP"] == pytest.approx(0.5)


def test_no_detections_and_no_printing(capsys):
    assert ap(dataset(person()), [])["AP"] == 0.0
    assert capsys.readouterr().out == ""


# A tiny "mesh": 4 table vertices on a line at 0, 0.1, 0.3, 0.6 m. Pairs (a > b) in the official
# order a (a - 1) / 2 + b: (1,0) (2,0) (2,1) (3,0) (3,1) (3,2).
PDIST = np.array([0.1, 0.3, 0.2, 0.6, 0.5, 0.3])[:, None]
# Subdivided-mesh points: part, U, V and 1-based table vertex (points 4 and 5 share vertex 4).
POINTS = np.array([[1, 0.1, 0.1, 1], [1, 0.9, 0.1, 2], [2, 0.1, 0.1, 3], [2, 0.9, 0.9, 4], [2, 0.5, 0.5, 4]])


def write_tables(tmp_path, pdist_format):
    savemat(tmp_path / "SMPL_subdiv.mat", {"U_subdiv": POINTS[None, :, 1], "V_subdiv": POINTS[None, :, 2],
                                           "Part_ID_subdiv": POINTS[None, :, 0]})
    savemat(tmp_path / "SMPL_SUBDIV_TRANSFORM.mat", {"index": POINTS[:, 3:]})
    pdist = tmp_path / f"Pdist_matrix.{pdist_format}"
    if pdist_format == "pkl":
        pdist.write_bytes(pickle.dumps({"Pdist_matrix": PDIST}, protocol=2))
    elif pdist_format == "mat":
        savemat(pdist, {"Pdist_matrix": PDIST})
    else:
        np.save(pdist, PDIST)
    return tmp_path / "SMPL_subdiv.mat", tmp_path / "SMPL_SUBDIV_TRANSFORM.mat", pdist


@pytest.mark.parametrize("pdist_format", ["pkl", "mat", "npy"])
def test_table_geodesics_read_the_official_layout(tmp_path, pdist_format):
    geo = TableGeodesics.from_files(*write_tables(tmp_path, pdist_format))
    a = ([1, 1, 2, 2, 0, 3], [0.2, 0.0, 0.6, 0.1, 0.1, 0.1], [0.1, 0.0, 0.6, 0.2, 0.1, 0.1])
    b = ([1, 2, 2, 1, 1, 3], [0.8, 0.15, 0.9, 0.9, 0.1, 0.1], [0.2, 0.1, 0.8, 0.0, 0.1, 0.1])
    # vertices 0-1, 0-2 (across parts: finite, unlike ChartGeodesics), 3-3, 2-1, background, part without points
    expected = [0.1, 0.3, 0.0, 0.2, np.inf, np.inf]
    np.testing.assert_allclose(geo.distance(*a, *b), expected)
    np.testing.assert_allclose(geo.distance(*b, *a), expected)


def test_table_geodesics_in_the_evaluator(tmp_path):
    geo = TableGeodesics.from_files(*write_tables(tmp_path, "npy"))
    assert densepose_ap(dataset(person()), [det()], geo, kappa=PAPER_KAPPA)["AP"] == pytest.approx(1.0)
    # U mirrored: every point snaps to the other vertex of part 1, 0.1 m away.
    i, u, v = truth()
    mirrored = det(maps=(i, 1 - u, v))
    assert gps_score(mirrored, person(), geo, PAPER_KAPPA) == pytest.approx(np.exp(-0.1**2 / (2 * PAPER_KAPPA**2)))


class _RunsCode:
    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return os.mkdir, (str(self.path),)


def test_pickles_other_than_arrays_are_refused(tmp_path):
    subdiv, transform, pdist = write_tables(tmp_path, "pkl")
    pdist.write_bytes(pickle.dumps({"Pdist_matrix": _RunsCode(tmp_path / "pwned")}, protocol=2))
    with pytest.raises(EdgecapError, match="not a pickle of numpy arrays"):
        TableGeodesics.from_files(subdiv, transform, pdist)
    assert not (tmp_path / "pwned").exists()
