"""The reenactment task side: meta-learning batches, evaluation pairs, metrics."""

import numpy as np
import pytest

from edgecap import EdgecapError
from edgecap.data.face_videos import from_talking_heads
from edgecap.data.talking_heads import EYES, generate_talking_heads
from edgecap.models.reenactment.app import (evaluation_pairs, identity_error, mask_iou, pose_error, psnr,
                                            sample_meta_batch, ssim)


@pytest.fixture(scope="module")
def heads():
    return from_talking_heads(generate_talking_heads(3, 2, 6, 32, seed=0))


def test_meta_batch_takes_identity_and_driver_from_one_video(heads):
    batch = sample_meta_batch(heads, np.random.default_rng(0), 5, k=3)
    assert batch["identity_frames"].shape == (5, 3, 3, 32, 32) and batch["driver"].shape == (5, 3, 32, 32)
    assert batch["driver_mask"].shape == (5, 1, 32, 32) and batch["driver"].dtype == np.float32
    assert 0 <= batch["driver"].min() and batch["driver"].max() <= 1
    # each driver is a frame of the video its identity frames come from, and not one of them
    frames = [np.moveaxis(f, -1, -3).astype(np.float32) / 255 for f in heads.frames]
    for ident, driver in zip(batch["identity_frames"], batch["driver"]):
        video = next(v for v in frames if any(np.array_equal(ident[0], f) for f in v))
        assert any(np.array_equal(driver, f) for f in video)
        assert not any(np.array_equal(driver, f) for f in ident)


def test_evaluation_pairs(heads):
    pairs = evaluation_pairs(heads, k=4, per_video=2)
    assert len(pairs) == len(heads) * 4 and pairs == evaluation_pairs(heads, k=4, per_video=2)
    for p in pairs:
        assert p.driver_frame not in p.source_frames or p.kind == "cross"
        same_person = heads.person[p.source] == heads.person[p.driver]
        assert (p.kind == "self") == (p.source == p.driver) and (p.kind == "cross") == (not same_person)
    one = from_talking_heads(generate_talking_heads(1, 2, 4, 32))
    with pytest.raises(EdgecapError, match="at least two people"):
        evaluation_pairs(one, k=2)


def test_metrics():
    rng = np.random.default_rng(0)
    a = rng.random((2, 3, 32, 32)).astype(np.float32)
    assert np.all(psnr(a, a) == 100.0) and np.allclose(ssim(a, a), 1.0)
    noisy = np.clip(a + rng.normal(0, 0.1, a.shape), 0, 1)
    assert np.all(psnr(noisy, a) < 25) and np.all(ssim(noisy, a) < 0.95)
    np.testing.assert_allclose(psnr(np.zeros((1, 3, 4, 4)), np.full((1, 3, 4, 4), 0.1)), 20.0)
    m = np.zeros((1, 1, 8, 8))
    m[..., :4] = 1
    half = np.zeros_like(m)
    half[..., :2] = 1
    np.testing.assert_allclose(mask_iou(half, m), 0.5)
    ref = np.zeros((1, len(EYES) + 2, 2))
    ref[0, 1] = [10, 0]  # interocular distance 10
    moved = ref + np.array([1.0, 0.0])
    np.testing.assert_allclose(pose_error(moved, ref, (0, 1)), 0.1)
    far = moved.copy()
    far[0, 3] += 50  # a hidden landmark far off counts only when visibility is not given
    assert pose_error(far, ref, (0, 1))[0] > 1
    np.testing.assert_allclose(pose_error(far, ref, (0, 1), visible=np.array([[1, 1, 1, 0]])), 0.1)
    np.testing.assert_allclose(identity_error(np.array([[1.0, 0]]), np.array([[0.0, 2]])), 1.0)
    np.testing.assert_allclose(identity_error(np.array([[1.0, 1]]), np.array([[2.0, 2]])), 0.0, atol=1e-12)
