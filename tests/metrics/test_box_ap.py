"""Box AP on hand-built cases with known answers (COCO interpolates precision at 101 recalls)."""

import pytest

from edgecap.metrics.box_ap import box_ap

BOX_A = [10.0, 10.0, 100.0, 100.0]  # area 1e4 > 96^2: a "large" person
BOX_B = [200.0, 10.0, 100.0, 100.0]


def dataset(*boxes, image_ids=(1,)):
    return {
        "images": [{"id": i, "height": 400, "width": 400} for i in image_ids],
        # Id 0 on purpose: pycocotools reads a matched id of 0 as "unmatched" unless renumbered.
        "annotations": [{"id": k, "image_id": 1, "bbox": b} for k, b in enumerate(boxes)],
    }


def det(box, score=0.9, image_id=1):
    return {"image_id": image_id, "bbox": box, "score": score, "category_id": 1}


def test_perfect_detection_gives_ap_1_and_minus_1_for_empty_area_ranges():
    res = box_ap(dataset(BOX_A), [det(BOX_A)])
    assert res == pytest.approx({"AP": 1.0, "AP50": 1.0, "AP75": 1.0, "APs": -1.0, "APm": -1.0, "APl": 1.0})


def test_no_detections_give_ap_0():
    res = box_ap(dataset(BOX_A), [])
    assert res["AP"] == 0.0 and res["AP50"] == 0.0 and res["APl"] == 0.0


def test_iou_072_passes_half_of_the_thresholds():
    # IoU = 72/100 passes 0.50..0.70 (5 of 10 thresholds).
    res = box_ap(dataset(BOX_A), [det([10.0, 10.0, 100.0, 72.0])])
    assert res["AP"] == pytest.approx(0.5)
    assert res["AP50"] == pytest.approx(1.0) and res["AP75"] == 0.0


def test_missed_person_halves_recall():
    # Recall 0.5 at precision 1: 51 of the 101 recall points (0, 0.01, .., 0.5).
    res = box_ap(dataset(BOX_A, BOX_B), [det(BOX_A)])
    assert res["AP"] == pytest.approx(51 / 101)


def test_duplicate_is_a_false_positive():
    # Ranked TP, FP (duplicate), TP: precision 1 up to recall 0.5, then 2/3.
    dets = [det(BOX_A, 0.9), det(BOX_A, 0.8), det(BOX_B, 0.7)]
    assert box_ap(dataset(BOX_A, BOX_B), dets)["AP"] == pytest.approx((51 + 50 * 2 / 3) / 101)
    # Below the true positives the duplicate costs nothing.
    dets = [det(BOX_A, 0.9), det(BOX_B, 0.8), det(BOX_A, 0.7)]
    assert box_ap(dataset(BOX_A, BOX_B), dets)["AP"] == pytest.approx(1.0)


def test_prints_nothing(capsys):
    box_ap(dataset(BOX_A), [det(BOX_A)])
    assert capsys.readouterr().out == ""


def test_detection_on_unknown_image_is_refused():
    with pytest.raises(ValueError, match="image_id 7"):
        box_ap(dataset(BOX_A), [det(BOX_A, image_id=7)])
