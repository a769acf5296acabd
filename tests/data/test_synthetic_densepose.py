"""The synthetic DensePose generator: determinism, the DensePose-COCO format, sampled points and
masks against the dense maps, z-buffer occlusion, left/right and front/back semantics, charts."""

import dataclasses
import json

import numpy as np
import pycocotools.mask as mask_utils
import pytest

from edgecap import EdgecapError
from edgecap.data import densepose_parts as dp
from edgecap.data import synthetic_densepose as sd

DP_FIELDS = ("dp_x", "dp_y", "dp_I", "dp_U", "dp_V")


@pytest.fixture(scope="module")
def data():
    return sd.generate_densepose(6, seed=11)


def dense_of(data, ann):
    """(part_index, u, v, instance, person slot k) of the image and person an annotation is for."""
    n = ann["image_id"] - 1
    k = int(np.nonzero(data.dense.ann_ids[n] == ann["id"])[0][0])
    d = data.dense
    return d.part_index[n], d.u[n], d.v[n], d.instance[n], k


def decode(rle):
    return mask_utils.decode({"size": rle["size"], "counts": rle["counts"].encode()})


def test_deterministic_and_image_independent_of_count(data):
    again = sd.generate_densepose(3, seed=11)
    np.testing.assert_array_equal(again.images, data.images[:3])
    np.testing.assert_array_equal(again.dense.u, data.dense.u[:3])
    first3 = [a for a in data.coco["annotations"] if a["image_id"] <= 3]
    assert json.dumps(again.coco["annotations"]) == json.dumps(first3)
    other = sd.generate_densepose(3, seed=12)
    assert not np.array_equal(other.images, again.images)


def test_shapes_and_image_size():
    out = sd.generate_densepose(2, image_size=(200, 256), max_people=2, seed=1)
    assert out.images.shape == (2, 200, 256, 3) and out.images.dtype == np.uint8
    assert out.dense.part_index.shape == out.dense.instance.shape == (2, 200, 256)
    assert out.dense.u.dtype == out.dense.v.dtype == np.float32
    assert all(len(ids) <= 2 for ids in out.dense.ann_ids)
    assert [(i["height"], i["width"]) for i in out.coco["images"]] == [(200, 256)] * 2


def test_annotation_format(data):
    coco = json.loads(json.dumps(data.coco))  # plain JSON types only
    assert coco["categories"][0]["id"] == 1 and coco["categories"][0]["name"] == "person"
    assert [i["id"] for i in coco["images"]] == [1, 2, 3, 4, 5, 6]
    assert all(i["file_name"] == f"{i['id']:06d}.jpg" and i["width"] == i["height"] == 320 for i in coco["images"])
    anns = coco["annotations"]
    assert len({a["id"] for a in anns}) == len(anns) >= 6
    with_dp = [a for a in anns if "dp_x" in a]
    assert len(with_dp) >= 6
    for a in anns:
        assert a["category_id"] == 1 and a["iscrowd"] == 0 and a["num_keypoints"] == 0
        assert len(a["bbox"]) == 4 and all(isinstance(b, float) for b in a["bbox"]) and a["bbox"][2] > 0
        mask = decode(a["segmentation"])
        assert mask.shape == (320, 320) and a["area"] == float(mask.sum())
        has = [k in a for k in DP_FIELDS + ("dp_masks",)]
        assert all(has) or not any(has)
    for a in with_dp:
        n = len(a["dp_x"])
        assert 90 <= n <= 130 and all(len(a[k]) == n for k in DP_FIELDS)
        x, y = np.array(a["dp_x"]), np.array(a["dp_y"])
        assert x.min() >= 0 and x.max() < 256 and y.min() >= 0 and y.max() < 256
        part = np.array(a["dp_I"])
        assert all(isinstance(i, float) for i in a["dp_I"])
        assert np.all(part == np.round(part)) and part.min() >= 1 and part.max() <= 24
        for k in ("dp_U", "dp_V"):
            assert 0 <= min(a[k]) and max(a[k]) <= 1
        assert isinstance(a["dp_masks"], list) and len(a["dp_masks"]) == 14
        present = [m for m in a["dp_masks"] if m]
        assert present and all(m == [] for m in a["dp_masks"] if not m)
        for m in present:
            assert m["size"] == [256, 256] and isinstance(m["counts"], str)
            assert decode(m).shape == (256, 256) and decode(m).any()


def test_points_agree_with_dense_maps(data):
    checked = 0
    for a in data.coco["annotations"]:
        if "dp_x" not in a:
            continue
        part, u, v, inst, k = dense_of(data, a)
        x0, y0, w, h = a["bbox"]
        col = np.floor(x0 + np.array(a["dp_x"]) * w / 256).astype(int)
        row = np.floor(y0 + np.array(a["dp_y"]) * h / 256).astype(int)
        assert np.all(inst[row, col] == k + 1)
        np.testing.assert_array_equal(part[row, col], a["dp_I"])
        np.testing.assert_allclose(u[row, col], a["dp_U"], atol=1e-6)
        np.testing.assert_allclose(v[row, col], a["dp_V"], atol=1e-6)
        assert len(set(zip(row, col))) == len(row)  # distinct pixels
        checked += len(row)
    assert checked > 500


def test_masks_and_boxes_agree_with_dense_maps(data):
    for a in data.coco["annotations"]:
        part, _, _, inst, k = dense_of(data, a)
        visible = inst == k + 1
        np.testing.assert_array_equal(decode(a["segmentation"]), visible)
        rows, cols = np.nonzero(visible)
        assert a["bbox"] == [cols.min(), rows.min(), cols.max() + 1 - cols.min(), rows.max() + 1 - rows.min()]
        if "dp_masks" not in a:
            assert visible.sum() < 300
            continue
        x0, y0, w, h = (int(b) for b in a["bbox"])
        gy = np.floor(y0 + (np.arange(256) + 0.5) * h / 256).astype(int)
        gx = np.floor(x0 + (np.arange(256) + 0.5) * w / 256).astype(int)
        expected = np.where(visible[np.ix_(gy, gx)], dp.FINE_TO_COARSE[part][np.ix_(gy, gx)], 0)
        labels = np.zeros((256, 256), np.uint8)
        for c, m in enumerate(a["dp_masks"]):
            if m:
                assert not labels[decode(m) > 0].any()  # the 14 masks are disjoint
                labels[decode(m) > 0] = c + 1
        np.testing.assert_array_equal(labels, expected)


def test_dense_maps_are_consistent(data):
    d = data.dense
    fg = d.part_index > 0
    np.testing.assert_array_equal(fg, d.instance > 0)
    assert d.part_index.max() <= 24
    assert np.all(d.u[~fg] == 0) and np.all(d.v[~fg] == 0)
    assert 0 <= d.u.min() and d.u.max() <= 1 and 0 <= d.v.min() and d.v.max() <= 1
    for x in (d.u, d.v):  # multiples of 1/65535, as the uint16 npz stores them
        scaled = x.astype(np.float64) * 65535
        assert np.abs(scaled - np.round(scaled)).max() < 0.01
    for ids, inst in zip(d.ann_ids, d.instance):
        assert inst.max() <= len(ids)
    # Most of the 24 charts show up across a handful of images.
    assert len(np.unique(d.part_index)) >= 20


def occluded_scene():
    """A sampled scene where some person loses > 100 pixels to others."""
    for seed in range(50):
        scene = sd.sample_scene(np.random.default_rng(seed), (160, 160), 4)
        full = sd.render_scene(scene)
        for j in range(scene.num_people):
            alone = sd.render_scene(scene.select([j]))
            lost = (alone.instance == 1) & (full.instance != j + 1)
            if lost.sum() > 100 and (full.instance == j + 1).sum() > 100:
                return scene, full, alone, j
    raise AssertionError("no occluded person in 50 scenes")


def test_occlusion_by_the_z_buffer():
    scene, full, alone, j = occluded_scene()
    mine, alone_mask = full.instance == j + 1, alone.instance == 1
    assert not np.any(mine & ~alone_mask)  # others never add pixels to a person
    lost = alone_mask & ~mine
    occluder = full.instance[lost]
    assert np.all(occluder > 0) and np.all(occluder != j + 1)
    assert np.all(full.depth[lost] < alone.depth[lost])  # only nearer surfaces hide it
    np.testing.assert_array_equal(full.part_index[mine], alone.part_index[mine])
    np.testing.assert_array_equal(full.u[mine], alone.u[mine])
    np.testing.assert_array_equal(full.v[mine], alone.v[mine])
    # The annotation of the occluded person excludes the occluder's pixels.
    anns, ids = sd.annotate(full, np.random.default_rng(0), 1, 1)
    ann = next(a for a in anns if a["id"] == ids[j])
    seg = decode(ann["segmentation"]).astype(bool)
    np.testing.assert_array_equal(seg, mine)
    assert not np.any(seg & lost)


def single_person(yaw_deg, channels=None):
    """One person in the image centre, 2.6 m from a level camera at chest height."""
    scene = sd.sample_scene(np.random.default_rng(0), (240, 240), 1)
    angles = np.zeros_like(scene.angles)
    angles[0, sd.POSE_CHANNELS.index("yaw")] = yaw_deg
    angles[0, sd.POSE_CHANNELS.index("l_shoulder_abd")] = 45
    angles[0, sd.POSE_CHANNELS.index("r_shoulder_abd")] = 45
    for name, value in (channels or {}).items():
        angles[0, sd.POSE_CHANNELS.index(name)] = value
    return sd.render_scene(dataclasses.replace(
        scene, angles=angles, scale=np.ones(1), girth=np.ones(1), position=np.array([[0.0, 0.97, 2.6]]),
        focal=240.0, principal=np.array([120.0, 120.0]), cam_position=np.array([0.0, 1.1, 0.0]),
        cam_rotation=np.diag([-1.0, -1.0, 1.0])))


def centroid_x(r, label):
    cols = np.nonzero(r.part_index == label)[1]
    assert len(cols) > 5, f"part {label} not visible"
    return cols.mean()


def count(r, labels):
    return int(np.isin(r.part_index, labels).sum())


def test_left_right_and_front_back_semantics():
    facing = single_person(180)  # body +z towards the camera: the person's right is image left
    assert centroid_x(facing, 3) < centroid_x(facing, 4)  # right hand, left hand
    assert centroid_x(facing, 6) < centroid_x(facing, 5)  # right foot, left foot
    assert centroid_x(facing, 23) < centroid_x(facing, 24)  # head right, head left
    assert centroid_x(facing, 9) < centroid_x(facing, 10)  # upper leg right/left front
    assert count(facing, [2]) > 5 * count(facing, [1])  # torso front vs back
    assert count(facing, [9, 10, 13, 14]) > 3 * count(facing, [7, 8, 11, 12])
    assert count(facing, [15, 16, 19, 20]) > count(facing, [17, 18, 21, 22])
    away = single_person(0)
    assert centroid_x(away, 3) > centroid_x(away, 4)
    assert centroid_x(away, 23) > centroid_x(away, 24)
    assert count(away, [1]) > 5 * count(away, [2])
    assert count(away, [7, 8, 11, 12]) > 3 * count(away, [9, 10, 13, 14])
    # Raising the left arm sideways moves the left hand up in the image.
    raised = single_person(180, {"l_shoulder_abd": 160})
    rows = lambda r, label: np.nonzero(r.part_index == label)[0].mean()  # noqa: E731
    assert rows(raised, 4) < rows(facing, 4) - 40


def test_charts_mirror_like_the_flip_maps():
    rng = np.random.default_rng(0)
    q = rng.normal(size=(500, 3)) * [0.05, 0.05, 0.1] + [0, 0, 0.1]
    mirrored = q * [-1, 1, 1]
    ones = np.ones(len(q))
    for kind in range(8):
        sides = (0,) if kind in (sd.TORSO, sd.HEAD) else (1, -1)
        for side in sides:
            args = (0.2 * ones, 0.05 * ones, 0.04 * ones, np.tile([0.0, 1.0], (len(q), 1)))
            part, u, v = sd.part_chart(np.full(len(q), kind), np.full(len(q), side), q, *args)
            part_m, u_m, v_m = sd.part_chart(np.full(len(q), kind), np.full(len(q), -side), mirrored, *args)
            assert part.min() >= 1 and part.max() <= 24
            np.testing.assert_array_equal(part_m, dp.FINE_FLIP[part])
            np.testing.assert_allclose(u_m, u)
            np.testing.assert_allclose(v_m, 1 - v, atol=1e-12)
            assert np.all(dp.FINE_TO_COARSE[part] == dp.FINE_TO_COARSE[part][0])  # one coarse part per primitive
            flipped = dp.flip_iuv(part, u, v)
            np.testing.assert_array_equal(flipped[0], part_m)
            np.testing.assert_allclose(flipped[2], v_m, atol=1e-12)


def test_part_tables():
    assert len(dp.PART_NAMES) == 24 and len(dp.COARSE_NAMES) == 14
    assert dp.PART_NAMES[2:6] == ("Right Hand", "Left Hand", "Left Foot", "Right Foot")
    assert dp.COARSE_NAMES[3:5] == ("Left Foot", "Right Foot")
    swap = {"Left": "Right", "Right": "Left"}
    for i in range(1, 25):
        name = dp.PART_NAMES[i - 1]
        assert dp.COARSE_NAMES[dp.FINE_TO_COARSE[i] - 1] in name
        assert dp.FINE_FLIP[dp.FINE_FLIP[i]] == i
        assert dp.PART_NAMES[dp.FINE_FLIP[i] - 1] == " ".join(swap.get(w, w) for w in name.split())
        assert dp.COARSE_FLIP[dp.FINE_TO_COARSE[i]] == dp.FINE_TO_COARSE[dp.FINE_FLIP[i]]
    assert dp.PART_COLORS.shape == (25, 3) and len({tuple(c) for c in dp.PART_COLORS}) == 25


def test_writer_matches_generator(tmp_path):
    json_path = sd.write_synthetic_densepose(tmp_path, 2, "val", seed=11, image_format="png")
    assert json_path == tmp_path / "densepose_val.json"
    coco = json.loads(json_path.read_text())
    ref = sd.generate_densepose(2, seed=11)
    assert json.dumps(coco["annotations"]) == json.dumps(ref.coco["annotations"])
    from PIL import Image

    for n, img in enumerate(coco["images"]):
        assert img["file_name"] == f"{n + 1:06d}.png"
        np.testing.assert_array_equal(np.array(Image.open(tmp_path / "val" / img["file_name"])), ref.images[n])
        gt = sd.load_dense_ground_truth(tmp_path / "val" / f"{n + 1:06d}.npz")
        np.testing.assert_array_equal(gt["part_index"], ref.dense.part_index[n])
        np.testing.assert_array_equal(gt["instance"], ref.dense.instance[n])
        np.testing.assert_array_equal(gt["u"], ref.dense.u[n])
        np.testing.assert_array_equal(gt["v"], ref.dense.v[n])
        np.testing.assert_array_equal(gt["ann_ids"], ref.dense.ann_ids[n])
    # Without a seed, splits get different images.
    sd.write_synthetic_densepose(tmp_path, 1, "a", image_size=(64, 64))
    sd.write_synthetic_densepose(tmp_path, 1, "b", image_size=(64, 64))
    a, b = (np.array(Image.open(tmp_path / s / "000001.jpg")) for s in "ab")
    assert not np.array_equal(a, b)


@pytest.mark.parametrize("kwargs", [
    {"num_images": 0}, {"num_images": 1, "image_size": (16, 320)}, {"num_images": 1, "max_people": 0},
])
def test_bad_arguments(kwargs):
    with pytest.raises(EdgecapError):
        sd.generate_densepose(**kwargs)


def test_bad_writer_arguments_and_files(tmp_path):
    with pytest.raises(EdgecapError, match="image_format"):
        sd.write_synthetic_densepose(tmp_path, 1, image_format="gif")
    with pytest.raises(EdgecapError, match="not found"):
        sd.load_dense_ground_truth(tmp_path / "nope.npz")
    np.savez_compressed(tmp_path / "partial.npz", part_index=np.zeros((4, 4), np.uint8))
    with pytest.raises(EdgecapError, match="missing"):
        sd.load_dense_ground_truth(tmp_path / "partial.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(EdgecapError, match="npz"):
        sd.load_dense_ground_truth(tmp_path / "junk.npz")
