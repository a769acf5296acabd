"""The reenactment task side: meta-learning batches, evaluation pairs and the paper's metrics.

Meta-learning step (Burkov et al. 2020, after Zakharov et al. 2019): from one video, K frames
give the identity (their embeddings are averaged) and one other frame is the driver; the model
must reconstruct the driver from its own pose. Evaluation follows the paper:
- self-reenactment (identity and driver from the same video): PSNR and SSIM of the output
  against the driver with its background removed, mask IoU, and the pose reconstruction error
  (landmark distance between output and driver over the interocular distance);
- cross-reenactment (the driver is another person): identity error, 1 - cosine similarity of
  identity descriptors of the output and of the identity source.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgecap import EdgecapError
from edgecap.data.face_videos import FaceVideos


def to_chw(frames: np.ndarray) -> np.ndarray:
    """(..., S, S, 3) uint8 -> (..., 3, S, S) float32 in [0, 1]."""
    return np.moveaxis(frames, -1, -3).astype(np.float32) / 255.0


def sample_meta_batch(data: FaceVideos, rng: np.random.Generator, batch_size: int, k: int) -> dict[str, np.ndarray]:
    """{"identity_frames": (B, K, 3, S, S), "driver": (B, 3, S, S), "driver_mask": (B, 1, S, S)}:
    per sample one video, K identity frames and a different driver frame from it (frames repeat
    when a video has fewer than K + 1)."""
    videos = rng.integers(0, len(data), batch_size)
    ident, driver, mask = [], [], []
    for v in videos:
        n = len(data.frames[v])
        d = rng.integers(0, n)
        others = np.delete(np.arange(n), d)
        pick = rng.choice(others, size=k, replace=len(others) < k)
        ident.append(data.frames[v][pick])
        driver.append(data.frames[v][d])
        mask.append(data.masks[v][d])
    return {"identity_frames": to_chw(np.stack(ident)), "driver": to_chw(np.stack(driver)),
            "driver_mask": np.stack(mask)[:, None].astype(np.float32)}


@dataclass(frozen=True)
class Pair:
    """One evaluation sample: the identity from K frames of `source` video, driven by frame
    `driver_frame` of `driver` video; "self" when both are the same video."""

    source: int
    source_frames: tuple[int, ...]
    driver: int
    driver_frame: int
    kind: str


def evaluation_pairs(data: FaceVideos, k: int, per_video: int = 2, seed: int = 0) -> list[Pair]:
    """Deterministic self- and cross-reenactment pairs: per video, `per_video` of each. The
    identity frames are the video's first K (or all but the driver when it is shorter); self
    drivers come from the rest of the video, cross drivers from a video of another person."""
    if len(set(data.person.tolist())) < 2:
        raise EdgecapError("cross-reenactment needs videos of at least two people; the evaluation data has one")
    rng = np.random.default_rng(seed)
    pairs = []
    for v, frames in enumerate(data.frames):
        n = len(frames)
        source = tuple(range(min(k, n - 1)))
        rest = np.arange(len(source), n)
        for d in rng.choice(rest, size=per_video, replace=len(rest) < per_video):
            pairs.append(Pair(v, source, v, int(d), "self"))
        others = np.nonzero(data.person != data.person[v])[0]
        for o in rng.choice(others, size=per_video):
            pairs.append(Pair(v, source, int(o), int(rng.integers(0, len(data.frames[o]))), "cross"))
    return pairs


def psnr(output: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Per image (N, 3, S, S) in [0, 1] -> (N,) dB (capped at 100 for identical images)."""
    mse = ((output.astype(np.float64) - target) ** 2).mean((1, 2, 3))
    return np.minimum(10 * np.log10(1.0 / np.maximum(mse, 1e-10)), 100.0)


def ssim(output: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Per image (N, 3, S, S) in [0, 1] -> (N,) SSIM (scikit-image, Gaussian window as in Wang et al.)."""
    from skimage.metrics import structural_similarity

    return np.array([structural_similarity(np.moveaxis(o, 0, -1), np.moveaxis(t, 0, -1), channel_axis=-1,
                                           data_range=1.0, gaussian_weights=True, sigma=1.5,
                                           use_sample_covariance=False)
                     for o, t in zip(output.astype(np.float64), target.astype(np.float64))])


def mask_iou(mask: np.ndarray, target: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """(N, 1, S, S) predicted (soft) and true masks -> (N,) IoU of the thresholded masks."""
    a, b = mask > threshold, target > 0.5
    union = (a | b).sum((1, 2, 3))
    return np.where(union > 0, (a & b).sum((1, 2, 3)) / np.maximum(union, 1), 1.0)


def pose_error(landmarks: np.ndarray, reference: np.ndarray, eyes: tuple[int, int],
               visible: np.ndarray | None = None) -> np.ndarray:
    """(N, L, 2) landmarks of the output and of the driver -> (N,) mean distance over the
    driver's interocular distance (between landmarks `eyes`), over the driver's `visible` (N, L)
    landmarks when given (a hidden landmark's position is a guess on both sides)."""
    iod = np.linalg.norm(reference[:, eyes[0]] - reference[:, eyes[1]], axis=-1)
    dist = np.linalg.norm(landmarks - reference, axis=-1)
    seen = np.ones(dist.shape) if visible is None else (visible > 0).astype(np.float64)
    return (dist * seen).sum(1) / np.maximum(seen.sum(1), 1) / np.maximum(iod, 1e-6)


def identity_error(descriptors: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """(N, D) identity descriptors of the outputs and of the identity sources -> (N,) 1 - cosine."""
    num = (descriptors * reference).sum(1)
    den = np.linalg.norm(descriptors, axis=1) * np.linalg.norm(reference, axis=1)
    return 1 - num / np.maximum(den, 1e-12)
