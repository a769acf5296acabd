"""The synthetic faces' metric networks learn their labels: landmarks better than the mean
face's, and identity descriptors that tell people apart across poses."""

import numpy as np
import pytest

from edgecap.data.talking_heads import EYES, generate_talking_heads
from edgecap.models.reenactment.app import identity_error, pose_error, to_chw
from edgecap.models.reenactment.judges import cached_judges, train_judges


def _flat(heads):
    n = heads.images.shape[0] * heads.images.shape[1]
    identity = np.repeat(heads.identity, heads.images.shape[1], 0)
    return to_chw(heads.images.reshape(n, *heads.images.shape[2:])), heads.landmarks.reshape(n, -1, 3), identity


@pytest.fixture(scope="module")
def judges_and_val():
    train = _flat(generate_talking_heads(60, 1, 12, 32, seed=1))
    val = generate_talking_heads(6, 2, 6, 32, seed=2)
    return train_judges(*train, steps=200), val  # a short run: the pipeline trains them longer


def test_landmarks_within_a_fraction_of_the_interocular_distance(judges_and_val):
    judges, val = judges_and_val
    images, landmarks, _ = _flat(val)
    err = pose_error(judges.landmarks(images), landmarks[..., :2], EYES)
    xy = landmarks[..., :2]
    centred = pose_error(np.broadcast_to(xy.mean(0), xy.shape), xy, EYES)  # the mean face's landmarks
    assert np.median(err) < 0.85 * np.median(centred), (np.median(err), np.median(centred))


def test_descriptors_tell_people_apart(judges_and_val):
    judges, val = judges_and_val
    images, _, _ = _flat(val)
    d = judges.descriptor(images)
    person = np.repeat(val.person, val.images.shape[1])
    first = np.array([np.nonzero(person == p)[0][0] for p in person])
    same = identity_error(d, d[first])  # the same person, other frames and videos
    other = identity_error(d, d[np.nonzero(person != person[0])[0][0]][None].repeat(len(d), 0))
    assert np.median(same[person == person[0]]) < np.median(other[person == person[0]])
    assert np.median(same) < 0.5


def test_cache_trains_once(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGECAP_CACHE", str(tmp_path))
    calls = []

    def make():
        calls.append(1)
        return _flat(generate_talking_heads(4, 1, 4, 32, seed=0))

    a = cached_judges({"seed": 0, "size": 32}, make, 16, 23, steps=3)
    b = cached_judges({"seed": 0, "size": 32}, make, 16, 23, steps=3)
    assert len(calls) == 1 and len(list((tmp_path / "judges").glob("*.safetensors"))) == 1
    x = np.random.default_rng(0).random((2, 3, 32, 32)).astype(np.float32)
    np.testing.assert_allclose(a.landmarks(x), b.landmarks(x))
