"""Properties of the synthetic multi-view rigs: exact labels, visibility, variety, determinism."""

import dataclasses
import time

import cv2
import numpy as np
import pytest

from edgecap import EdgecapError
from edgecap.data.multiview.synthetic_rigs import (
    JOINTS,
    NUM_JOINTS,
    OCCLUDER_ID,
    PART_ID,
    PARTS,
    RigDataConfig,
    RigSamples,
    contact_sheet,
    render_static,
    render_view,
)

CFG = RigDataConfig(seed=5, sequences=6, val_sequences=2, frames=6)
LIMBS = {"l_upper_arm": ("l_shoulder", "l_elbow"), "l_forearm": ("l_elbow", "l_wrist"),
         "r_upper_arm": ("r_shoulder", "r_elbow"), "r_forearm": ("r_elbow", "r_wrist"),
         "l_thigh": ("l_hip", "l_knee"), "l_shin": ("l_knee", "l_ankle"),
         "r_thigh": ("r_hip", "r_knee"), "r_shin": ("r_knee", "r_ankle")}


@pytest.fixture(scope="module")
def data():
    ds = RigSamples(CFG)
    return ds, [ds.sample(i) for i in range(0, len(ds), 3)]


def _real_views(samples):
    """(sample, view) pairs of the views that are not padding."""
    return [(s, v) for s in samples for v in range(len(s["images"])) if s["view_mask"][v] > 0]


def test_shapes_and_dtypes(data):
    _, samples = data
    v, size = CFG.views, CFG.image_size
    expected = {"images": ((v, 3, size, size), np.uint8), "points_2d": ((v, NUM_JOINTS, 2), np.float32),
                "points_2d_undistorted": ((v, NUM_JOINTS, 2), np.float32), "visibility": ((v, NUM_JOINTS), np.float32),
                "joints_3d": ((NUM_JOINTS, 3), np.float32), "projections": ((v, 3, 4), np.float32),
                "K": ((v, 3, 3), np.float32), "dist": ((v, 5), np.float32), "R": ((v, 3, 3), np.float32),
                "t": ((v, 3), np.float32), "view_mask": ((v,), np.float32), "camera_index": ((v,), np.int64)}
    for s in samples:
        for key, (shape, dtype) in expected.items():
            assert s[key].shape == shape and s[key].dtype == dtype, key
            assert np.isfinite(s[key]).all(), key
        assert set(np.unique(s["visibility"])) <= {0.0, 1.0}
    assert len(JOINTS) == NUM_JOINTS == 17


def test_deterministic_and_splits_differ(data):
    ds, _ = data
    again = RigSamples(CFG)
    for i in (0, 7, len(ds) - 1):
        a, b = ds.sample(i), again.sample(i)
        assert a.keys() == b.keys()
        for key in a:
            np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    val = RigSamples(CFG, "val")
    assert len(val) == CFG.val_sequences * CFG.frames
    assert not np.allclose(val.sample(0)["joints_3d"], ds.sample(0)["joints_3d"])
    other = RigSamples(dataclasses.replace(CFG, seed=6))
    assert not np.allclose(other.sample(0)["joints_3d"], ds.sample(0)["joints_3d"])
    with pytest.raises(IndexError):
        ds.sample(len(ds))
    with pytest.raises(EdgecapError, match="split"):
        RigSamples(CFG, "test")


def test_world_conventions(data):
    ds, samples = data
    for seq in ds.sequences:
        ankles = seq.joints_3d[:, [JOINTS.index("l_ankle"), JOINTS.index("r_ankle")], 1]
        np.testing.assert_allclose(ankles.min(1), 80.0, atol=1e-6)  # floor y = 0, ankles 80 mm above it
        head_above = seq.joints_3d[:, JOINTS.index("head"), 1] > seq.joints_3d[:, JOINTS.index("pelvis"), 1]
        assert head_above.mean() > 0.9  # y is up
    for s, v in _real_views(samples):
        # The camera looks roughly at the subject: the pelvis is in front of it.
        cam_z = s["R"][v] @ s["joints_3d"][0] + s["t"][v]
        assert 1000 < cam_z[2] < 7000


def test_2d_labels_are_cv2_projections(data):
    _, samples = data
    for s, v in _real_views(samples):
        rvec = cv2.Rodrigues(s["R"][v].astype(np.float64))[0]
        expected, _ = cv2.projectPoints(s["joints_3d"].astype(np.float64).reshape(-1, 1, 3), rvec,
                                        s["t"][v].astype(np.float64), s["K"][v].astype(np.float64),
                                        s["dist"][v].astype(np.float64))
        np.testing.assert_allclose(s["points_2d"][v], expected.reshape(-1, 2), atol=2e-3)


def test_undistorted_labels_match_projection_matrices(data):
    _, samples = data
    for s, v in _real_views(samples):
        P = s["projections"][v].astype(np.float64)
        np.testing.assert_allclose(P, s["K"][v].astype(np.float64) @ np.hstack([s["R"][v], s["t"][v][:, None]]),
                                   rtol=1e-5, atol=1e-3)
        x = np.hstack([s["joints_3d"], np.ones((NUM_JOINTS, 1))]) @ P.T
        uv = x[:, :2] / x[:, 2:]
        assert np.abs(uv - s["points_2d_undistorted"][v]).max() < 0.05
        # And the distorted labels undistort back onto them (in-frame joints).
        inside = (np.abs(s["points_2d"][v] - CFG.image_size / 2) < CFG.image_size / 2).all(1)
        back = cv2.undistortPoints(s["points_2d"][v][inside].astype(np.float64).reshape(-1, 1, 2),
                                   s["K"][v].astype(np.float64), s["dist"][v].astype(np.float64),
                                   P=s["K"][v].astype(np.float64),
                                   criteria=(cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 50, 1e-12))
        assert np.abs(back.reshape(-1, 2) - s["points_2d_undistorted"][v][inside]).max() < 0.05
    # Distortion is on and not negligible in at least some views.
    assert max(np.abs(s["points_2d"] - s["points_2d_undistorted"]).max() for s in samples) > 0.5


def test_distortion_off():
    ds = RigSamples(dataclasses.replace(CFG, distortion=False, sequences=2))
    s = ds.sample(0)
    assert not s["dist"].any()
    np.testing.assert_allclose(s["points_2d"], s["points_2d_undistorted"], atol=1e-3)


def test_joints_outside_the_frame_are_invisible(data):
    _, samples = data
    outside_seen = 0
    for s, v in _real_views(samples):
        uv = s["points_2d"][v]
        outside = (uv < -0.5).any(1) | (uv >= CFG.image_size - 0.5).any(1)
        assert not s["visibility"][v][outside].any()
        outside_seen += outside.sum()
    # Cut-off people happen: force them with cut_prob = 1 if this small set had none.
    if outside_seen == 0:
        ds = RigSamples(dataclasses.replace(CFG, cut_prob=1.0, sequences=2))
        s = ds.sample(0)
        uv = s["points_2d"][s["view_mask"] > 0]
        outside = (uv < -0.5).any(-1) | (uv >= CFG.image_size - 0.5).any(-1)
        assert outside.any() and not s["visibility"][s["view_mask"] > 0][outside].any()


def _visible_joint(ds, name="thorax"):
    """(sequence, camera, frame) where joint `name` is visible, with nothing in the scene."""
    j = JOINTS.index(name)
    for s, seq in enumerate(ds.sequences):
        seq = dataclasses.replace(seq, occluders=np.zeros((0, 2, 3)), occluder_colours=np.zeros((0, 3)))
        for c in range(seq.num_cameras):
            view = render_view(seq, c, 0)
            if view.visibility[j]:
                return seq, c, view
    raise AssertionError(f"no view sees the {name}")


def test_joint_behind_an_occluder_is_invisible(data):
    ds, _ = data
    j = JOINTS.index("thorax")
    seq, c, view = _visible_joint(ds)
    cam = seq.cameras[c]
    joint = seq.joints_3d[0, j]
    # A 20 cm cube half way between the camera and the joint.
    mid = (cam.center + joint) / 2
    boxed = dataclasses.replace(seq, occluders=np.array([[mid - 100, mid + 100]]),
                                occluder_colours=np.array([[0.0, 0.0, 1.0]]))
    hidden = render_view(boxed, c, 0)
    col, row = np.floor(hidden.points_2d[j] + 0.5).astype(int)
    assert hidden.part[row, col] == OCCLUDER_ID
    assert not hidden.visibility[j]
    assert view.visibility[j] and view.part[row, col] != OCCLUDER_ID
    assert hidden.image[row, col, 2] > 150 and hidden.image[row, col, :2].max() < 100  # the blue box
    # The box stands in the world: behind the joint, it hides nothing.
    behind = joint + (joint - cam.center) / np.linalg.norm(joint - cam.center) * 800
    back = render_view(dataclasses.replace(boxed, occluders=np.array([[behind - 100, behind + 100]])), c, 0)
    assert back.visibility[j]


def test_visibility_follows_the_depth_buffer(data):
    ds, _ = data
    # Every visible joint shows one of its own parts or a surface not nearer than the joint;
    # joints hidden by another body part exist and are labelled invisible.
    self_occluded = 0
    for s in range(len(ds.sequences)):
        seq = ds.sequences[s]
        for c in range(seq.num_cameras):
            view = render_view(seq, c, 0)
            z = seq.joints_3d[0] @ seq.cameras[c].R.T + seq.cameras[c].t
            col, row = np.clip(np.floor(view.points_2d + 0.5).astype(int), 0, CFG.image_size - 1).T
            part, depth = view.part[row, col], view.depth[row, col]
            body = (part >= 1) & (part <= len(PARTS))
            nearer = depth < z[:, 2] - 150  # clearly in front of the joint (more than any radius)
            assert not (view.visibility & nearer & ~body).any()
            self_occluded += (body & nearer & ~view.visibility).sum()
    assert self_occluded > 0


def test_camera_counts_and_rig_variety():
    cfg = dataclasses.replace(CFG, sequences=40, min_cameras=3, max_cameras=6)
    ds = RigSamples(cfg)
    counts = [seq.num_cameras for seq in ds.sequences]
    assert min(counts) == 3 and max(counts) == 6
    focals = np.array([cam.K[0, 0] for seq in ds.sequences for cam in seq.cameras])
    heights = np.array([cam.center[1] for seq in ds.sequences for cam in seq.cameras])
    distances = np.array([np.linalg.norm(cam.center[[0, 2]]) for seq in ds.sequences for cam in seq.cameras])
    fov = np.rad2deg(2 * np.arctan(cfg.image_size / 2 / focals))
    assert 40 <= fov.min() and fov.max() <= 80 and np.ptp(fov) > 20
    assert 500 <= heights.min() and heights.max() <= 2500 and np.ptp(heights) > 1000
    assert 2499.99 <= distances.min() and distances.max() <= 5000.01 and np.ptp(distances) > 800
    dist = np.array([cam.dist for seq in ds.sequences for cam in seq.cameras])
    assert np.ptp(dist[:, 0]) > 0.1 and np.abs(dist[:, 2:4]).max() <= 0.002


def test_padding_when_the_rig_has_fewer_cameras():
    ds = RigSamples(dataclasses.replace(CFG, min_cameras=2, max_cameras=2, views=4, sequences=1))
    s = ds.sample(0)
    np.testing.assert_array_equal(s["view_mask"], [1, 1, 0, 0])
    np.testing.assert_array_equal(s["camera_index"][2:], [-1, -1])
    assert sorted(s["camera_index"][:2]) == [0, 1]
    assert not s["images"][2:].any() and not s["projections"][2:].any() and not s["visibility"][2:].any()


def test_images_show_distinct_limbs(data):
    ds, samples = data
    for s, v in _real_views(samples):
        assert s["images"][v].std() > 10  # not blank
    colours = ds.sequences[0].colours[[PART_ID[p] for p in LIMBS]]
    chroma = colours / colours.sum(1, keepdims=True)
    gaps = np.linalg.norm(chroma[:, None] - chroma[None], axis=-1) + np.eye(len(LIMBS))
    assert gaps.min() > 0.03  # every limb has its own colour
    checked = 0
    for seq in ds.sequences:
        limb_chroma = seq.colours[[PART_ID[p] for p in LIMBS]]
        limb_chroma = limb_chroma / limb_chroma.sum(1, keepdims=True)
        for c in range(seq.num_cameras):
            view = render_view(seq, c, 0)  # no photometric jitter
            for k, (limb, (a, b)) in enumerate(LIMBS.items()):
                mid = (seq.joints_3d[0, JOINTS.index(a)] + seq.joints_3d[0, JOINTS.index(b)]) / 2
                uv = seq.cameras[c].project(mid)
                col, row = np.floor(uv + 0.5).astype(int)
                if not (0 <= col < CFG.image_size and 0 <= row < CFG.image_size):
                    continue
                if view.part[row, col] != PART_ID[limb]:
                    continue  # hidden at its middle
                pixel = view.image[row, col].astype(np.float64) + 1
                nearest = np.linalg.norm(limb_chroma - pixel / pixel.sum(), axis=1).argmin()
                assert nearest == k, (limb, c)
                checked += 1
    assert checked > 50


def test_static_scene_is_consistent(data):
    ds, _ = data
    seq = ds.sequences[0]
    floor_pixels = 0
    for c, cam in enumerate(seq.cameras):
        image, depth, ids = render_static(seq, c)
        assert image.shape == (CFG.image_size, CFG.image_size, 3) and image.dtype == np.float32
        assert np.isfinite(depth).all() and (depth > 0).all()
        # Back-project the room pixels at their depth: inside the wall's radius and below the
        # ceiling, a ray can only have hit the floor y = 0.
        rows, cols = np.nonzero(ids == 0)
        pix = np.stack([cols, rows], -1).astype(np.float64).reshape(-1, 1, 2)
        ray = cv2.undistortPoints(pix, cam.K, cam.dist,
                                  criteria=(cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 50, 1e-12))
        cam_pts = np.concatenate([ray.reshape(-1, 2), np.ones((len(pix), 1))], 1) * depth[rows, cols][:, None]
        world = (cam_pts - cam.t) @ cam.R
        _, wall_radius, ceiling, _ = seq.room
        on_floor = (np.linalg.norm(world[:, [0, 2]], axis=1) < wall_radius - 20) & (world[:, 1] < ceiling - 20)
        assert np.abs(world[on_floor, 1]).max(initial=0) < 5
        floor_pixels += on_floor.sum()
    assert floor_pixels > 1000


def test_config_validation_names_the_field():
    RigDataConfig().validate()
    bad = {"sequences": 0, "frames": -1, "image_size": 8, "views": 0, "min_cameras": 0, "occluder_prob": 1.5,
           "cut_prob": float("nan"), "noise": -0.1, "fps": 0.0, "seed": -1, "distortion": "yes", "occluders": 1}
    for field, value in bad.items():
        with pytest.raises(EdgecapError, match=f"data.{field}"):
            dataclasses.replace(RigDataConfig(), **{field: value}).validate()
    with pytest.raises(EdgecapError, match="data.min_cameras"):
        RigDataConfig(min_cameras=5, max_cameras=3).validate()
    with pytest.raises(EdgecapError, match="data.frames"):
        RigDataConfig(frames=2.5).validate()
    with pytest.raises(EdgecapError, match="data.views"):
        RigSamples(RigDataConfig(views=0))


def test_speed_and_contact_sheet(data, tmp_path):
    ds, samples = data
    for i in range(len(ds)):  # warm the static-scene cache, as after the first epoch
        ds.static(i // CFG.frames, 0)
    start = time.perf_counter()
    views = 0
    for i in range(len(ds)):
        views += int(ds.sample(i)["view_mask"].sum())
    rate = views / (time.perf_counter() - start)
    assert rate > 50, f"{rate:.0f} views/s"  # ~300-400 on one free core; loose for busy CI machines
    sheet = contact_sheet(samples[0])
    assert sheet.shape[0] == CFG.image_size * 3 and sheet.dtype == np.uint8
    assert cv2.imwrite(str(tmp_path / "views.png"), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))
