"""The VoxCeleb-style face folder reader, on folders the tests write, and its refusals."""

import numpy as np
import pytest
from PIL import Image

from edgecap import EdgecapError
from edgecap.data.face_videos import from_talking_heads, load_face_folder
from edgecap.data.talking_heads import generate_talking_heads


def write_folder(root, size=32, identities=2, videos=2, frames=3, landmarks=True, masks=True):
    rng = np.random.default_rng(0)
    for i in range(identities):
        for v in range(videos):
            video = root / f"id{i:03d}" / f"clip{v}"
            video.mkdir(parents=True)
            for f in range(frames):
                Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(video / f"{f:05d}.jpg")
                if masks:
                    (video / "masks").mkdir(exist_ok=True)
                    Image.fromarray((rng.random((size, size)) > 0.5).astype(np.uint8) * 255).save(
                        video / "masks" / f"{f:05d}.png")
            if landmarks:
                np.save(video / "landmarks.npy", rng.uniform(0, size, (frames, 5, 2)).astype(np.float32))
    return root


def test_reads_identities_videos_frames_landmarks_and_masks(tmp_path):
    data = load_face_folder(write_folder(tmp_path / "faces"), 32)
    assert len(data) == 4 and data.size == 32 and data.identities == ["id000", "id001"]
    assert list(data.person) == [0, 0, 1, 1] and data.names[1] == "id000/clip1"
    assert data.frames[0].shape == (3, 32, 32, 3) and data.frames[0].dtype == np.uint8
    assert data.landmarks[0].shape == (3, 5, 3) and np.all(data.landmarks[0][..., 2] == 1)
    assert set(np.unique(data.masks[0])) <= {0, 1} and 0 < data.masks[0].mean() < 1


def test_without_masks_the_whole_frame_is_foreground(tmp_path):
    data = load_face_folder(write_folder(tmp_path / "faces", masks=False, landmarks=False), 32)
    assert np.all(data.masks[2] == 1) and data.landmarks[2] is None


def test_synthetic_heads_convert(tmp_path):
    heads = generate_talking_heads(2, 2, 3, 32, seed=0)
    data = from_talking_heads(heads)
    assert len(data) == 4 and list(data.person) == [0, 0, 1, 1] and data.frames[3].shape == (3, 32, 32, 3)


def test_identity_folder_without_images(tmp_path):
    root = write_folder(tmp_path / "faces")
    (root / "id999" / "clip0").mkdir(parents=True)
    with pytest.raises(EdgecapError, match=r"id999: identity folder with no images"):
        load_face_folder(root, 32)


def test_frame_of_the_wrong_size(tmp_path):
    root = write_folder(tmp_path / "faces")
    Image.fromarray(np.zeros((40, 32, 3), np.uint8)).save(root / "id001" / "clip0" / "00001.jpg")
    with pytest.raises(EdgecapError, match=r"id001/clip0/00001.jpg: 32x40 px, expected 32x32 \(model.image_size\)"):
        load_face_folder(root, 32)


@pytest.mark.parametrize("damage", ["truncate", "garbage"])
def test_corrupt_jpeg(tmp_path, damage):
    root = write_folder(tmp_path / "faces")
    path = root / "id000" / "clip1" / "00002.jpg"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2] if damage == "truncate" else b"not a jpeg at all")
    with pytest.raises(EdgecapError, match=r"clip1/00002.jpg is corrupt or not an image"):
        load_face_folder(root, 32)


def test_landmarks_of_the_wrong_shape_and_short_videos(tmp_path):
    root = write_folder(tmp_path / "faces")
    np.save(root / "id000" / "clip0" / "landmarks.npy", np.zeros((2, 5, 2)))
    with pytest.raises(EdgecapError, match=r"clip0/landmarks.npy: landmarks must be finite \(frames=3, L, 2\|3\), "
                                           r"got shape \(2, 5, 2\)"):
        load_face_folder(root, 32)
    short = write_folder(tmp_path / "short", frames=1, identities=1, videos=1)
    with pytest.raises(EdgecapError, match=r"clip0: 1 frame\(s\); a video needs at least 2"):
        load_face_folder(short, 32)
    with pytest.raises(EdgecapError, match="no such folder"):
        load_face_folder(tmp_path / "absent", 32)
