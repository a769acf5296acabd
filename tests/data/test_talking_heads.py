"""The synthetic talking heads: deterministic, labels that agree with the pixels, and pose and
identity that change what they should."""

import numpy as np

from edgecap.data.talking_heads import (EYES, IDENTITY_FIELDS, LANDMARKS, POSE_FIELDS, draw_identities,
                                        draw_scenes, generate_talking_heads, render)


def test_shapes_and_determinism():
    a = generate_talking_heads(3, 2, 5, 64, seed=4)
    b = generate_talking_heads(3, 2, 5, 64, seed=4)
    assert a.images.shape == (6, 5, 64, 64, 3) and a.images.dtype == np.uint8
    assert a.masks.shape == (6, 5, 64, 64) and set(np.unique(a.masks)) <= {0, 1}
    assert a.landmarks.shape == (6, 5, len(LANDMARKS), 3) and a.pose.shape == (6, 5, len(POSE_FIELDS))
    assert a.identity.shape == (6, len(IDENTITY_FIELDS)) and list(a.person) == [0, 0, 1, 1, 2, 2]
    np.testing.assert_array_equal(a.images, b.images)
    np.testing.assert_array_equal(a.identity[0], a.identity[1])  # one person, two videos
    assert not np.array_equal(generate_talking_heads(3, 2, 5, 64, seed=5).images, a.images)


def test_visible_landmarks_lie_on_the_foreground():
    th = generate_talking_heads(4, 1, 8, 96, seed=1)
    lm = th.landmarks.reshape(-1, len(LANDMARKS), 3)
    masks = th.masks.reshape(-1, 96, 96)
    vis = lm[..., 2] > 0
    assert vis.mean() > 0.8
    frame, joint = np.nonzero(vis)
    x = np.clip(lm[frame, joint, 0].astype(int), 0, 95)
    y = np.clip(lm[frame, joint, 1].astype(int), 0, 95)
    assert masks[frame, y, x].mean() > 0.98


def _one(identity, **pose):
    p = np.zeros((1, len(POSE_FIELDS)), np.float32)
    for k, v in pose.items():
        p[0, POSE_FIELDS.index(k)] = v
    scene = draw_scenes(np.random.default_rng(0), 1, 128)
    return render(identity, p, 128, scene)


def test_pose_moves_what_it_should():
    ident = draw_identities(np.random.default_rng(3), 1)
    tip = LANDMARKS.index("nose_tip")
    _, _, rest = _one(ident)
    _, _, turned = _one(ident, yaw=30.0)
    assert turned[0, tip, 0] > rest[0, tip, 0] + 5  # yaw to the image's right
    _, _, down = _one(ident, pitch=20.0)
    assert down[0, tip, 1] > rest[0, tip, 1] + 3
    _, _, talking = _one(ident, jaw=1.0)
    gap = lambda lm: lm[0, LANDMARKS.index("lip_bottom"), 1] - lm[0, LANDMARKS.index("lip_top"), 1]  # noqa: E731
    assert gap(talking) > 2 * gap(rest)
    open_eyes, _, _ = _one(ident)
    closed, _, _ = _one(ident, blink=1.0)
    def white(im):  # the eyes' whites: bright and grey (skin, hair and background drawn here are coloured)
        im = im[0].astype(int)
        return ((im.max(-1) - im.min(-1) < 12) & (im.min(-1) > 110)).sum()

    assert white(closed) < 0.2 * white(open_eyes)


def test_identity_changes_the_face_not_the_pose():
    rng = np.random.default_rng(7)
    a, b = draw_identities(rng, 2)
    img_a, _, lm_a = _one(a[None], yaw=10.0)
    img_b, _, lm_b = _one(b[None], yaw=10.0)
    assert np.abs(img_a.astype(int) - img_b.astype(int)).mean() > 5
    iod = np.linalg.norm(lm_a[0, EYES[0], :2] - lm_a[0, EYES[1], :2])
    assert np.linalg.norm(lm_a[0, LANDMARKS.index("nose_tip"), :2] - lm_b[0, LANDMARKS.index("nose_tip"), :2]) < iod
