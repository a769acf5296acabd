"""DensePoseCOCO against small files in the DensePose-COCO json format (one annotation written by
hand) and against the synthetic writer's output; every error case."""

import copy
import json

import numpy as np
import pytest

from edgecap import EdgecapError
from edgecap.data.densepose_coco import DensePoseCOCO, coarse_channels, decode_dp_masks, load_densepose_coco
from edgecap.data.synthetic_densepose import load_dense_ground_truth, write_synthetic_densepose

EMPTY = []
# Hand-written DensePose annotation: a 64 x 128 box at (10, 20). dp_masks: Torso covers the
# whole box (compressed RLE "0PPP2" = 65536 ones), Head the top 32 rows of the box, written as
# an uncompressed RLE (column-major runs: 32 ones, 224 zeros per column); Head comes later in
# the list, so it wins where both are set.
HAND_ANN = {
    "id": 101, "image_id": 1, "category_id": 1, "iscrowd": 0, "area": 6000.0,
    "bbox": [10.0, 20.0, 64.0, 128.0],
    "segmentation": [[10.0, 20.0, 74.0, 20.0, 74.0, 148.0, 10.0, 148.0]],
    "num_keypoints": 0, "keypoints": [0] * 51,
    "dp_x": [0.0, 128.0, 64.0, 255.0], "dp_y": [0.0, 128.0, 32.0, 240.0],
    "dp_I": [2.0, 1.0, 23.0, 14.0], "dp_U": [0.1, 0.5, 0.25, 1.0], "dp_V": [0.9, 0.0, 0.75, 0.3],
    "dp_masks": [{"counts": "0PPP2", "size": [256, 256]}] + [EMPTY] * 12
                + [{"counts": [0] + [32, 224] * 256, "size": [256, 256]}],
}
BOX_ONLY = {"id": 102, "image_id": 1, "category_id": 1, "iscrowd": 0, "area": 300.0,
            "bbox": [100.5, 50.0, 20.0, 30.0], "segmentation": [[100.5, 50, 120.5, 50, 120.5, 80]],
            "num_keypoints": 0, "keypoints": [0] * 51}
CROWD = {"id": 103, "image_id": 1, "category_id": 1, "iscrowd": 1, "area": 900.0, "bbox": [0.0, 0.0, 30.0, 30.0],
         "segmentation": {"counts": [0, 900], "size": [30, 30]}}
BIKE = {"id": 104, "image_id": 2, "category_id": 2, "iscrowd": 0, "area": 10.0, "bbox": [1.0, 1.0, 5.0, 5.0],
        "segmentation": [[1, 1, 6, 1, 6, 6]]}


def base_dict():
    return {
        "images": [
            {"id": 1, "file_name": "COCO_val2014_000000000001.jpg", "width": 200, "height": 160, "license": 1,
             "coco_url": "", "flickr_url": "", "date_captured": ""},
            {"id": 2, "file_name": "COCO_val2014_000000000002.jpg", "width": 64, "height": 48, "license": 1,
             "coco_url": "", "flickr_url": "", "date_captured": ""},
        ],
        "annotations": copy.deepcopy([HAND_ANN, BOX_ONLY, CROWD, BIKE]),
        "categories": [{"id": 1, "name": "person", "supercategory": "person", "keypoints": [], "skeleton": []},
                       {"id": 2, "name": "bicycle", "supercategory": "vehicle"}],
    }


def write(tmp_path, data, images=True, name="densepose_coco_2014_minival.json"):
    (tmp_path / "val2014").mkdir(exist_ok=True)
    if images:
        for img in data.get("images", []):
            if isinstance(img, dict) and "file_name" in img:
                (tmp_path / "val2014" / img["file_name"]).write_bytes(b"\xff\xd8\xff")  # existence is what counts
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return path


def test_hand_written_annotation(tmp_path):
    ds = load_densepose_coco(write(tmp_path, base_dict()), tmp_path / "val2014")
    assert len(ds) == 2 and ds.image_ids == [1, 2]
    s = ds[0]
    assert s.image_id == 1 and s.image_path == tmp_path / "val2014" / "COCO_val2014_000000000001.jpg"
    assert (s.height, s.width) == (160, 200)
    np.testing.assert_array_equal(s.boxes, [[10, 20, 74, 148], [100.5, 50, 120.5, 80]])
    np.testing.assert_array_equal(s.ann_ids, [101, 102])
    np.testing.assert_array_equal(s.has_dp, [True, False])
    np.testing.assert_array_equal(s.crowd_boxes, [[0, 0, 30, 30]])
    # x = x0 + dp_x * w / 256, y = y0 + dp_y * h / 256
    expected = np.array([[10, 20, 2, 0.1, 0.9], [42, 84, 1, 0.5, 0.0], [26, 36, 23, 0.25, 0.75],
                         [73.75, 140, 14, 1.0, 0.3]], np.float32)
    np.testing.assert_allclose(s.points[0], expected, rtol=0, atol=1e-5)
    assert s.points[1].shape == (0, 5)
    assert s.coarse_masks.shape == (2, 256, 256) and s.coarse_masks.dtype == np.uint8
    head = np.zeros((256, 256), bool)
    head[:32] = True
    np.testing.assert_array_equal(s.coarse_masks[0], np.where(head, 14, 1))
    assert not s.coarse_masks[1].any()
    channels = coarse_channels(s.coarse_masks[0])
    assert channels.shape == (14, 256, 256)
    assert channels[0].sum() == 256 * 224 and channels[13].sum() == 256 * 32 and not channels[1:13].any()
    empty = ds[1]  # only a bicycle: no people
    assert empty.num_instances == 0 and empty.boxes.shape == (0, 4) and empty.coarse_masks.shape == (0, 256, 256)
    assert ds[-1].image_id == 2
    with pytest.raises(IndexError):
        ds[2]
    with pytest.raises(EdgecapError, match="image id 7"):
        ds.sample(7)


def test_options_and_test_split_without_annotations(tmp_path):
    path = write(tmp_path, base_dict())
    assert DensePoseCOCO(path, tmp_path / "val2014", dp_only=True).image_ids == [1]
    assert DensePoseCOCO(path, tmp_path / "val2014", min_box_size=25).sample(1).ann_ids.tolist() == [101]
    test = base_dict()
    del test["annotations"]  # densepose_coco_2014_test.json: images only
    ds = DensePoseCOCO(write(tmp_path, test, name="densepose_coco_2014_test.json"), tmp_path / "val2014")
    assert len(ds) == 2 and ds[0].num_instances == 0


def test_decode_dp_masks_order_and_checks():
    labels = decode_dp_masks(HAND_ANN["dp_masks"])
    assert labels[0, 0] == 14 and labels[40, 0] == 1
    with pytest.raises(EdgecapError, match="14"):
        decode_dp_masks(HAND_ANN["dp_masks"][:13])
    with pytest.raises(EdgecapError, match="decode"):
        decode_dp_masks([{"counts": "!!!", "size": [256, 256]}] + [[]] * 13)


def test_synthetic_output(tmp_path):
    json_path = write_synthetic_densepose(tmp_path, 3, "train", seed=5, image_size=(160, 192))
    ds = load_densepose_coco(json_path, tmp_path / "train")
    raw = json.loads(json_path.read_text())
    assert len(ds) == 3
    seen = 0
    for s in ds:
        assert s.image_path.is_file() and (s.height, s.width) == (160, 192)
        gt = load_dense_ground_truth(s.image_path.with_suffix(".npz"))
        anns = {a["id"]: a for a in raw["annotations"] if a["image_id"] == s.image_id}
        assert sorted(anns) == sorted(s.ann_ids.tolist())
        for k, ann_id in enumerate(s.ann_ids):
            x0, y0, w, h = anns[ann_id]["bbox"]
            np.testing.assert_allclose(s.boxes[k], [x0, y0, x0 + w, y0 + h])
            assert s.has_dp[k] == ("dp_x" in anns[ann_id])
            if not s.has_dp[k]:
                continue
            p = s.points[k]
            col, row = np.floor(p[:, 0]).astype(int), np.floor(p[:, 1]).astype(int)
            slot = int(np.nonzero(gt["ann_ids"] == ann_id)[0][0]) + 1
            assert np.all(gt["instance"][row, col] == slot)
            np.testing.assert_array_equal(gt["part_index"][row, col], p[:, 2])
            np.testing.assert_allclose(gt["u"][row, col], p[:, 3], atol=1e-6)
            np.testing.assert_allclose(gt["v"][row, col], p[:, 4], atol=1e-6)
            np.testing.assert_array_equal(s.coarse_masks[k], decode_dp_masks(anns[ann_id]["dp_masks"]))
            assert s.coarse_masks[k].any()
            seen += len(p)
    assert seen > 100


def edit(path_fn):
    def apply(d):
        path_fn(d)
        return d
    return apply


def set_ann(key, value, index=0):
    return edit(lambda d: d["annotations"][index].__setitem__(key, value))


def del_ann(key, index=0):
    return edit(lambda d: d["annotations"][index].pop(key))


BAD = {
    "no images list": (edit(lambda d: d.pop("images")), "'images' list"),
    "image without file_name": (edit(lambda d: d["images"][0].pop("file_name")), "file_name"),
    "duplicate image id": (edit(lambda d: d["images"][1].__setitem__("id", 1)), "duplicate image"),
    "annotations not a list": (edit(lambda d: d.__setitem__("annotations", {})), "must be a list"),
    "annotation without bbox": (del_ann("bbox"), "missing field 'bbox'"),
    "annotation without iscrowd": (del_ann("iscrowd", 1), "missing field 'iscrowd'"),
    "short bbox": (set_ann("bbox", [1.0, 2.0, 3.0]), "bbox"),
    "negative box size": (set_ann("bbox", [1.0, 2.0, -3.0, 4.0]), "bbox"),
    "unknown image id": (set_ann("image_id", 9), "image_id 9"),
    "duplicate annotation id": (set_ann("id", 101, 1), "duplicate annotation id"),
    "dp arrays of different lengths": (set_ann("dp_U", [0.1, 0.2, 0.3]), "different lengths"),
    "dp field missing": (del_ann("dp_V"), "missing \\['dp_V'\\]"),
    "dp field not a list": (set_ann("dp_x", 3.0), "dp_x must be a list"),
    "dp value not a number": (set_ann("dp_y", [0.0, "a", 1.0, 2.0]), "numbers"),
    "dp_I zero": (set_ann("dp_I", [0.0, 1.0, 2.0, 3.0]), "dp_I"),
    "dp_I 25": (set_ann("dp_I", [25.0, 1.0, 2.0, 3.0]), "dp_I"),
    "dp_I fractional": (set_ann("dp_I", [1.5, 1.0, 2.0, 3.0]), "dp_I"),
    "dp_U above 1": (set_ann("dp_U", [0.1, 1.5, 0.2, 0.3]), "dp_U"),
    "dp_V negative": (set_ann("dp_V", [0.1, -0.5, 0.2, 0.3]), "dp_V"),
    "dp_x not finite": (set_ann("dp_x", [0.0, float("nan"), 1.0, 2.0]), "finite"),
    "13 dp_masks": (set_ann("dp_masks", HAND_ANN["dp_masks"][:13]), "list of 14"),
    "dp_mask of the wrong size": (set_ann("dp_masks", [{"counts": "0PPP2", "size": [128, 128]}] + [[]] * 13), "size"),
    "dp_mask without counts": (set_ann("dp_masks", [{"size": [256, 256]}] + [[]] * 13), "counts"),
    "no person category": (edit(lambda d: d["categories"].pop(0)), "person"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_annotation_files(tmp_path, case):
    change, message = BAD[case]
    path = write(tmp_path, change(base_dict()))
    with pytest.raises(EdgecapError, match=message):
        DensePoseCOCO(path, tmp_path / "val2014")


def test_missing_or_corrupt_files(tmp_path):
    with pytest.raises(EdgecapError, match="not found"):
        DensePoseCOCO(tmp_path / "densepose_coco_2014_train.json", tmp_path)
    path = write(tmp_path, base_dict())
    path.write_text(path.read_text()[:-40])  # truncated download
    with pytest.raises(EdgecapError, match="not valid JSON"):
        DensePoseCOCO(path, tmp_path / "val2014")
    path.write_text("[1, 2, 3]")
    with pytest.raises(EdgecapError, match="COCO dict"):
        DensePoseCOCO(path, tmp_path / "val2014")
    other = tmp_path / "other"
    other.mkdir()
    path = write(other, base_dict(), images=False)
    with pytest.raises(EdgecapError, match="2 of 2 images .* missing"):
        DensePoseCOCO(path, other / "val2014")
    assert len(DensePoseCOCO(path, other / "val2014", check_images=False)) == 2
    # A corrupt RLE string is caught when that sample is decoded.
    bad = base_dict()
    bad["annotations"][0]["dp_masks"][0] = {"counts": "!!!", "size": [256, 256]}
    ds = DensePoseCOCO(write(tmp_path, bad), tmp_path / "val2014")
    with pytest.raises(EdgecapError, match="annotation 101 dp_masks\\[0\\]: cannot decode"):
        ds[0]
