"""OpenPose JSON folders in the four layouts, mapped to h36m; bad folders fail with one line."""

import json

import numpy as np
import pytest

from edgecap import EdgecapError
from edgecap.data.multiview import load_openpose_folder, load_openpose_views
from edgecap.data.skeletons import H36M

# Joint orders written out from the sources (OpenPose poseParameters.cpp, openpose_train BODY_25B,
# Halpe-FullBody README), independently of the module's tables.
ORDERS = {
    "BODY_25": "Nose Neck RShoulder RElbow RWrist LShoulder LElbow LWrist MidHip RHip RKnee RAnkle LHip LKnee "
               "LAnkle REye LEye REar LEar LBigToe LSmallToe LHeel RBigToe RSmallToe RHeel",
    "BODY_25B": "Nose LEye REye LEar REar LShoulder RShoulder LElbow RElbow LWrist RWrist LHip RHip LKnee RKnee "
                "LAnkle RAnkle UpperNeck HeadTop LBigToe LSmallToe LHeel RBigToe RSmallToe RHeel",
    "COCO_18": "Nose Neck RShoulder RElbow RWrist LShoulder LElbow LWrist RHip RKnee RAnkle LHip LKnee LAnkle "
               "REye LEye REar LEar",
    "HALPE_26": "Nose LEye REye LEar REar LShoulder RShoulder LElbow RElbow LWrist RWrist LHip RHip LKnee RKnee "
                "LAnkle RAnkle Head Neck Hip LBigToe RBigToe LSmallToe RSmallToe LHeel RHeel",
}
# A standing person facing the camera, 1920x1080 image (pixels).
BODY = {
    "Nose": (962, 212), "LEye": (975, 200), "REye": (949, 199), "LEar": (991, 211), "REar": (931, 213),
    "LShoulder": (1031, 302), "RShoulder": (893, 304), "LElbow": (1052, 421), "RElbow": (869, 423),
    "LWrist": (1060, 530), "RWrist": (858, 533), "LHip": (1004, 560), "RHip": (920, 562), "LKnee": (1009, 742),
    "RKnee": (915, 744), "LAnkle": (1013, 913), "RAnkle": (911, 915), "LBigToe": (1030, 948),
    "LSmallToe": (1041, 941), "LHeel": (1005, 930), "RBigToe": (893, 950), "RSmallToe": (882, 943),
    "RHeel": (918, 932), "UpperNeck": (962, 262), "HeadTop": (961, 141), "Head": (961, 150),
}
BODY |= {"Neck": (962, 303), "MidHip": (962, 561), "Hip": (962, 561)}


def person(layout, shift=0.0, conf=0.87, missing=()):
    """pose_keypoints_2d of one person: x, y, c per joint; missing joints are 0, 0, 0."""
    out = []
    for name in ORDERS[layout].split():
        x, y = BODY[name]
        out += [0.0, 0.0, 0.0] if name in missing else [x + shift, y, conf]
    return {"person_id": [-1], "pose_keypoints_2d": out, "face_keypoints_2d": [], "hand_left_keypoints_2d": [],
            "hand_right_keypoints_2d": [], "pose_keypoints_3d": [], "face_keypoints_3d": [],
            "hand_left_keypoints_3d": [], "hand_right_keypoints_3d": []}


def write_folder(folder, frames, video="cam"):
    """frames: per frame, a list of people dicts (or a raw dict to write as the whole file)."""
    folder.mkdir(parents=True, exist_ok=True)
    for f, people in enumerate(frames):
        doc = people if isinstance(people, dict) else {"version": 1.3, "people": people}
        (folder / f"{video}_{f:012d}_keypoints.json").write_text(json.dumps(doc))
    return folder


def joint(kp, name):
    return kp[..., H36M.index(name), :]


@pytest.mark.parametrize("layout", sorted(ORDERS))
def test_each_layout_maps_to_h36m(tmp_path, layout):
    frames = [[person(layout)], [], [person(layout, shift=5.0), person(layout, shift=-300.0, conf=0.5)]]
    kp, got = load_openpose_folder(write_folder(tmp_path / "cam0", frames), layout=layout)
    assert got == layout and kp.shape == (3, 2, 17, 3) and kp.dtype == np.float32
    p = kp[0, 0]
    for name, src in [("r_wrist", "RWrist"), ("l_knee", "LKnee"), ("r_shoulder", "RShoulder"), ("neck", "Nose")]:
        np.testing.assert_allclose(joint(p, name), [*BODY[src], 0.87], rtol=1e-6)
    pelvis = {"BODY_25": BODY["MidHip"], "HALPE_26": BODY["Hip"]}.get(layout, np.mean([BODY["LHip"], BODY["RHip"]], 0))
    thorax = np.mean([BODY["LShoulder"], BODY["RShoulder"]], 0) if layout == "BODY_25B" else BODY["Neck"]
    head = {"BODY_25B": BODY["HeadTop"], "HALPE_26": BODY["Head"]}.get(layout, np.mean([BODY["LEar"], BODY["REar"]], 0))
    np.testing.assert_allclose(joint(p, "pelvis")[:2], pelvis)
    np.testing.assert_allclose(joint(p, "thorax")[:2], thorax)
    np.testing.assert_allclose(joint(p, "spine")[:2], (np.asarray(pelvis) + thorax) / 2)
    np.testing.assert_allclose(joint(p, "head")[:2], head)
    assert (kp[1, ..., 2] == 0).all() and (kp[0, 1] == 0).all()  # no detection / padding: confidence 0
    np.testing.assert_allclose(joint(kp[2, 0], "r_wrist"), [BODY["RWrist"][0] + 5, BODY["RWrist"][1], 0.87])
    np.testing.assert_allclose(joint(kp[2, 1], "pelvis")[2], 0.5)


def test_layout_detected_from_count_and_missing_joints(tmp_path):
    frames = [[person("COCO_18", missing=("LHip",))]]
    kp, layout = load_openpose_folder(write_folder(tmp_path / "c", frames))
    assert layout == "COCO_18"
    assert (joint(kp[0, 0], "l_hip") == 0).all()
    assert (joint(kp[0, 0], "pelvis") == 0).all() and (joint(kp[0, 0], "spine") == 0).all()  # derived from it
    assert joint(kp[0, 0], "r_hip")[2] > 0
    _, layout = load_openpose_folder(write_folder(tmp_path / "h", [[person("HALPE_26")]]))
    assert layout == "HALPE_26"


def test_25_keypoints_need_a_layout(tmp_path):
    folder = write_folder(tmp_path / "c", [[person("BODY_25")]])
    with pytest.raises(EdgecapError, match=r"cam_000000000000_keypoints\.json: 25 keypoints .* BODY_25 and BODY_25B"):
        load_openpose_folder(folder)
    with pytest.raises(EdgecapError, match=r"has 25 keypoints, layout HALPE_26 has 26"):
        load_openpose_folder(folder, layout="halpe-26")
    with pytest.raises(EdgecapError, match=r"unknown OpenPose layout 'MPI'"):
        load_openpose_folder(folder, layout="MPI")


def test_views_stack_and_frame_counts_must_match(tmp_path):
    a = write_folder(tmp_path / "a", [[person("BODY_25")], [person("BODY_25"), person("BODY_25", 40.0)]], "a")
    b = write_folder(tmp_path / "b", [[person("BODY_25", 9.0)], []], "b")
    views = load_openpose_views({"cam_a": a, "cam_b": b}, layout="BODY_25")
    assert list(views) == ["cam_a", "cam_b"] and {v.shape for v in views.values()} == {(2, 2, 17, 3)}
    c = write_folder(tmp_path / "c", [[person("BODY_25")]] * 3, "c")
    with pytest.raises(EdgecapError, match=r"camera 'cam_a' \(.*a\) has 2 frames, camera 'cam_c' \(.*c\) has 3"):
        load_openpose_views({"cam_a": a, "cam_c": c}, layout="BODY_25")
    d = write_folder(tmp_path / "d", [[person("COCO_18")], [person("COCO_18")]], "d")
    e = write_folder(tmp_path / "e", [[person("HALPE_26")], []], "e")
    with pytest.raises(EdgecapError, match=r"layouts differ: camera 'cam_d' is COCO_18, camera 'cam_e' is HALPE_26"):
        load_openpose_views({"cam_d": d, "cam_e": e})


def test_bad_files(tmp_path):
    nan = person("COCO_18")
    nan["pose_keypoints_2d"][4] = float("nan")
    cases = [
        ([[nan]], r"cam_000000000000_keypoints\.json: people\[0\]\.pose_keypoints_2d contains NaN"),
        ([{"version": 1.3, "people": {"0": []}}], r"cam_000000000000_keypoints\.json: 'people' must be a list"),
        ([{"version": 1.3}], r"'people' must be a list, got NoneType"),
        ([[], [{"pose_keypoints_2d": [1.0, 2.0, 0.5] * 17}]],
         r"cam_000000000001_keypoints\.json: people\[0\]\.pose_keypoints_2d has 51 values"),
        ([[person("COCO_18")], [person("HALPE_26")]], r"000001_keypoints\.json: .* has 26 keypoints, layout COCO_18"),
        ([[], []], r"no person detected in any of its 2 frames"),
    ]
    for i, (frames, match) in enumerate(cases):
        with pytest.raises(EdgecapError, match=match) as e:
            load_openpose_folder(write_folder(tmp_path / str(i), frames))
        assert "\n" not in str(e.value)
    (tmp_path / "empty").mkdir()
    with pytest.raises(EdgecapError, match=r"empty: no \*_keypoints\.json files"):
        load_openpose_folder(tmp_path / "empty")
    with pytest.raises(EdgecapError, match=r"not found"):
        load_openpose_folder(tmp_path / "nope")
