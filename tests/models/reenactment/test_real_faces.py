"""The real-face judge and detector (MediaPipe's .tflite files, `make face-assets`): anchors
built as BlazeFace's, and on the fetched files, a face found and 468 landmarks read, the
evaluation set skipped with its reason when the cache is absent."""

import numpy as np
import pytest

from edgecap import EdgecapError
from edgecap.data import face_assets
from edgecap.models import get_family
from edgecap.models.reenactment import real_faces


def test_detector_anchors_are_blazeface_short_range():
    anchors = real_faces._detector_anchors()
    assert anchors.shape == (896, 2)
    np.testing.assert_allclose(anchors[0], [0.5 / 16, 0.5 / 16])  # stride 8: a 16 x 16 grid, 2 per cell
    np.testing.assert_allclose(anchors[1], anchors[0])
    np.testing.assert_allclose(anchors[512], [0.5 / 8, 0.5 / 8])  # stride 16: 8 x 8, 6 per cell
    assert (anchors > 0).all() and (anchors < 1).all()


def test_real_faces_set_says_why_it_is_skipped(monkeypatch, tmp_path):
    monkeypatch.setenv("EDGECAP_FACE_ASSETS", str(tmp_path / "none"))
    family = get_family("reenactment")
    why = family.evaluation_set_missing("real-faces", family.facts.run_config())
    assert "make face-assets" in why


def _assets():
    try:
        return face_assets.asset("mediapipe/face_landmark.tflite").parent.parent
    except EdgecapError as e:  # not fetched here: the reason is the skip message
        pytest.skip(f"face assets not fetched ({e})")


def test_detector_and_mesh_on_a_real_face():
    from skimage.data import astronaut

    cache = _assets()
    detector = real_faces.FaceDetector(cache / "mediapipe/face_detection_short_range.tflite")
    box, score = detector.detect(astronaut())
    assert score > 0.8 and 150 < box[0] < box[2] < 320 and 50 < box[1] < box[3] < 220  # her face, top centre
    crop = real_faces.face_crops(astronaut()[None], detector, 64)
    judge = real_faces.MeshJudge(cache / "mediapipe/face_landmark.tflite")
    points = judge.landmarks(np.moveaxis(crop, -1, 1).astype(np.float32) / 255)
    assert points.shape == (1, 468, 2)
    right, left = points[0, list(real_faces.MESH_EYES)]
    assert right[0] < left[0] and 8 < left[0] - right[0] < 40  # the eyes across the middle of the crop
