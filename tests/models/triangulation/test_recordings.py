"""triangulate_recording on a synthetic recording written in the tools' own formats: an anipose TOML
(4 cameras with OpenCV distortion) and OpenPose BODY_25 JSON folders projected through
cv2.projectPoints, with a distractor person, missing and low-confidence joints; the PyTorch path
against a Runner over the same op; bad inputs fail with one line naming the file and field."""

import json

import cv2
import numpy as np
import pytest
import torch

from edgecap import EdgecapError
from edgecap.core.io import load_arrays
from edgecap.core.runner import Runner
from edgecap.data.multiview import read_trc
from edgecap.data.skeletons import H36M
from edgecap.models.triangulation.dlt import WeightedDLT
from edgecap.models.triangulation.geometry import look_at
from edgecap.models.triangulation.recordings import format_summary, match_cameras, triangulate_recording

BODY_25 = ["Nose", "Neck", "RShoulder", "RElbow", "RWrist", "LShoulder", "LElbow", "LWrist", "MidHip", "RHip",
           "RKnee", "RAnkle", "LHip", "LKnee", "LAnkle", "REye", "LEye", "REar", "LEar", "LBigToe", "LSmallToe",
           "LHeel", "RBigToe", "RSmallToe", "RHeel"]
# A standing person, world mm, z up, pelvis at the origin.
POSE = {
    "Nose": (0, 80, 700), "Neck": (0, 0, 550), "RShoulder": (-180, 0, 540), "RElbow": (-200, 0, 270),
    "RWrist": (-210, 30, 20), "LShoulder": (180, 0, 540), "LElbow": (200, 0, 270), "LWrist": (210, 30, 20),
    "MidHip": (0, 0, 0), "RHip": (-100, 0, 0), "RKnee": (-110, 20, -420), "RAnkle": (-110, 0, -830),
    "LHip": (100, 0, 0), "LKnee": (110, 20, -420), "LAnkle": (110, 0, -830), "REye": (-35, 70, 740),
    "LEye": (35, 70, 740), "REar": (-75, 0, 720), "LEar": (75, 0, 720), "LBigToe": (110, 150, -880),
    "LSmallToe": (150, 130, -880), "LHeel": (110, -50, -880), "RBigToe": (-110, 150, -880),
    "RSmallToe": (-150, 130, -880), "RHeel": (-110, -50, -880),
}
# h36m joints taken directly from one BODY_25 joint (spine and head are 2D midpoints: not compared).
DIRECT = {"pelvis": "MidHip", "r_hip": "RHip", "r_knee": "RKnee", "r_ankle": "RAnkle", "l_hip": "LHip",
          "l_knee": "LKnee", "l_ankle": "LAnkle", "thorax": "Neck", "neck": "Nose", "l_shoulder": "LShoulder",
          "l_elbow": "LElbow", "l_wrist": "LWrist", "r_shoulder": "RShoulder", "r_elbow": "RElbow",
          "r_wrist": "RWrist"}
FRAMES = 10
K = [[1000.0, 0.0, 640.0], [0.0, 1000.0, 512.0], [0.0, 0.0, 1.0]]
DIST = [-0.15, 0.05, 0.001, -0.0005, 0.0]


def motion(offset=(0.0, 0.0, 0.0), phase=0.0) -> np.ndarray:
    """(FRAMES, 25, 3): the pose walking along x/y with swinging arms."""
    base = np.array([POSE[n] for n in BODY_25], float)
    out = []
    for f in range(FRAMES):
        pose = base + np.array(offset) + [30.0 * f, 15.0 * f, 0.0]
        for name in ("RWrist", "LWrist", "RElbow", "LElbow"):
            sign = 1 if name[0] == "R" else -1
            pose[BODY_25.index(name), 1] += sign * 150 * np.sin(f / 3 + phase) * (1 if "Wrist" in name else 0.5)
        out.append(pose)
    return np.stack(out)


def rig():
    """4 cameras 3.5 m from the origin, 0.4 m up, as anipose TOML sections: (section, name, rvec, t)."""
    cams = []
    for i, azimuth in enumerate(np.deg2rad([20, 110, 200, 290])):
        centre = [3500 * np.cos(azimuth), 3500 * np.sin(azimuth), 400.0]
        R, t = look_at(centre)
        cams.append((f"cam_{i}", "ABCD"[i], cv2.Rodrigues(R)[0].ravel(), t))
    return cams


def toml_list(v):
    return "[ " + " ".join(f"{toml_list(x) if isinstance(x, list) else repr(float(x))}," for x in v) + "]"


def write_toml(path, cams, matrix=None):
    lines = []
    for section, name, rvec, t in cams:
        lines += [f"[{section}]", f'name = "{name}"', "size = [ 1280, 1024,]", f"matrix = {toml_list(matrix or K)}",
                  f"distortions = {toml_list(DIST)}", f"rotation = {toml_list(list(rvec))}",
                  f"translation = {toml_list(list(t))}", ""]
    lines += ["[metadata]", "adjusted = false", "error = 0.0", ""]
    path.write_text("\n".join(lines))
    return path


def project(cam, X):
    _, _, rvec, t = cam
    return cv2.projectPoints(X.reshape(-1, 1, 3), rvec, np.asarray(t), np.array(K), np.array(DIST))[0].reshape(-1, 2)


def person_json(uv, conf):
    kp = np.concatenate([uv, conf[:, None]], 1)
    kp[conf == 0] = 0.0
    return {"person_id": [-1], "pose_keypoints_2d": [float(x) for x in kp.ravel()], "face_keypoints_2d": [],
            "hand_left_keypoints_2d": [], "hand_right_keypoints_2d": []}


def write_folder(folder, frames):
    folder.mkdir(parents=True, exist_ok=True)
    for f, people in enumerate(frames):
        (folder / f"video_{f:012d}_keypoints.json").write_text(json.dumps({"version": 1.3, "people": people}))
    return folder


def confidences(view):
    """The subject's confidences in one view: LWrist missing in view 1, below 0.2 in view 2; RAnkle
    seen by view 3 only (so it cannot be triangulated)."""
    conf = np.full(25, 0.9)
    conf[BODY_25.index("LWrist")] = {1: 0.0, 2: 0.1}.get(view, 0.9)
    conf[BODY_25.index("RAnkle")] = 0.8 if view == 3 else 0.0
    return conf


def people_in(view, f, cam, subject, distractor):
    """Views 0 and 2 list the distractor first; the subject is absent from view 2 in frames 3-4;
    view 3 detects nobody in frame 7."""
    people = [person_json(project(cam, subject[f]), confidences(view))]
    if view in (0, 2):
        people.insert(0, person_json(project(cam, distractor[f]), np.full(25, 0.95)))
    if view == 2 and f in (3, 4):
        people = people[:1]
    if view == 3 and f == 7:
        people = []
    return people


EXPECTED_PERSON = np.array([[1, 0, -1 if f in (3, 4) else 1, -1 if f == 7 else 0] for f in range(FRAMES)])


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    """(calibration, folders in the order cam2, cam0, cam3, cam1, subject (F, 25, 3))."""
    root = tmp_path_factory.mktemp("recording")
    cams = rig()
    calib = write_toml(root / "calibration.toml", cams)
    subject, distractor = motion(), motion(offset=(1500.0, -300.0, 0.0), phase=1.0)
    folders = {}
    for v, cam in enumerate(cams):
        frames = [people_in(v, f, cam, subject, distractor) for f in range(FRAMES)]
        folders[v] = write_folder(root / f"cam{v}_json", frames)
    return calib, [folders[v] for v in (2, 0, 3, 1)], subject


def truth_h36m(subject):
    return {j: subject[:, BODY_25.index(src)] for j, src in DIRECT.items()}


def test_triangulates_the_subject_exactly(recording, tmp_path):
    calib, folders, subject = recording
    summary = triangulate_recording(calib, folders, tmp_path / "poses", layout="BODY_25")
    out = load_arrays(tmp_path / "poses.npz")
    assert out["joints_3d"].shape == (FRAMES, 17, 3) and out["reprojection_px"].shape == (FRAMES, 17, 4)
    assert list(out["camera_names"]) == ["C", "A", "D", "B"] and summary["matched_by"] == "name"
    # the distractor, listed first in views 0 and 2, is never picked (folders are cam2, cam0, cam3, cam1)
    np.testing.assert_array_equal(out["person"], EXPECTED_PERSON[:, [2, 0, 3, 1]])
    for joint, truth in truth_h36m(subject).items():
        j = H36M.index(joint)
        if joint == "r_ankle":  # one view only
            assert not out["valid"][:, j].any() and np.isnan(out["joints_3d"][:, j]).all()
            continue
        seen = np.arange(FRAMES) != 7 if joint == "l_wrist" else np.ones(FRAMES, bool)  # view 3 empty in frame 7
        np.testing.assert_array_equal(out["valid"][:, j], seen, err_msg=joint)
        err = np.linalg.norm(out["joints_3d"][seen, j] - truth[seen], axis=-1)
        assert err.max() < 1.0, f"{joint}: {err.max():.3f} mm"
        assert np.nanmax(out["reprojection_px"][:, j]) < 0.05, joint
    # LWrist: missing in one view, below min_confidence in another: not measured there
    lw = out["reprojection_px"][:, H36M.index("l_wrist")]
    assert np.isnan(lw[:, [0, 3]]).all() and np.isfinite(lw[:7, [1, 2]]).all() and np.isnan(lw[7]).all()
    rep = summary["reprojection_px"]
    assert rep["per_joint"]["r_ankle"] is None and rep["per_joint"]["pelvis"] < 0.05
    assert set(rep["per_camera"]) == {"A", "B", "C", "D"} and rep["mean"] < 2.0  # spine/head are 2D midpoints
    assert summary["frames_over_max_error"] == 0 and summary["frames_with_person"] == FRAMES

    trc = read_trc(tmp_path / "poses.trc")
    assert trc.markers == H36M.joints and trc.points_mm.shape == (FRAMES, 17, 3)
    np.testing.assert_allclose(trc.points_mm, out["joints_3d"], atol=1e-6, equal_nan=True)
    text = format_summary(summary)
    assert "r_ankle" in text and "pelvis" in text and "poses.trc" in text


def test_greedy_association_picks_the_same_people(recording, tmp_path):
    calib, folders, _ = recording
    summary = triangulate_recording(calib, folders, tmp_path / "greedy", layout="BODY_25", max_combinations=1)
    assert summary["frames_greedy"] == FRAMES
    np.testing.assert_array_equal(load_arrays(tmp_path / "greedy.npz")["person"], EXPECTED_PERSON[:, [2, 0, 3, 1]])


class DLTRunner(Runner):
    """An exported triangulation artifact's stand-in: other input names, outputs in another order."""

    format = "tiny"

    def __init__(self):
        self.input_names, self.output_names, self.calls = ["kp_2d", "kp_conf", "proj"], ["valid", "joints_3d"], 0
        self.op = WeightedDLT()

    def run(self, inputs):
        assert inputs["kp_2d"].shape == (1, 4, 17, 2) and inputs["proj"].dtype == np.float32
        self.calls += 1
        with torch.no_grad():
            joints, valid = self.op(*(torch.from_numpy(inputs[n]) for n in self.input_names))
        return {"valid": valid.numpy(), "joints_3d": joints.numpy()}


def test_runner_path_matches_pytorch(recording, tmp_path):
    calib, folders, _ = recording
    triangulate_recording(calib, folders, tmp_path / "torch", layout="BODY_25")
    runner = DLTRunner()
    summary = triangulate_recording(calib, folders, tmp_path / "runner.npz", layout="BODY_25", runner=runner)
    assert runner.calls == FRAMES and summary["triangulator"] == "runner (tiny)"
    a, b = load_arrays(tmp_path / "torch.npz"), load_arrays(tmp_path / "runner.npz")
    np.testing.assert_array_equal(a["valid"], b["valid"])
    np.testing.assert_allclose(a["joints_3d"], b["joints_3d"], atol=1e-3, equal_nan=True)
    assert (tmp_path / "runner.trc").is_file()


def test_tracks_the_person_of_the_first_frame(tmp_path):
    """Frame 0 sees only A; from frame 1 on B is in every view with exact keypoints, A has 1.5 px of
    noise and leaves view 3 in frames 5-6, and the people are listed in a random order: B would win
    on views and error alone, continuity keeps A."""
    cams = rig()
    calib = write_toml(tmp_path / "calib.toml", cams)
    a, b = motion(), motion(offset=(1200.0, 600.0, 0.0), phase=2.0)
    rng = np.random.default_rng(0)
    folders = []
    for v, cam in enumerate(cams):
        frames = []
        for f in range(FRAMES):
            people = []
            if not (v == 3 and f in (5, 6)):
                people.append(person_json(project(cam, a[f]) + rng.normal(0, 1.5, (25, 2)), np.full(25, 0.9)))
            if f > 0:
                people.append(person_json(project(cam, b[f]), np.full(25, 0.9)))
            frames.append([people[i] for i in rng.permutation(len(people))])
        folders.append(write_folder(tmp_path / f"view_{('one', 'two', 'three', 'four')[v]}", frames))  # by order
    for radius, follows in ((500.0, a), (1e9, b)):  # an infinite radius turns continuity off
        summary = triangulate_recording(calib, folders, tmp_path / "two", layout="BODY_25", track_radius_mm=radius)
        assert summary["matched_by"] == "order"
        pelvis = load_arrays(tmp_path / "two.npz")["joints_3d"][1:, H36M.index("pelvis")]
        assert (np.linalg.norm(pelvis - follows[1:, BODY_25.index("MidHip")], axis=-1) < 30).all(), radius


@pytest.mark.parametrize("folder,names,expected", [
    (["cam1_json", "cam10_json"], [["cam10"], ["cam1"]], [1, 0]),  # cam1 does not occur in cam10
    (["Cam-01", "cam_02"], [["c1", "cam_1"], ["c2", "cam_2"]], [0, 1]),  # leading zeros, separators, sections
    (["session-cam2", "session-cam1"], [["cam1"], ["cam2"]], [1, 0]),  # anipose video names
])
def test_match_cameras_by_name(folder, names, expected, tmp_path):
    assert match_cameras([tmp_path / f for f in folder], names, "calib.toml") == (expected, "name")


# --- bad inputs: one line naming the file or folder and the field ------------------------------

def one_line(excinfo, *parts):
    msg = str(excinfo.value)
    assert "\n" not in msg, msg
    for part in parts:
        assert str(part) in msg, msg
    return msg


def test_fewer_than_two_cameras(recording, tmp_path):
    calib, folders, _ = recording
    with pytest.raises(EdgecapError) as e:
        triangulate_recording(calib, folders[:1], tmp_path / "x", layout="BODY_25")
    one_line(e, "at least 2 cameras", folders[0])


def test_calibration_missing_the_folders_camera(recording, tmp_path):
    calib, folders, _ = recording
    extra = write_folder(tmp_path / "cam7_json", [[]] * FRAMES)
    with pytest.raises(EdgecapError) as e:
        triangulate_recording(calib, [*folders, extra], tmp_path / "x", layout="BODY_25")
    one_line(e, calib, "cam7_json", "missing")


def test_fewer_cameras_than_folders_by_order(recording, tmp_path):
    calib, folders, _ = recording
    renamed = []
    for i, folder in enumerate([*folders, folders[0]]):
        target = tmp_path / f"view_{('one', 'two', 'three', 'four', 'five')[i]}"
        target.mkdir()
        for f in folder.iterdir():
            (target / f.name).write_bytes(f.read_bytes())
        renamed.append(target)
    with pytest.raises(EdgecapError) as e:
        triangulate_recording(calib, renamed, tmp_path / "x", layout="BODY_25")
    one_line(e, calib, "4 cameras", "5 keypoint folders", "view_five")


def test_frame_counts_differ(recording, tmp_path):
    calib, folders, _ = recording
    short = tmp_path / "cam2_json"
    short.mkdir()
    for f in sorted(folders[0].iterdir())[:-1]:
        (short / f.name).write_bytes(f.read_bytes())
    with pytest.raises(EdgecapError) as e:
        triangulate_recording(calib, [short, *folders[1:]], tmp_path / "x", layout="BODY_25")
    one_line(e, "frame counts differ", short, f"{FRAMES - 1}")


def test_nan_keypoints(recording, tmp_path):
    calib, folders, _ = recording
    bad = tmp_path / "cam2_json"
    bad.mkdir()
    for f in sorted(folders[0].iterdir()):
        (bad / f.name).write_bytes(f.read_bytes())
    path = sorted(bad.iterdir())[4]
    doc = json.loads(path.read_text())
    doc["people"][0]["pose_keypoints_2d"][3] = float("nan")
    path.write_text(json.dumps(doc))
    with pytest.raises(EdgecapError) as e:
        triangulate_recording(calib, [bad, *folders[1:]], tmp_path / "x", layout="BODY_25")
    one_line(e, path, "pose_keypoints_2d", "NaN")


@pytest.mark.parametrize("layout", ["BODY_25", None])
def test_camera_without_any_person(recording, tmp_path, layout):
    calib, folders, _ = recording
    empty = write_folder(tmp_path / "cam2_json", [[]] * FRAMES)
    with pytest.raises(EdgecapError) as e:
        triangulate_recording(calib, [empty, *folders[1:]], tmp_path / "x", layout=layout)
    one_line(e, empty, "no person detected")


def test_singular_camera_matrix(recording, tmp_path):
    _, folders, _ = recording
    calib = write_toml(tmp_path / "singular.toml", rig(), matrix=[[0.0, 0.0, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    with pytest.raises(EdgecapError) as e:
        triangulate_recording(calib, folders, tmp_path / "x", layout="BODY_25")
    one_line(e, calib, "matrix", "singular")


def test_the_command_line_tool(recording, tmp_path, capsys):
    from edgecap.cli import main

    calib, folders, _ = recording
    code = main(["triangulate", "--calib", str(calib), "--keypoints", *map(str, folders), "--out",
                 str(tmp_path / "cli"), "--layout", "BODY_25", "--fps", "25"])
    assert code == 0 and (tmp_path / "cli.npz").is_file() and (tmp_path / "cli.trc").is_file()
    assert "pelvis" in capsys.readouterr().out
    code = main(["triangulate", "--calib", str(tmp_path / "nope.toml"), "--keypoints", *map(str, folders),
                 "--out", str(tmp_path / "x")])
    assert code == 2 and "calibration file not found: " in capsys.readouterr().err
