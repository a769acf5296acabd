"""load_h36m against small files written in the VideoPose3D npz layout + the JSON camera file."""

import io
import json
import os
import pickle
import zipfile

import numpy as np
import pytest

from edgecap import EdgecapError
from edgecap.data.h36m import load_h36m

# VideoPose3D's Human36mDataset.remove_joints list, written out independently of the loader.
REMOVED = [4, 5, 9, 10, 11, 16, 20, 21, 22, 23, 24, 28, 29, 30, 31]
KEPT = [j for j in range(32) if j not in REMOVED]
SUBJECTS, ACTIONS = ("S1", "S5"), ("Walking", "Eating")
F3D, F2D = 20, 22
SYMMETRY = [[4, 5, 6, 11, 12, 13], [1, 2, 3, 14, 15, 16]]  # left/right joints of the 17-joint layout


def qrot(q, v):
    """Rotate v (..., 3) by unit quaternion q = [w, x, y, z] with the cross-product formula
    (not a rotation matrix, so it checks the loader's matrix independently)."""
    w, u = q[0], np.broadcast_to(q[1:], v.shape)
    uv = np.cross(u, v)
    return v + 2 * (w * uv + np.cross(u, uv))


def make_files(tmp_path, edit=None):
    """Write data_3d/data_2d npz files and cameras.json; `edit(d3, d2, cams, meta)` may change
    the contents first. Returns (paths, truth) with truth[(subject, action, cam)] =
    (keypoints (F2D, 17, 2|3), camera-frame 3D (F3D, 17, 3) mm, not root-relative)."""
    rng = np.random.default_rng(0)
    q1 = rng.normal(size=4)
    q1 /= np.linalg.norm(q1)
    cams = {s: [
        {"id": "cam0", "orientation": [1.0, 0.0, 0.0, 0.0], "translation": [100.0, -200.0, 3000.0]},
        {"id": "cam1", "orientation": q1.tolist(), "translation": rng.normal(0, 2000, 3).tolist()},
    ] for s in SUBJECTS}
    d3, d2, truth = {}, {}, {}
    for s in SUBJECTS:
        d3[s], d2[s] = {}, {}
        for a in ACTIONS:
            world_m = rng.normal(0, 0.5, (F3D, 32, 3)).astype(np.float32)
            d3[s][a] = world_m
            d2[s][a] = []
            for c, cam in enumerate(cams[s]):
                q = np.array(cam["orientation"])
                # World -> camera with the inverse (conjugate) quaternion, like world_to_camera.
                cam_mm = qrot(q * [1, -1, -1, -1], world_m[:, KEPT].astype(np.float64) * 1000 - cam["translation"])
                kp = rng.uniform(0, 1000, (F2D, 17, 2))
                if s == "S5":  # detector-style confidence channel with some missed joints
                    conf = rng.uniform(0.1, 1.0, (F2D, 17, 1)) * (rng.random((F2D, 17, 1)) > 0.2)
                    kp = np.concatenate([kp, conf], -1)
                d2[s][a].append(kp.astype(np.float32))
                truth[(s, a, c)] = (d2[s][a][-1], cam_mm)
    # Like VideoPose3D's ground-truth 2D file: no layout_name, numpy integers in the symmetry.
    meta = {"num_joints": 17, "keypoints_symmetry": [list(np.array(side)) for side in SYMMETRY]}
    if edit:
        edit(d3, d2, cams, meta)
    paths = (str(tmp_path / "data_3d_h36m.npz"), str(tmp_path / "data_2d_h36m_gt.npz"), str(tmp_path / "cameras.json"))
    np.savez_compressed(paths[0], positions_3d=d3)
    np.savez_compressed(paths[1], positions_2d=d2, metadata=meta)
    with open(paths[2], "w") as f:
        json.dump({"intrinsics": {"cam0": {}, "cam1": {}}, "extrinsics": cams}, f)
    return paths, truth


def order(subjects):
    return [(s, a, c) for s in subjects for a in sorted(ACTIONS) for c in range(2)]


def test_shapes_order_and_camera_frame(tmp_path):
    paths, truth = make_files(tmp_path)
    kps, gts = load_h36m(*paths, ("S5", "S1"))
    assert len(kps) == len(gts) == 2 * 2 * 2
    for kp, gt, key in zip(kps, gts, order(("S5", "S1"))):
        assert kp.shape == gt.shape == (F3D, 17, 3)  # 2D trimmed to the mocap length
        assert kp.dtype == gt.dtype == np.float32
        cam_mm = truth[key][1]
        np.testing.assert_allclose(gt, cam_mm - cam_mm[:, :1], atol=0.05)  # mm, float32 output
        assert np.all(gt[:, 0] == 0)


def test_identity_orientation_keeps_world_axes(tmp_path):
    # The camera translation cancels once poses are made root-relative, so with an identity
    # orientation the output is the world pose (in mm) minus its pelvis.
    paths, _ = make_files(tmp_path)
    kps, gts = load_h36m(*paths, ["S1"])
    world_m = np.load(paths[0], allow_pickle=True)["positions_3d"].item()["S1"]["Eating"]  # sorted: Eating first
    expected = world_m[:, KEPT] * 1000.0 - [100.0, -200.0, 3000.0]
    np.testing.assert_allclose(gts[0], expected - expected[:, :1], atol=0.05)
    # A rotated camera preserves root-relative distances but changes the coordinates.
    np.testing.assert_allclose(np.linalg.norm(gts[1], axis=-1), np.linalg.norm(gts[0], axis=-1), rtol=1e-4, atol=0.05)
    assert np.abs(gts[1] - gts[0]).max() > 10


def test_17_joint_3d_input_gives_the_same_result(tmp_path):
    paths, _ = make_files(tmp_path)
    _, gts32 = load_h36m(*paths, ["S1", "S5"])

    def reduce(d3, d2, cams, meta):
        for s in d3:
            for a in d3[s]:
                d3[s][a] = d3[s][a][:, KEPT]

    (tmp_path / "17").mkdir()
    paths17, _ = make_files(tmp_path / "17", reduce)
    _, gts17 = load_h36m(*paths17, ["S1", "S5"])
    for a, b in zip(gts32, gts17):
        np.testing.assert_array_equal(a, b)


def test_pixels_and_validity(tmp_path):
    paths, truth = make_files(tmp_path)
    kps, _ = load_h36m(*paths, ["S1", "S5"])
    for kp, key in zip(kps, order(["S1", "S5"])):
        src = truth[key][0][:F3D]
        if key[0] == "S1":  # (N, 17, 2): every joint valid
            np.testing.assert_array_equal(kp[..., :2], src)
            assert np.all(kp[..., 2] == 1)
        else:  # confidence 0 -> validity 0 and zeroed coordinates
            valid = src[..., 2] > 0
            assert 0 < valid.sum() < valid.size
            np.testing.assert_array_equal(kp[..., 2], valid.astype(np.float32))
            np.testing.assert_array_equal(kp[..., :2], src[..., :2] * valid[..., None])


@pytest.mark.parametrize("frames_2d", [F3D + 2, F3D - 3])
@pytest.mark.parametrize("stride", [1, 3])
def test_trimming_and_stride(tmp_path, frames_2d, stride):
    def cut(d3, d2, cams, meta):
        for s in d2:
            for a in d2[s]:
                d2[s][a] = [np.concatenate([kp, kp])[:frames_2d] for kp in d2[s][a]]

    paths, truth = make_files(tmp_path, cut)
    kps, gts = load_h36m(*paths, ["S1"], frame_stride=stride)
    f = min(frames_2d, F3D)
    frames = np.arange(0, f, stride)
    for kp, gt, key in zip(kps, gts, order(["S1"])):
        assert len(kp) == len(gt) == len(frames)
        np.testing.assert_array_equal(kp[..., :2], truth[key][0][frames])
        cam_mm = truth[key][1][frames]
        np.testing.assert_allclose(gt, cam_mm - cam_mm[:, :1], atol=0.05)


def test_numpy1_protocol2_pickles_load(tmp_path):
    """The published files were written by numpy 1.x: `numpy.core` globals, protocol 2 (bytes via _codecs)."""
    paths, _ = make_files(tmp_path)
    d3 = np.load(paths[0], allow_pickle=True)["positions_3d"].item()
    raw = pickle.dumps(np.array(d3, dtype=object), protocol=2).replace(b"numpy._core", b"numpy.core")
    assert b"numpy.core.multiarray" in raw and b"_codecs" in raw
    legacy = str(tmp_path / "legacy_3d.npz")
    write_npz_member(legacy, "positions_3d", raw)
    _, expected = load_h36m(*paths, ["S1"])
    _, got = load_h36m(legacy, paths[1], paths[2], ["S1"])
    for a, b in zip(expected, got):
        np.testing.assert_array_equal(a, b)


def write_npz_member(path, key, pickle_bytes):
    """An npz whose `key` member is a 0-d object array with the given pickle payload."""
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": "|O", "fortran_order": False, "shape": ()})
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(f"{key}.npy", buf.getvalue() + pickle_bytes)


class _Evil:
    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        return os.mkdir, (self.target,)


def test_code_in_pickle_is_not_run(tmp_path):
    paths, _ = make_files(tmp_path)
    target = str(tmp_path / "pwned")
    np.savez(paths[0], positions_3d=np.array({"S1": _Evil(target)}, dtype=object))
    with pytest.raises(EdgecapError, match=r"data_3d_h36m\.npz.*refusing to load posix\.mkdir"):
        load_h36m(*paths, ["S1"])
    assert not os.path.exists(target)


def put(container, key, value):
    container[key] = value


F3, F2, CAM = r"data_3d_h36m\.npz", r"data_2d_h36m_gt\.npz", r"cameras\.json"
ERROR_CASES = [  # (edit(d3, d2, cams, meta), expected message), both files named in every message
    pytest.param(lambda d3, d2, c, m: put(d3["S1"], "Walking", np.zeros((F3D, 31, 3))),
                 rf"{F3}.*positions_3d\['S1'\]\['Walking'\].*\(20, 31, 3\)", id="3d shape"),
    pytest.param(lambda d3, d2, c, m: put(d3["S1"]["Eating"], (0, 0, 0), np.nan),
                 rf"{F3}.*positions_3d\['S1'\]\['Eating'\].*NaN", id="3d nan"),
    pytest.param(lambda d3, d2, c, m: put(d2["S1"]["Walking"], 1, np.zeros((F2D, 16, 2))),
                 rf"{F2}.*positions_2d\['S1'\]\['Walking'\]\[1\].*\(22, 16, 2\)", id="2d shape"),
    pytest.param(lambda d3, d2, c, m: put(d2["S1"]["Walking"], 0, None),
                 rf"{F2}.*positions_2d\['S1'\]\['Walking'\]\[0\].*NoneType", id="2d none"),
    pytest.param(lambda d3, d2, c, m: put(d2["S1"]["Eating"][0], (3, 4, 0), np.nan),
                 rf"{F2}.*positions_2d\['S1'\]\['Eating'\]\[0\].*NaN", id="2d nan"),
    pytest.param(lambda d3, d2, c, m: c["S1"].append(c["S1"][0]),
                 rf"{F2}.*positions_2d\['S1'\]\['Eating'\] has 2 cameras.*{CAM} lists 3", id="camera count"),
    pytest.param(lambda d3, d2, c, m: d2["S1"].pop("Walking"),
                 rf"subject 'S1': actions differ.*{F3}.*{F2}.*only in 3D \['Walking'\]", id="action mismatch"),
    pytest.param(lambda d3, d2, c, m: put(c["S1"][1], "orientation", [1, 0, 0]),
                 rf"{CAM}: extrinsics\['S1'\]\[1\]: orientation", id="bad quaternion"),
    pytest.param(lambda d3, d2, c, m: c["S1"][0].pop("translation"),
                 rf"{CAM}: extrinsics\['S1'\]\[0\] needs", id="no translation"),
    pytest.param(lambda d3, d2, c, m: m.update(keypoints_symmetry=[[1, None]]),
                 rf"{F2}: metadata says .*symmetry", id="bad symmetry"),
    pytest.param(lambda d3, d2, c, m: m.update(layout_name="coco", keypoints_symmetry=[[1, 3], [2, 4]]),
                 rf"{F2}: metadata says layout 'coco'", id="coco layout"),
]


@pytest.mark.parametrize("edit,message", ERROR_CASES)
def test_content_errors(tmp_path, edit, message):
    paths, _ = make_files(tmp_path, edit)
    with pytest.raises(EdgecapError, match=message):
        load_h36m(*paths, ["S1"])


@pytest.mark.parametrize("which,label", [(0, "3D poses"), (1, "2D keypoints"), (2, "camera")])
def test_unknown_subject(tmp_path, which, label):
    def drop_s5(d3, d2, cams, meta):
        [d3, d2, cams][which].pop("S5")

    paths, _ = make_files(tmp_path, drop_s5)
    name = os.path.basename(paths[which])
    with pytest.raises(EdgecapError, match=rf"{label} file .*{name}: unknown subject 'S5' \(has \['S1'\]\)"):
        load_h36m(*paths, ["S1", "S5"])


@pytest.mark.parametrize("which,label", [(0, "3D poses"), (1, "2D keypoints"), (2, "camera")])
def test_missing_and_corrupt_files(tmp_path, which, label):
    paths, _ = make_files(tmp_path)
    missing = list(paths)
    missing[which] = str(tmp_path / "nope.npz")
    with pytest.raises(EdgecapError, match=rf"{label} file '.*nope\.npz' not found"):
        load_h36m(*missing, ["S1"])
    with open(paths[which], "wb") as f:
        f.write(b"not an npz or json \xff")
    name = os.path.basename(paths[which])
    with pytest.raises(EdgecapError, match=rf"{label} file .*{name}: .*not (a )?valid"):
        load_h36m(*paths, ["S1"])


def test_missing_keys(tmp_path):
    paths, _ = make_files(tmp_path)
    np.savez(paths[0], poses=np.zeros(3))
    with pytest.raises(EdgecapError, match=r"data_3d_h36m\.npz: missing key 'positions_3d' \(has \['poses'\]\)"):
        load_h36m(*paths, ["S1"])
    paths, _ = make_files(tmp_path)
    with open(paths[2], "w") as f:
        json.dump({"intrinsics": {}}, f)
    with pytest.raises(EdgecapError, match=r"cameras\.json: missing key 'extrinsics'"):
        load_h36m(*paths, ["S1"])


def test_bad_arguments(tmp_path):
    paths, _ = make_files(tmp_path)
    with pytest.raises(EdgecapError, match="frame_stride"):
        load_h36m(*paths, ["S1"], frame_stride=0)
    with pytest.raises(EdgecapError, match="no subjects"):
        load_h36m(*paths, [])
    assert len(load_h36m(*paths, "S1")[0]) == 4  # a bare string is one subject, not "S", "1"
