"""Real-motion loaders on small files written here in each source's exact layout, the fetch's
extraction on stand-in wheels, and the lifter's real-motion evaluation with known predictors.
The real cache (`make real-motion`) is only needed by the last test, which skips without it."""

import json
import zipfile

import numpy as np
import pytest

from edgecap import EdgecapError
from edgecap.data.real_motion import DIRECT_MASK, EVAL_CLIPS, load_clips
from edgecap.data import wheel_cache
from edgecap.data.real_motion import fetch as fetch_module
from edgecap.data.real_motion.clips import (
    HOLOSOMA_JOINTS,
    ISAAC_BODIES,
    JOINTS,
    load_deepmimic,
    load_holosoma,
    load_isaac,
    resample,
)

LIMBS = {"thigh": ("l_hip", "l_knee"), "shin": ("l_knee", "l_ankle"), "hips": ("l_hip", "r_hip")}


def length(joints, a, b):
    return np.linalg.norm(joints[:, JOINTS.index(a)] - joints[:, JOINTS.index(b)], axis=-1)


def isaac_file(path, frames=12):
    """A standing humanoid (z up, metres) swaying along x, in isaaclab's npz layout."""
    rest = {"pelvis": (0, 0, 0.9), "torso": (0, 0, 1.136), "head": (0, 0, 1.36),
            "right_upper_arm": (0, -0.18, 1.32), "right_lower_arm": (0, -0.18, 1.045), "right_hand": (0, -0.18, 0.79),
            "left_upper_arm": (0, 0.18, 1.32), "left_lower_arm": (0, 0.18, 1.045), "left_hand": (0, 0.18, 0.79),
            "right_thigh": (0, -0.085, 0.9), "right_shin": (0, -0.085, 0.48), "right_foot": (0, -0.085, 0.07),
            "left_thigh": (0, 0.085, 0.9), "left_shin": (0, 0.085, 0.48), "left_foot": (0, 0.085, 0.07)}
    pos = np.array([rest[b] for b in ISAAC_BODIES])[None].repeat(frames, 0)
    pos[..., 0] += np.linspace(0, 0.5, frames)[:, None]
    np.savez(path, fps=np.int64(60), body_names=np.array(ISAAC_BODIES), body_positions=pos.astype(np.float32),
             dof_names=np.array(["abdomen_x"]), dof_positions=np.zeros((frames, 1), np.float32))
    return pos


def test_isaac_maps_to_h36m_y_up_mm(tmp_path):
    pos = isaac_file(tmp_path / "humanoid_walk.npz")
    clip = load_isaac(tmp_path / "humanoid_walk.npz", "walk")
    assert clip.joints_mm.shape == (12, 17, 3) and clip.fps == 60.0 and clip.name == "isaac/walk"
    np.testing.assert_allclose(length(clip.joints_mm, *LIMBS["thigh"]), 420.0, atol=1e-3)
    np.testing.assert_allclose(clip.joints_mm[:, JOINTS.index("pelvis"), 1], 900.0, atol=1e-3)  # z up -> y up
    np.testing.assert_allclose(clip.joints_mm[:, JOINTS.index("pelvis"), 0], pos[:, 0, 0] * 1000, atol=1e-3)
    # the person's left (+y in the z-up file) stays on the same side: a rotation, not a mirror
    left = clip.joints_mm[:, JOINTS.index("l_hip")] - clip.joints_mm[:, JOINTS.index("r_hip")]
    assert (left[:, 2] < 0).all()  # +y (z up) -> -z (y up)
    head = clip.joints_mm[:, JOINTS.index("head"), 1]
    assert (head > clip.joints_mm[:, JOINTS.index("thorax"), 1]).all()


def test_holosoma_layout(tmp_path):
    frames = 6
    pos = np.zeros((frames, len(HOLOSOMA_JOINTS), 3), np.float32)
    named = {"Hips": (0, 0, 1.0), "Spine1": (0, 0, 1.3), "Neck": (0, 0, 1.57), "Head": (0, 0, 1.72),
             "LeftUpLeg": (0, 0.1, 0.95), "LeftLeg": (0, 0.1, 0.58), "LeftFoot": (0, 0.1, 0.13),
             "RightUpLeg": (0, -0.1, 0.95), "RightLeg": (0, -0.1, 0.58), "RightFoot": (0, -0.1, 0.13),
             "LeftArm": (0, 0.16, 1.5), "LeftForeArm": (0, 0.16, 1.19), "LeftHand": (0, 0.16, 0.94),
             "RightArm": (0, -0.16, 1.5), "RightForeArm": (0, -0.16, 1.19), "RightHand": (0, -0.16, 0.94)}
    for name, p in named.items():
        pos[:, HOLOSOMA_JOINTS.index(name)] = p
    np.save(tmp_path / "climb_seq_4.npy", pos)
    clip = load_holosoma(tmp_path / "climb_seq_4.npy")
    assert clip.fps == 120.0 and clip.motion == "climb" and clip.joints_mm.shape == (frames, 17, 3)
    np.testing.assert_allclose(length(clip.joints_mm, *LIMBS["shin"]), 450.0, atol=1e-3)
    np.testing.assert_allclose(clip.joints_mm[:, JOINTS.index("thorax"), 1], 1570.0, atol=1e-3)
    np.save(tmp_path / "bad.npy", pos[:, :50])
    with pytest.raises(EdgecapError, match=r"bad.npy: joint positions \(6, 50, 3\), expected \(F, 53, 3\)"):
        load_holosoma(tmp_path / "bad.npy")


URDF = """<?xml version="1.0" ?>
<robot name="humanoid">
  <link name="base"/><link name="root"/><link name="chest"/><link name="neck"/>
  <link name="right_hip"/><link name="right_knee"/><link name="right_ankle"/>
  <link name="right_shoulder"/><link name="right_elbow"/><link name="right_wrist"/>
  <link name="left_hip"/><link name="left_knee"/><link name="left_ankle"/>
  <link name="left_shoulder"/><link name="left_elbow"/><link name="left_wrist"/>
  {joints}
</robot>
""".replace("\n", "\r\n")


def _joint(name, parent, xyz, kind="spherical"):
    return (f'<joint name="{name}" type="{kind}"><parent link="{parent}"/><child link="{name}"/>'
            f'<origin rpy="0 0 0" xyz="{xyz}"/></joint>')


def deepmimic_files(tmp_path, knee_angle=0.0):
    """humanoid.urdf's joint tree (DeepMimic's offsets, y up, x forward) and a 3-frame clip."""
    joints = [_joint("root", "base", "0 0 0", "fixed"), _joint("chest", "root", "0 0.944604 0"),
              _joint("neck", "chest", "0 0.895576 0")]
    for side, z in (("right", 1), ("left", -1)):
        joints += [_joint(f"{side}_hip", "root", f"0 0 {0.339548 * z}"),
                   _joint(f"{side}_knee", f"{side}_hip", "0 -1.686184 0", "revolute"),
                   _joint(f"{side}_ankle", f"{side}_knee", "0 -1.639480 0"),
                   _joint(f"{side}_shoulder", "chest", f"-0.0962 0.974 {0.73244 * z}"),
                   _joint(f"{side}_elbow", f"{side}_shoulder", "0 -1.099152 0", "revolute"),
                   _joint(f"{side}_wrist", f"{side}_elbow", "0 -1.035788 0", "fixed")]
    (tmp_path / "humanoid.urdf").write_bytes(URDF.format(joints="\r\n".join(joints)).encode() + b"\x00")
    ident = [1.0, 0.0, 0.0, 0.0]
    frames = []
    for t in range(3):
        row = [1 / 60, 0.1 * t, 0.95, 0.0] + ident  # duration, root xyz, root wxyz
        for name, n in (("chest", 4), ("neck", 4), ("rh", 4), ("rk", 1), ("ra", 4), ("rs", 4), ("re", 1),
                        ("lh", 4), ("lk", 1), ("la", 4), ("ls", 4), ("le", 1)):
            row += [knee_angle] if name in ("rk", "lk") else ([0.0] if n == 1 else [2.0, 0.0, 0.0, 0.0])  # unnormalised
        frames.append(row)
    frames[-1][0] = 0.0  # DeepMimic's last frame has no duration
    (tmp_path / "humanoid3d_walk.txt").write_text(json.dumps({"Loop": "wrap", "Frames": frames}))
    return tmp_path / "humanoid3d_walk.txt", tmp_path / "humanoid.urdf"


def test_deepmimic_forward_kinematics(tmp_path):
    clip = load_deepmimic(*deepmimic_files(tmp_path), motion="walk")
    assert clip.fps == pytest.approx(60.0) and clip.joints_mm.shape == (3, 17, 3)
    j = clip.joints_mm
    np.testing.assert_allclose(length(j, *LIMBS["thigh"]), 421.546, atol=1e-2)  # 1.686184 * 0.25 m
    np.testing.assert_allclose(length(j, *LIMBS["hips"]), 169.774, atol=1e-2)
    np.testing.assert_allclose(j[:, JOINTS.index("pelvis")], [[0, 950, 0], [100, 950, 0], [200, 950, 0]], atol=1e-3)
    np.testing.assert_allclose(j[0, JOINTS.index("l_ankle"), 1], 950 - 421.546 - 409.870, atol=1e-2)  # straight leg
    # a bent knee (about z, DeepMimic's knee axis) lifts the ankle and moves it behind the knee (-x)
    (tmp_path / "bent").mkdir()
    bent = load_deepmimic(*deepmimic_files(tmp_path / "bent", knee_angle=-np.pi / 2), motion="walk").joints_mm
    np.testing.assert_allclose(bent[0, JOINTS.index("l_ankle"), 1], bent[0, JOINTS.index("l_knee"), 1], atol=1e-2)
    assert bent[0, JOINTS.index("l_ankle"), 0] < bent[0, JOINTS.index("l_knee"), 0] - 400


def test_deepmimic_bad_files(tmp_path):
    txt, urdf = deepmimic_files(tmp_path)
    txt.write_text(json.dumps({"Frames": [[0.1] * 43] * 3}))
    with pytest.raises(EdgecapError, match=r"humanoid3d_walk.txt: Frames has shape \(3, 43\), expected"):
        load_deepmimic(txt, urdf, "walk")
    txt.write_text("{not json")
    with pytest.raises(EdgecapError, match="not a DeepMimic motion file"):
        load_deepmimic(txt, urdf, "walk")


def test_resample_keeps_the_motion():
    from edgecap.data.real_motion.clips import RealClip

    t = np.arange(121) / 120.0
    joints = np.zeros((121, 17, 3), np.float32)
    joints[..., 0] = (1000 * t)[:, None]  # 1 m/s along x
    out = resample(RealClip("x", "holosoma", "climb", 120.0, joints), 50.0)
    assert out.shape == (51, 17, 3)
    np.testing.assert_allclose(out[:, 0, 0], 1000 * np.arange(51) / 50.0, atol=1e-3)


def stand_in_wheel(wheel, folder):
    """In place of wheel_cache.download: a wheel holding the expected members, each file's text
    naming its wheel and member."""
    path = folder / f"{wheel.name.replace('-', '_')}-{wheel.version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as zf:
        for member in wheel.files:
            zf.writestr(member, f"{wheel.name}:{member}")
    return path


def test_fetch_extracts_members_and_records_hashes(tmp_path, monkeypatch):
    monkeypatch.setattr(wheel_cache, "download", stand_in_wheel)
    record = fetch_module.fetch(tmp_path / "cache", say=lambda *_: None)
    assert [w["name"] for w in record["wheels"]] == ["isaaclab", "holosoma-retargeting", "pybullet"]
    assert (tmp_path / "cache" / "deepmimic" / "humanoid.urdf").read_text() == \
        "pybullet:pybullet_data/humanoid/humanoid.urdf"
    stored = json.loads((tmp_path / "cache" / "sources.json").read_text())
    assert stored["wheels"][0]["files"]["isaaclab/humanoid_walk.npz"]["sha256"]

    def missing_member(wheel, folder):
        path = folder / "x.whl"
        zipfile.ZipFile(path, "w").close()
        return path

    monkeypatch.setattr(wheel_cache, "download", missing_member)
    with pytest.raises(EdgecapError, match="expected member"):
        fetch_module.fetch(tmp_path / "cache2", say=lambda *_: None)
    assert not (tmp_path / "cache2" / "sources.json").exists()  # an incomplete cache is not marked fetched


def test_load_clips_without_cache(tmp_path):
    with pytest.raises(EdgecapError, match="make real-motion"):
        load_clips(tmp_path / "nothing")


def test_real_motion_scores_with_known_predictors(tmp_path):
    """A predictor that returns the truth scores 0; the rest-pose baseline does not."""
    from edgecap.models.lifting.real_motion import evaluate_real_motion, film

    isaac_file(tmp_path / "humanoid_walk.npz", frames=40)
    clip = load_isaac(tmp_path / "humanoid_walk.npz", "walk")
    data, names, _ = film([clip], 50.0, 9, "last", cameras=2)  # what the evaluation films (same seed)
    assert names == ["isaac/walk"] * 2 and DIRECT_MASK.sum() == 13 and len(data) < 1024  # one batch

    def oracle(inputs):
        return {"joints_3d_mm": data.target_poses()}

    result = evaluate_real_motion(oracle, [clip], 50.0, 9, "last", cameras=2)
    model, rest = result["groups"]["all"]["model"], result["groups"]["all"]["rest_pose"]
    assert model["p_mpjpe_mm"] < 1e-3 and model["mpjpe_mm"] < 1e-3 and rest["p_mpjpe_mm"] > 1.0
    assert {"walk+run+dance", "source:isaaclab", "motion:walk", "clip:isaac/walk"} <= set(result["groups"])


@pytest.mark.skipif(not (fetch_module.default_cache() / "sources.json").exists(),
                    reason="no real-motion cache: run `make real-motion` to fetch the clips")
def test_real_cache_clips_are_plausible():
    clips = load_clips(split="all")
    assert {c.name for c in clips} >= set(EVAL_CLIPS)
    for c in clips:
        thigh = length(c.joints_mm, "l_hip", "l_knee")
        assert 300 < thigh.mean() < 500 and thigh.std() < 1.0, c.name  # rigid, human-sized
        assert np.median(c.joints_mm[:, JOINTS.index("head"), 1]) > np.median(c.joints_mm[:, 0, 1]) or \
            c.motion in ("floor", "acrobatic"), c.name


def fake_cache(root):
    """Every file load_clips reads, in each source's layout (stand-ins for `make real-motion`)."""
    from edgecap.data.real_motion import _DEEPMIMIC_MOTION

    (root / "isaaclab").mkdir(parents=True)
    for m in ("walk", "run", "dance"):
        isaac_file(root / "isaaclab" / f"humanoid_{m}.npz", frames=30)
    (root / "holosoma").mkdir()
    holo = np.zeros((40, len(HOLOSOMA_JOINTS), 3), np.float32)
    holo[..., 2] = np.linspace(0.1, 1.7, len(HOLOSOMA_JOINTS))  # a vertical stack: every bone has a length
    for i in range(5):
        np.save(root / "holosoma" / f"climb_seq_{i}.npy", holo)
    (root / "deepmimic").mkdir()
    txt, _ = deepmimic_files(root / "deepmimic")
    for name in _DEEPMIMIC_MOTION:
        (root / "deepmimic" / f"humanoid3d_{name}.txt").write_text(txt.read_text())
    (root / "sources.json").write_text("{}")
    return root


def test_clip_split_is_disjoint(tmp_path):
    cache = fake_cache(tmp_path / "cache")
    evaluated = {c.name for c in load_clips(cache, "eval")}
    trained = {c.name for c in load_clips(cache, "train")}
    assert evaluated == set(EVAL_CLIPS) and not evaluated & trained
    assert len(evaluated | trained) == len(load_clips(cache, "all")) == 22


def test_anthropometric_proportions_span_real_skeletons():
    from edgecap.data.synthetic_motion import generate_motion

    fixed = generate_motion(40, 5, proportions="fixed", noise_px=0.0)
    wide = generate_motion(40, 5, proportions="anthropometric", noise_px=0.0)

    def hip_width(m):
        j = m.joints_3d_mm
        return np.linalg.norm(j[:, 0, JOINTS.index("l_hip")] - j[:, 0, JOINTS.index("r_hip")], axis=-1)

    assert hip_width(fixed).min() > 210 and hip_width(wide).min() < 190  # the real skeletons: 170-195 mm
    j = wide.joints_3d_mm[:, 0]
    left = np.linalg.norm(j[:, JOINTS.index("l_hip")] - j[:, JOINTS.index("l_knee")], axis=-1)
    right = np.linalg.norm(j[:, JOINTS.index("r_hip")] - j[:, JOINTS.index("r_knee")], axis=-1)
    np.testing.assert_allclose(left, right, rtol=0.05)  # one skeleton: left and right limbs alike


def test_real_sequences_join_training_only():
    """data.real_sequences cuts from the bundled training clips (no cache needed)."""
    from edgecap.data.motion import MotionDataConfig, load_motion_windows

    cfg = MotionDataConfig(train_sequences=3, val_sequences=2, frames=12, real_sequences=4)
    train = load_motion_windows(cfg, "h36m", 9, "last", "train")
    val = load_motion_windows(cfg, "h36m", 9, "last", "val")
    assert len(np.unique(train.sequence_ids)) == 7 and len(np.unique(val.sequence_ids)) == 2
    with pytest.raises(EdgecapError, match="data.proportions"):
        MotionDataConfig(proportions="tall").validate()


def test_bundled_training_clips_hold_no_evaluation_clip():
    from edgecap.data.real_motion.bundled import load_training_clips

    clips = load_training_clips()
    assert {c.source for c in clips} == {"holosoma", "deepmimic"} and not {c.name for c in clips} & set(EVAL_CLIPS)
    for c in clips:
        assert c.joints_mm.shape[1:] == (17, 3) and np.isfinite(c.joints_mm).all() and c.fps > 0


def test_bundle_is_written_from_a_cache_and_refuses_a_bad_file(tmp_path):
    from edgecap.data.real_motion.bundled import load_training_clips, write_bundle

    cache = fake_cache(tmp_path / "cache")
    written = write_bundle(cache, tmp_path / "clips.npz")
    read = load_training_clips(tmp_path / "clips.npz")
    assert [c.name for c in read] == [c.name for c in written] == [c.name for c in load_clips(cache, "train")]
    np.testing.assert_array_equal(read[0].joints_mm, written[0].joints_mm)
    (tmp_path / "bad.npz").write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(EdgecapError, match="bad.npz: not a readable bundle of training clips"):
        load_training_clips(tmp_path / "bad.npz")
    index = [{"name": "isaac/walk", "source": "isaaclab", "motion": "walk", "fps": 60.0}]
    np.savez(tmp_path / "leaky.npz", index=np.array(json.dumps(index)), clip0=np.zeros((5, 17, 3), np.float32))
    with pytest.raises(EdgecapError, match="holds evaluation clips \\['isaac/walk'\\]"):
        load_training_clips(tmp_path / "leaky.npz")
    np.savez(tmp_path / "flat.npz", index=np.array(json.dumps(index)), clip0=np.zeros((5, 51), np.float32))
    with pytest.raises(EdgecapError, match="not \\(frames, 17, 3\\) joints"):
        load_training_clips(tmp_path / "flat.npz")


@pytest.mark.skipif(not (fetch_module.default_cache() / "sources.json").exists(),
                    reason="no real-motion cache: run `make real-motion` to fetch the clips")
def test_bundled_clips_are_the_caches_training_split():
    from edgecap.data.real_motion.bundled import load_training_clips

    bundled, cached = load_training_clips(), load_clips(split="train")
    assert [c.name for c in bundled] == [c.name for c in cached]
    for b, c in zip(bundled, cached):
        assert b.fps == c.fps
        np.testing.assert_allclose(b.joints_mm, c.joints_mm, atol=1e-3)


def test_flat_2d_baseline_puts_unseen_joints_at_the_root():
    from edgecap.models.lifting.real_motion import flat_2d

    kp = np.zeros((1, 17, 3), np.float32)
    kp[0, :, :2] = np.arange(34).reshape(17, 2) + 100
    kp[0, :, 2] = 1
    kp[0, 5] = 0  # not seen: zeroed, as the 2D data stores it
    flat = flat_2d(kp)
    np.testing.assert_allclose(flat[0, 1, :2], [2, 2])
    np.testing.assert_allclose(flat[0, :, 2], 0)
    np.testing.assert_allclose(flat[0, 5], 0)
    kp[0, 0, 2] = 0  # no pelvis: the mean of the seen joints is the root
    assert abs(flat_2d(kp)[0, :, :2][kp[0, :, 2] > 0].mean()) < 1e-4


def test_extended_motions_run_and_dance():
    """Running sequences move several times faster than walking ones; the classic mix is unchanged."""
    from edgecap.data.synthetic_motion import generate_motion

    classic = generate_motion(6, 20, seed=5, noise_px=0.0, motions="classic", proportions="fixed")
    # values of the classic mix as generated before the extended one existed (the triangulation
    # rigs and every earlier published lifting result were made with it)
    np.testing.assert_allclose(classic.joints_3d_mm[0, 10, 2], [212.099, 376.744, 268.62], atol=2e-3)
    np.testing.assert_allclose(classic.joints_3d_mm[5, 19, 16], [213.809, 71.918, -29.324], atol=2e-3)
    np.testing.assert_allclose(classic.keypoints_2d[2, 7, 13], [596.817, 1015.025, 1.0], atol=2e-3)
    extended = generate_motion(60, 50, seed=5, noise_px=0.0, motions="extended")
    wrists = extended.joints_3d_mm[:, :, [JOINTS.index("l_wrist"), JOINTS.index("r_wrist")]]
    base = generate_motion(60, 50, seed=5, noise_px=0.0)
    base_wrists = base.joints_3d_mm[:, :, [JOINTS.index("l_wrist"), JOINTS.index("r_wrist")]]
    # dancing raises the arms: wrists above the pelvis (camera y is down) far more often
    assert (wrists[..., 1] < -200).mean() > 2 * (base_wrists[..., 1] < -200).mean()


def test_extended_motions_also_lie_roll_and_move_freely():
    """The extended mix tilts some bodies far from upright (lying, crawling, cartwheels) and keeps
    every bone rigid; the classic mix keeps everyone on their feet."""
    from edgecap.data.synthetic_motion import generate_motion

    def trunk_tilt_deg(seqs):  # angle between pelvis->thorax and the camera's up (-y; cameras tilt <= 30 deg)
        trunk = seqs.joints_3d_mm[..., JOINTS.index("thorax"), :] - seqs.joints_3d_mm[..., JOINTS.index("pelvis"), :]
        cos = -trunk[..., 1] / np.linalg.norm(trunk, axis=-1)
        return np.degrees(np.arccos(np.clip(cos, -1, 1)))

    classic = generate_motion(60, 30, seed=2, noise_px=0.0)
    extended = generate_motion(60, 30, seed=2, noise_px=0.0, motions="extended")
    assert trunk_tilt_deg(classic).max() < 70
    assert (trunk_tilt_deg(extended).max(1) > 80).sum() >= 3
    shin = np.linalg.norm(extended.joints_3d_mm[..., JOINTS.index("l_knee"), :]
                          - extended.joints_3d_mm[..., JOINTS.index("l_ankle"), :], axis=-1)
    np.testing.assert_allclose(shin, np.broadcast_to(shin[:, :1], shin.shape), rtol=1e-4)


def test_long_clips_are_filmed_in_short_shots_and_frames_out_of_view_are_not_scored():
    """A clip walking 12 m in 12 s is cut into 2 s shots, each aimed at its own shot, and keeps
    the person in view; a faster one leaves some cameras' pictures, and only frames with every
    direct joint in view are scored."""
    from edgecap.data.real_motion import RealClip
    from edgecap.models.lifting.real_motion import evaluate_real_motion, film, rest_pose_mm

    frames = 600  # 12 s at 50 fps
    standing = rest_pose_mm() * [1, -1, 1] + [0, 900, 0]  # camera axes -> y-up world, feet near the floor

    def crossing(metres):
        return RealClip("test/cross", "test", "walk", 50.0,
                        standing[None] + np.linspace(0, metres, frames)[:, None, None] * [1, 0, 0])

    data, names, in_view = film([crossing(12_000)], 50.0, 9, "last", cameras=4)
    assert len(names) == 6 * 4 and len(data) == frames * 4  # every frame filmed: 6 shots x 4 cameras
    np.testing.assert_array_equal(in_view, (data.keypoints[data.targets][..., 2][:, DIRECT_MASK] > 0).all(-1))
    assert in_view.mean() > 0.9
    _, _, fast_view = film([crossing(60_000)], 50.0, 9, "last", cameras=4)
    assert fast_view.mean() < 0.9
    noisy, _, noisy_view = film([crossing(60_000)], 50.0, 9, "last", cameras=4, noise=True)
    # which frames count comes from the exact projection: a detector's dropped joints do not remove a
    # frame (only pixel noise at the picture's edge makes the two differ the other way)
    noisy_seen = (noisy.keypoints[noisy.targets][..., 2][:, DIRECT_MASK] > 0).all(-1)
    assert (noisy_view & ~noisy_seen).mean() > 0.05 and (noisy_seen & ~noisy_view).mean() < 0.01
    result = evaluate_real_motion(lambda x: {"joints_3d_mm": np.zeros((len(x["keypoints_2d"]), 17, 3))},
                                  [crossing(60_000)], 50.0, 9, "last", cameras=4)
    group = result["groups"]["all"]
    assert group["model"]["frames"] == fast_view.sum() and group["in_view"] == pytest.approx(fast_view.mean())


def test_real_sequences_with_another_skeleton_are_refused_before_any_data_is_made(monkeypatch):
    from edgecap.data import motion, synthetic_motion

    monkeypatch.setattr(synthetic_motion, "generate_motion", lambda *a, **k: pytest.fail("data was made"))
    with pytest.raises(EdgecapError, match="data.real_sequences needs the h36m skeleton.*set data.real_sequences=0"):
        motion.load_motion_windows(motion.MotionDataConfig(real_sequences=4), "coco", 9, "last", "train")
