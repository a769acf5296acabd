"""Reading image files: one decoder for every family, with one-line errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgecap import EdgecapError

MAX_IMAGE_PIXELS = 50_000_000


def read_image(path: Path, mode: str = "RGB") -> np.ndarray:
    """(H, W, 3) uint8 for mode "RGB", (H, W) for "L". The file is decoded in full here, so a
    truncated JPEG, a file that is no image, or a decompression bomb fails with its name."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            if im.width * im.height > MAX_IMAGE_PIXELS:  # a decompression bomb, or not a photo
                raise EdgecapError(f"image {path} is {im.width}x{im.height}: over {MAX_IMAGE_PIXELS:,} pixels")
            im.load()
            return np.asarray(im.convert(mode))
    except FileNotFoundError:
        raise EdgecapError(f"image not found: {path}") from None
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError, SyntaxError) as e:
        raise EdgecapError(f"image {path} is corrupt or not an image: {e}") from None
