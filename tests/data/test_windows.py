"""PoseWindows against a direct per-frame construction of each window."""

import numpy as np
import pytest

from edgecap import EdgecapError
from edgecap.data.windows import PoseWindows, window_offsets

J = 4


def sequences(lengths):
    """Keypoints/3D whose values encode (sequence, frame, joint) so any mix-up is visible;
    validity is 1 everywhere in the real frames."""
    kps, gts = [], []
    for s, n in enumerate(lengths):
        f, j = np.meshgrid(np.arange(n), np.arange(J), indexing="ij")
        kps.append(np.stack([100 * (s + 1) + f, j, np.ones_like(f)], -1).astype(np.float32))
        gts.append(np.stack([f, j, np.full_like(f, s + 1)], -1).astype(np.float32) * 10)
    return kps, gts


def expected_window(kp, frame, offsets):
    """Frames outside the sequence are zeros (validity 0), as the streaming helper feeds them."""
    return np.stack([kp[frame + o] if 0 <= frame + o < len(kp) else np.zeros((J, 3), np.float32) for o in offsets])


def test_offsets():
    np.testing.assert_array_equal(window_offsets(5, "last"), [-4, -3, -2, -1, 0])
    np.testing.assert_array_equal(window_offsets(5, "centre"), [-2, -1, 0, 1, 2])
    np.testing.assert_array_equal(window_offsets(1, "last"), [0])
    np.testing.assert_array_equal(window_offsets(1, "centre"), [0])


@pytest.mark.parametrize("target", ["last", "centre"])
def test_every_window_matches_the_sequence(target):
    lengths = [7, 2, 5]  # one sequence shorter than the window: padding on both sides
    kps, gts = sequences(lengths)
    data = PoseWindows.from_sequences(kps, gts, 5, target)
    offsets = window_offsets(5, target)
    assert len(data) == sum(lengths)
    np.testing.assert_array_equal(data.sequence_ids, np.repeat(np.arange(3), lengths))
    np.testing.assert_array_equal(data.frame_ids, np.concatenate([np.arange(n) for n in lengths]))
    windows, poses = data.windows(np.arange(len(data)))
    assert windows.shape == (len(data), 5, J, 3) and poses.shape == (len(data), J, 3)
    for i, (s, f) in enumerate(zip(data.sequence_ids, data.frame_ids)):
        np.testing.assert_array_equal(windows[i], expected_window(kps[s], f, offsets))
        np.testing.assert_array_equal(poses[i], gts[s][f])
    np.testing.assert_array_equal(data.target_poses(), np.concatenate(gts))


def test_start_padding_is_zero_with_validity_0():
    kps, gts = sequences([6])
    w, _ = PoseWindows.from_sequences(kps, gts, 4, "last").windows(np.array([0, 1]))
    assert np.all(w[0, :3] == 0) and np.all(w[1, :2] == 0)
    np.testing.assert_array_equal(w[0, 3], kps[0][0])
    np.testing.assert_array_equal(w[1, 2:], kps[0][:2])


def test_centre_target_is_the_middle_frame():
    kps, gts = sequences([9])
    data = PoseWindows.from_sequences(kps, gts, 5, "centre")
    w, pose = data.windows(np.array([4]))
    np.testing.assert_array_equal(w[0], kps[0][2:7])
    np.testing.assert_array_equal(pose[0], gts[0][4])
    # At the end the window runs past the last frame into zero padding.
    w, _ = data.windows(np.array([8]))
    np.testing.assert_array_equal(w[0, :3], kps[0][6:9])
    assert np.all(w[0, 3:] == 0)


def test_batches_cover_all_targets_in_order():
    kps, gts = sequences([5, 3])
    data = PoseWindows.from_sequences(kps, gts, 3, "last")
    got = [p for _, p in data.batches(3)]
    assert [len(p) for p in got] == [3, 3, 2]
    np.testing.assert_array_equal(np.concatenate(got), np.concatenate(gts))


def test_shape_mismatch_is_an_error():
    kps, gts = sequences([5, 3])
    gts[1] = gts[1][:, :3]
    with pytest.raises(EdgecapError, match=r"sequence 1: keypoints \(3, 4, 3\) and joints \(3, 3, 3\)"):
        PoseWindows.from_sequences(kps, gts, 3, "last")
