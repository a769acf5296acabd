"""Camera readers on small files written in each tool's exact layout, checked by projecting a world
point with formulas written here from the raw file values (not through cv2)."""

import json

import numpy as np
import pytest

from edgecap import EdgecapError
from edgecap.data.multiview import Camera, load_h36m_cameras, load_panoptic_cameras, load_toml_cameras

WORLD_MM = np.array([[250.0, -120.0, 900.0], [-400.0, 300.0, 1500.0], [0.0, 0.0, 0.0]])


def rodrigues(rvec):
    rvec = np.asarray(rvec, dtype=float)
    theta = np.linalg.norm(rvec)
    k = rvec / theta
    kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + np.sin(theta) * kx + (1 - np.cos(theta)) * kx @ kx


def opencv_project(X, K, d, R, t):
    """OpenCV's pinhole + (k1, k2, p1, p2[, k3]) model (panoptic-toolbox matlab/PoseProject2D.m)."""
    k1, k2, p1, p2, k3 = (list(d) + [0.0])[:5]
    x = X @ np.asarray(R).T + np.ravel(t)
    u, v = x[:, 0] / x[:, 2], x[:, 1] / x[:, 2]
    r2 = u * u + v * v
    radial = 1 + k1 * r2 + k2 * r2**2 + k3 * r2**3
    ud = u * radial + 2 * p1 * u * v + p2 * (r2 + 2 * u * u)
    vd = v * radial + p1 * (r2 + 2 * v * v) + 2 * p2 * u * v
    K = np.asarray(K)
    return np.stack([K[0, 0] * ud + K[0, 1] * vd + K[0, 2], K[1, 1] * vd + K[1, 2]], axis=1)


# --- anipose / Pose2Sim TOML ------------------------------------------------------------------

ANIPOSE = {  # cameras as aniposelib CameraGroup.dump writes them (toml.dump style, trailing commas), in mm
    "A": {"size": [1280, 1024], "matrix": [[1391.2, 0.0, 641.3], [0.0, 1389.8, 509.7], [0.0, 0.0, 1.0]],
          "distortions": [-0.2143, 0.1187, 0.0, 0.0, 0.0], "rotation": [0.0521, -0.6104, 0.0312],
          "translation": [812.4, 63.1, 1734.9]},
    "B": {"size": [1280, 1024], "matrix": [[1402.7, 0.0, 633.8], [0.0, 1401.1, 515.2], [0.0, 0.0, 1.0]],
          "distortions": [-0.1988, 0.0941, 0.0, 0.0, 0.0], "rotation": [-0.0415, 0.5873, -0.0199],
          "translation": [-790.2, 58.4, 1761.3]},
}


def toml_list(v):
    return "[ " + " ".join(f"{toml_list(x) if isinstance(x, list) else repr(x)}," for x in v) + "]"


def write_anipose(path, cams=ANIPOSE, drop=None, edit=None):
    """`drop` removes a field of cam_0, `edit` replaces fields of cam_1 (a str value is written raw)."""
    lines = []
    for i, (name, cam) in enumerate(cams.items()):
        cam = dict(cam, **(edit or {})) if i == 1 else cam
        lines += [f"[cam_{i}]", f'name = "{name}"']
        lines += [f"{k} = {toml_list(v) if isinstance(v, list) else v}" for k, v in cam.items()
                  if not (i == 0 and k == drop)]
        lines.append("")
    lines += ["[metadata]", "adjusted = true", "error = 0.4187", ""]
    path.write_text("\n".join(lines))
    return path


def write_pose2sim(path):
    """Pose2Sim calibration.py toml_write, verbatim format: sections named after cameras, metres."""
    with open(path, "w") as f:
        for name, cam in ANIPOSE.items():
            K, S, D, R, T = cam["matrix"], cam["size"], cam["distortions"], cam["rotation"], cam["translation"]
            T = [x / 1000 for x in T]
            f.write(f"[{name}]\nname = \"{name}\"\nsize = [ {float(S[0])}, {float(S[1])}]\n"
                    f"matrix = [ [ {K[0][0]}, 0.0, {K[0][2]}], [ 0.0, {K[1][1]}, {K[1][2]}], [ 0.0, 0.0, 1.0]]\n"
                    f"distortions = [ {D[0]}, {D[1]}, {D[2]}, {D[3]}]\nrotation = [ {R[0]}, {R[1]}, {R[2]}]\n"
                    f"translation = [ {T[0]}, {T[1]}, {T[2]}]\nfisheye = false\n\n")
        f.write("[metadata]\nadjusted = false\nerror = 0.0\n")
    return path


@pytest.mark.parametrize("writer,unit", [(write_anipose, "mm"), (write_pose2sim, "m")])
def test_toml_projects_like_the_raw_parameters(tmp_path, writer, unit):
    cams = load_toml_cameras(writer(tmp_path / "calib.toml"), unit=unit)
    assert [c.name for c in cams] == ["A", "B"]
    for cam, raw in zip(cams, ANIPOSE.values()):
        assert cam.size == (1280, 1024) and cam.unit == "mm"
        expected = opencv_project(WORLD_MM, raw["matrix"], raw["distortions"], rodrigues(raw["rotation"]),
                                  raw["translation"])
        np.testing.assert_allclose(cam.project(WORLD_MM), expected, atol=1e-6)
        # undistort() lands on the ideal camera's pixels, i.e. the 3x4 projection matrix.
        h = np.c_[WORLD_MM, np.ones(len(WORLD_MM))] @ cam.projection().T
        np.testing.assert_allclose(cam.undistort(cam.project(WORLD_MM)), h[:, :2] / h[:, 2:], atol=1e-6)


@pytest.mark.parametrize("drop,edit,match", [
    ("matrix", None, r"calib\.toml: \[cam_0\]: missing field 'matrix'"),
    (None, {"matrix": [[1400.0, 0.0, 640.0], [0.0, 1400.0, 512.0]]},
     r"\[cam_1\]: matrix must have shape \(3, 3\), got \(2, 3\)"),
    (None, {"matrix": [[0.0, 0.0, 640.0], [0.0, 1400.0, 512.0], [0.0, 0.0, 1.0]]},
     r"\[cam_1\]: matrix \(intrinsic matrix\) must be .*singular"),
    (None, {"translation": "[ 1.0, nan, 2.0,]"}, r"\[cam_1\]: translation contains NaN"),
    (None, {"rotation": [0.1, 0.2]}, r"\[cam_1\]: rotation must have shape \(3,\)"),
    (None, {"distortions": [0.1, 0.2, 0.3]}, r"\[cam_1\]: distortions must have 4, 5"),
    (None, {"size": [1280]}, r"\[cam_1\]: size must have shape"),
    (None, {"fisheye": "true"}, r"\[cam_1\]: fisheye = true is not supported"),
])
def test_toml_errors_name_file_and_field(tmp_path, drop, edit, match):
    path = write_anipose(tmp_path / "calib.toml", drop=drop, edit=edit)
    with pytest.raises(EdgecapError, match=match) as e:
        load_toml_cameras(path, unit="mm")
    assert "\n" not in str(e.value)


def test_toml_file_level_errors(tmp_path):
    with pytest.raises(EdgecapError, match=r"no camera sections"):
        load_toml_cameras(write_anipose(tmp_path / "c.toml", cams={}), unit="mm")
    with pytest.raises(EdgecapError, match=r"unit must be one of"):
        load_toml_cameras(write_anipose(tmp_path / "c.toml"), unit="inch")
    with pytest.raises(EdgecapError, match=r"not found"):
        load_toml_cameras(tmp_path / "missing.toml", unit="m")
    (tmp_path / "bad.toml").write_text("[cam_0\nname = 1")
    with pytest.raises(EdgecapError, match=r"bad\.toml: not valid TOML"):
        load_toml_cameras(tmp_path / "bad.toml", unit="m")


# --- CMU Panoptic --------------------------------------------------------------------------------

def panoptic_camera(name, kind, res, rvec, t_cm, f, dist):
    return {"name": name, "type": kind, "resolution": res, "panel": int(name[:2]), "node": int(name[3:]),
            "K": [[f, 0.0, res[0] / 2 + 3.1], [0.0, f * 1.001, res[1] / 2 - 2.4], [0.0, 0.0, 1.0]],
            "distCoef": dist, "R": rodrigues(rvec).tolist(), "t": [[t_cm[0]], [t_cm[1]], [t_cm[2]]]}


PANOPTIC = {"calibDataSource": "160224_calib5", "cameras": [
    panoptic_camera("01_01", "vga", [640, 480], [0.31, 2.05, -0.12], [-12.4, 128.7, 281.9], 745.3,
                    [-0.3302, 0.1229, 0.0002, -0.0004, -0.0218]),
    panoptic_camera("00_00", "hd", [1920, 1080], [-0.22, -1.93, 0.08], [-4.9, 140.1, 293.6], 1634.0,
                    [-0.2213, 0.1792, -0.0007, 0.0011, -0.0326]),
    panoptic_camera("00_01", "hd", [1920, 1080], [0.17, 1.41, 0.05], [9.7, 139.2, 289.2], 1627.5,
                    [-0.2268, 0.1851, 0.0004, -0.0003, -0.0421]),
    panoptic_camera("50_01", "kinect-color", [1920, 1080], [0.02, 0.88, 0.01], [3.3, 95.0, 301.0], 1058.2,
                    [0.0522, -0.0611, 0.0, 0.0, 0.0]),
]}


def write_panoptic(path, edit=None):
    data = json.loads(json.dumps(PANOPTIC))
    if edit:
        edit(data["cameras"][1])
    path.write_text(json.dumps(data))
    return path


def test_panoptic_projects_like_panutils_and_filters_by_type(tmp_path):
    path = write_panoptic(tmp_path / "calibration_160224.json")
    cams = load_panoptic_cameras(path)
    assert [c.name for c in cams] == ["01_01", "00_00", "00_01", "50_01"]
    hd = load_panoptic_cameras(path, types=("hd",))
    assert [c.name for c in hd] == ["00_00", "00_01"] and hd[0].size == (1920, 1080)
    for cam, raw in zip(hd, PANOPTIC["cameras"][1:3]):
        # panutils.projectPoints works in the file's centimetres.
        expected = opencv_project(WORLD_MM / 10, raw["K"], raw["distCoef"], raw["R"], raw["t"])
        np.testing.assert_allclose(cam.project(WORLD_MM), expected, atol=1e-6)
        np.testing.assert_allclose(cam.t, np.ravel(raw["t"]) * 10)


def reflect(cam):
    cam["R"][0] = [-x for x in cam["R"][0]]


@pytest.mark.parametrize("edit,match", [
    (lambda c: c.pop("K"), r"cameras\[1\] \(00_00\): missing field 'K'"),
    (lambda c: c.update(R=[[1.0, 0.2, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]),
     r"cameras\[1\] \(00_00\): R is not a rotation matrix"),
    (reflect, r"cameras\[1\] \(00_00\): R is not a rotation matrix .*det = -1"),
    (lambda c: c.update(t=[[1.0], [float("nan")], [2.0]]), r"cameras\[1\] \(00_00\): t contains NaN"),
    (lambda c: c.update(t=[1.0, 2.0]), r"cameras\[1\] \(00_00\): t must have shape \(3,\)"),
    (lambda c: c["K"].__setitem__(1, [0.0, 0.0, 540.0]), r"cameras\[1\] \(00_00\): K \(intrinsic matrix\) .*singular"),
    (lambda c: c.pop("type"), r"cameras\[1\]: missing field 'type'"),
])
def test_panoptic_errors_name_file_and_field(tmp_path, edit, match):
    path = write_panoptic(tmp_path / "calibration_x.json", edit)
    with pytest.raises(EdgecapError, match=r"calibration_x\.json: " + match):
        load_panoptic_cameras(path)


def test_panoptic_type_filter_that_keeps_nothing(tmp_path):
    with pytest.raises(EdgecapError, match=r"no cameras of type \['thermal'\].*\['hd', 'kinect-color', 'vga'\]"):
        load_panoptic_cameras(write_panoptic(tmp_path / "c.json"), types=("thermal",))
    (tmp_path / "d.json").write_text(json.dumps({"calibDataSource": "x"}))
    with pytest.raises(EdgecapError, match=r"d\.json: missing field 'cameras'"):
        load_panoptic_cameras(tmp_path / "d.json")


# --- Human3.6M (VideoPose3D parameters) -----------------------------------------------------------

H36M_INTRINSICS = {  # VideoPose3D common/h36m_dataset.py, cameras 54138969 and 55011271
    "54138969": {"id": "54138969", "center": [512.54150390625, 515.4514770507812],
                 "focal_length": [1145.0494384765625, 1143.7811279296875],
                 "radial_distortion": [-0.20709891617298126, 0.24777518212795258, -0.0030751503072679043],
                 "tangential_distortion": [-0.0009756988729350269, -0.00142447161488235],
                 "res_w": 1000, "res_h": 1002, "azimuth": 70},
    "55011271": {"id": "55011271", "center": [508.8486328125, 508.0649108886719],
                 "focal_length": [1149.6756591796875, 1147.5916748046875],
                 "radial_distortion": [-0.1942136287689209, 0.2404085397720337, 0.006819975562393665],
                 "tangential_distortion": [-0.0016190266469493508, -0.0027408944442868233],
                 "res_w": 1000, "res_h": 1000, "azimuth": -70},
}
H36M_EXTRINSICS = {"S1": [
    {"id": "54138969",
     "orientation": [0.1407056450843811, -0.1500701755285263, -0.755240797996521, 0.6223280429840088],
     "translation": [1841.1070556640625, 4955.28466796875, 1563.4454345703125]},
    {"id": "55011271",
     "orientation": [0.6157187819480896, -0.764836311340332, -0.14833825826644897, 0.11794740706682205],
     "translation": [1761.278564453125, -5078.0068359375, 1606.2650146484375]},
]}
H36M_WORLD_MM = np.array([[-176.7, 378.2, 910.4], [-52.3, 412.9, 1534.6], [-310.5, 330.1, 95.2]])  # a subject


def qrot(q, v):
    """VideoPose3D's quaternion rotation (cross-product form)."""
    w, u = q[0], np.broadcast_to(q[1:], v.shape)
    uv = np.cross(u, v)
    return v + 2 * (w * uv + np.cross(u, uv))


def videopose3d_project(X, intr, ext, tangential=True):
    """world_to_camera (R^-1 (X - t)) then project_to_2d, the H36M distortion model."""
    q = np.asarray(ext["orientation"])
    q = q / np.linalg.norm(q)  # the file's float32 quaternions are unit to ~1e-7
    cam = qrot(q * [1, -1, -1, -1], X - np.asarray(ext["translation"]))
    xx = cam[:, :2] / cam[:, 2:]
    r2 = (xx**2).sum(1, keepdims=True)
    k, p = np.asarray(intr["radial_distortion"]), np.asarray(intr["tangential_distortion"]) * tangential
    radial = 1 + k[0] * r2 + k[1] * r2**2 + k[2] * r2**3
    tan = (p * xx).sum(1, keepdims=True)
    return np.asarray(intr["focal_length"]) * (xx * (radial + tan) + p * r2) + np.asarray(intr["center"])


def write_h36m(path, intrinsics=H36M_INTRINSICS, extrinsics=H36M_EXTRINSICS):
    path.write_text(json.dumps({"intrinsics": intrinsics, "extrinsics": extrinsics}))
    return path


def test_h36m_cameras_project_like_videopose3d(tmp_path):
    cams = load_h36m_cameras(write_h36m(tmp_path / "cameras.json"), "S1")
    assert [c.name for c in cams] == ["54138969", "55011271"] and cams[0].size == (1000, 1002)
    for cam, ext in zip(cams, H36M_EXTRINSICS["S1"]):
        intr = H36M_INTRINSICS[cam.name]
        np.testing.assert_allclose(cam.center, ext["translation"], atol=1e-6)  # camera-to-world converted
        px = cam.project(H36M_WORLD_MM)
        assert ((px > 0) & (px < 1000)).all()  # the subject is in view
        # Radial part and pose exactly as H36M; its own tangential formula differs from OpenCV's (< 1 px).
        no_tan = Camera(cam.name, cam.size, cam.K, np.r_[cam.dist[:2], 0, 0, cam.dist[4]], cam.R, cam.t)
        np.testing.assert_allclose(no_tan.project(H36M_WORLD_MM),
                                   videopose3d_project(H36M_WORLD_MM, intr, ext, tangential=False), atol=1e-6)
        np.testing.assert_allclose(px, videopose3d_project(H36M_WORLD_MM, intr, ext), atol=1.0)


def test_h36m_cameras_from_the_videopose3d_intrinsics_list(tmp_path):
    path = write_h36m(tmp_path / "cameras.json", intrinsics=list(H36M_INTRINSICS.values()))
    assert [c.name for c in load_h36m_cameras(path, "S1")] == ["54138969", "55011271"]
    # VideoPose3D's extrinsics carry no id: linked by position, as Human36mDataset does.
    ext = {"S1": [{k: v for k, v in c.items() if k != "id"} for c in H36M_EXTRINSICS["S1"]]}
    path = write_h36m(tmp_path / "cameras.json", intrinsics=list(H36M_INTRINSICS.values()), extrinsics=ext)
    cams = load_h36m_cameras(path, "S1")
    assert [c.name for c in cams] == ["54138969", "55011271"] and cams[1].size == (1000, 1000)


def test_h36m_camera_errors(tmp_path):
    with pytest.raises(EdgecapError, match=r"cameras\.json: extrinsics has no subject 'S9' \(has \['S1'\]\)"):
        load_h36m_cameras(write_h36m(tmp_path / "cameras.json"), "S9")
    intr = {"54138969": H36M_INTRINSICS["54138969"]}
    with pytest.raises(EdgecapError, match=r"cameras\.json: intrinsics has no camera '55011271'"):
        load_h36m_cameras(write_h36m(tmp_path / "cameras.json", intrinsics=intr), "S1")
    intr = {k: {f: v for f, v in c.items() if f != "focal_length"} for k, c in H36M_INTRINSICS.items()}
    with pytest.raises(EdgecapError, match=r"intrinsics\['54138969'\]: missing field 'focal_length'"):
        load_h36m_cameras(write_h36m(tmp_path / "cameras.json", intrinsics=intr), "S1")
    ext = {"S1": [dict(H36M_EXTRINSICS["S1"][0], orientation=[0.0, 0.0, 0.0, 0.0])]}
    with pytest.raises(EdgecapError, match=r"extrinsics\['S1'\]\[0\]: orientation quaternion is zero"):
        load_h36m_cameras(write_h36m(tmp_path / "cameras.json", extrinsics=ext), "S1")
    (tmp_path / "x.json").write_text("{not json")
    with pytest.raises(EdgecapError, match=r"x\.json: not valid JSON"):
        load_h36m_cameras(tmp_path / "x.json", "S1")
