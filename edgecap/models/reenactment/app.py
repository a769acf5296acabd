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
from edgecap.core.runner import Runner
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


# -- the family's data, evaluation and streaming runner ---------------------------------------------

INPUTS = ("identity_frames", "driver")
OUTPUTS = ("image", "mask")
IDENTITY_ENCODER, POSE_ENCODER, GENERATOR, PER_FRAME = "identity_encoder", "pose_encoder", "generator", "per_frame"
EVAL_BATCH = 16


@dataclass
class ReenactmentSplit:
    """Videos with what evaluating them needs: K, the evaluation pairs, and `load_judges` (the
    landmark and identity networks that score outputs, made on first use: stages that only need
    an input never train them; None for a training split)."""

    videos: FaceVideos
    k: int
    pairs: list[Pair]
    load_judges: object | None = None
    _judges: object | None = None

    @property
    def judges(self):
        if self._judges is None:
            if self.load_judges is None:
                raise EdgecapError("scoring needs the validation split's judges (load the 'val' split)")
            self._judges = self.load_judges()
        return self._judges


def k_frames(frames: np.ndarray, k: int) -> np.ndarray:
    """(n, S, S, 3) uint8 -> (K, 3, S, S) in [0, 1]: the frames repeated in turn to K."""
    return to_chw(frames[[i % len(frames) for i in range(k)]])


def identity_frames(videos: FaceVideos, video: int, frames: tuple[int, ...], k: int) -> np.ndarray:
    """(K, 3, S, S): the given frames of a video, repeated in turn when there are fewer than K."""
    return k_frames(videos.frames[video][list(frames)], k)


def pair_inputs(split: ReenactmentSplit, pairs: list[Pair]) -> dict[str, np.ndarray]:
    v = split.videos
    return {"identity_frames": np.stack([identity_frames(v, p.source, p.source_frames, split.k) for p in pairs]),
            "driver": to_chw(np.stack([v.frames[p.driver][p.driver_frame] for p in pairs]))}


def calibration_inputs(split: ReenactmentSplit, count: int, seed: int = 0) -> list[dict[str, np.ndarray]]:
    """`count` meta-learning samples (batch 1): K frames of a video and another frame of it."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        batch = sample_meta_batch(split.videos, rng, 1, split.k)
        out.append({"identity_frames": batch["identity_frames"], "driver": batch["driver"]})
    return out


def run_pairs(predict, split: ReenactmentSplit, batch_size: int = EVAL_BATCH,
              progress: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(images (N, 3, S, S), masks (N, 1, S, S)) of a predictor over every evaluation pair."""
    from edgecap.core.console import progress as progress_bar

    starts = range(0, len(split.pairs), batch_size)
    images, masks = [], []
    for i in progress_bar(starts, desc=progress or "", disable=progress is None, leave=False):
        out = predict(pair_inputs(split, split.pairs[i : i + batch_size]))
        images.append(np.asarray(out["image"], np.float32))
        masks.append(np.asarray(out["mask"], np.float32))
    return np.concatenate(images), np.concatenate(masks)


def score(images: np.ndarray, masks: np.ndarray, split: ReenactmentSplit) -> dict:
    """The paper's metrics of outputs for `split.pairs` (see the module docstring). Targets have
    their background removed (the model draws none): driver x its mask, source frames x theirs."""
    v, judges = split.videos, split.judges
    kinds = np.array([p.kind for p in split.pairs])
    drivers = to_chw(np.stack([v.frames[p.driver][p.driver_frame] for p in split.pairs]))
    driver_masks = np.stack([v.masks[p.driver][p.driver_frame] for p in split.pairs])[:, None].astype(np.float32)
    real = drivers * driver_masks
    # the data's own visibility flags, when the judge finds the data's landmarks (synthetic heads)
    visible = np.stack([v.landmarks[p.driver][p.driver_frame][:, 2]
                        if judges.finds_data_landmarks and v.landmarks[p.driver] is not None
                        else np.ones(judges.num_landmarks) for p in split.pairs])
    pose = pose_error(judges.landmarks(images), judges.landmarks(real), judges.eyes, visible)
    is_self, is_cross = kinds == "self", kinds == "cross"
    identity = None  # not measured where the judges have no identity descriptor (real faces)
    if judges.descriptor is not None:
        sources = {}
        for p in split.pairs:  # the identity source's descriptor: the mean over its frames (foreground only)
            if p.source not in sources:
                frames = to_chw(v.frames[p.source][list(p.source_frames)])
                frames = frames * v.masks[p.source][list(p.source_frames)][:, None]
                sources[p.source] = judges.descriptor(frames).mean(0)
        reference = np.stack([sources[p.source] for p in split.pairs])
        identity = float(identity_error(judges.descriptor(images[is_cross]), reference[is_cross]).mean())
    return {"pose_error": float(pose[is_self].mean()), "identity_error": identity,
            "psnr_db": float(psnr(images[is_self], real[is_self]).mean()),
            "ssim": float(ssim(images[is_self], real[is_self]).mean()),
            "mask_iou": float(mask_iou(masks[is_self], driver_masks[is_self]).mean()),
            "pose_error_cross": float(pose[is_cross].mean()), "pairs": len(split.pairs)}


def evaluate(predict, split: ReenactmentSplit, batch_size: int = EVAL_BATCH, progress: str | None = None) -> dict:
    return score(*run_pairs(predict, split, batch_size, progress), split)


def source_unchanged_baseline(split: ReenactmentSplit) -> dict:
    """The identity source's first frame, background removed, whatever the driver."""
    v = split.videos
    images = to_chw(np.stack([v.frames[p.source][p.source_frames[0]] for p in split.pairs]))
    masks = np.stack([v.masks[p.source][p.source_frames[0]] for p in split.pairs])[:, None].astype(np.float32)
    return score(images * masks, masks, split)


def mean_face_baseline(train: FaceVideos, split: ReenactmentSplit) -> dict:
    """The training frames' mean foreground image (and mean mask), for every pair."""
    total = np.zeros((3, train.size, train.size)), np.zeros((1, train.size, train.size))
    count = 0
    for frames, masks in zip(train.frames, train.masks):
        m = masks[:, None].astype(np.float64)
        total[0][...] += (to_chw(frames) * m).sum(0)
        total[1][...] += m.sum(0)
        count += len(frames)
    image, mask = (total[0] / count).astype(np.float32), (total[1] / count).astype(np.float32)
    n = len(split.pairs)
    return score(np.repeat(image[None], n, 0), np.repeat(mask[None], n, 0), split)


def part_inputs(parts: list, inputs: list[dict]) -> dict[str, list[dict]]:
    """Each part's inputs from whole-model inputs, the embeddings made by the float parts."""
    import torch

    from edgecap.models.reenactment.model import mean_identity

    identity_encoder = parts[0].module.identity_encoder
    pose_encoder = parts[1].module.pose_encoder  # the second part starts the per-frame path in both layouts
    out: dict[str, list[dict]] = {p.name: [] for p in parts}
    for x in inputs:
        with torch.no_grad():
            identity = mean_identity(identity_encoder, torch.from_numpy(np.ascontiguousarray(x["identity_frames"])))
            identity = identity.numpy()
            pose = pose_encoder(torch.from_numpy(np.ascontiguousarray(x["driver"]))).numpy()
        feeds = {IDENTITY_ENCODER: {"identity_frames": x["identity_frames"]}, POSE_ENCODER: {"driver": x["driver"]},
                 GENERATOR: {"identity": identity, "pose": pose}, PER_FRAME: {"driver": x["driver"], "identity": identity}}
        for name in out:
            out[name].append(feeds[name])
    return out


class StreamingRunner(Runner):
    """The streaming app over part runners of any format: the identity embedding once per avatar
    (recomputed only when the identity frames change), then per driver frame the pose encoder and
    generator (`parts` layout) or the fused per-frame graph (`fused`). As a Runner it takes the
    whole model's inputs, so validation and the bench run it like any artifact; its per-call time
    with a fixed identity is the per-frame cost."""

    def __init__(self, runners: dict, spec: dict):
        self.runners = runners
        self.format = spec["format"]
        self.input_names, self.output_names = list(INPUTS), list(spec["outputs"])
        shape = next(p for p in spec["parts"] if p["name"] == IDENTITY_ENCODER)["output_shapes"]["identity"]
        self.identity_dim = int(shape[-1])
        self._frames: np.ndarray | None = None
        self.identity: np.ndarray | None = None

    def set_identity(self, frames: np.ndarray) -> np.ndarray:
        """frames (1, K, 3, S, S) in [0, 1] -> the avatar's identity embedding (1, D), kept."""
        if self._frames is None or not np.array_equal(frames, self._frames):
            self.identity = self.runners[IDENTITY_ENCODER].run({"identity_frames": frames})["identity"]
            self._frames = np.array(frames, copy=True)
        return self.identity

    def use_identity(self, identity: np.ndarray) -> None:
        """An embedding computed elsewhere (a server, an earlier session, fine-tuning)."""
        identity = np.asarray(identity, np.float32)
        identity = identity.reshape(1, -1) if identity.ndim == 1 else identity
        if identity.shape != (1, self.identity_dim):
            raise EdgecapError(f"identity embedding has shape {tuple(np.shape(identity))}, expected "
                               f"(1, {self.identity_dim}) (model.identity_dim)")
        if not np.isfinite(identity).all():
            raise EdgecapError("identity embedding has NaN or infinite values")
        self.identity, self._frames = np.asarray(identity, np.float32), None

    def step(self, driver: np.ndarray) -> dict[str, np.ndarray]:
        """One driver frame (1, 3, S, S) -> {"image", "mask"} with the kept identity."""
        if self.identity is None:
            raise EdgecapError("no identity yet: call set_identity(frames) or use_identity(embedding) first")
        if PER_FRAME in self.runners:
            return self.runners[PER_FRAME].run({"driver": driver, "identity": self.identity})
        pose = self.runners[POSE_ENCODER].run({"driver": driver})["pose"]
        return self.runners[GENERATOR].run({"identity": self.identity, "pose": pose})

    def run(self, inputs: dict) -> dict:
        rows = []
        for b in range(len(inputs["driver"])):
            self.set_identity(inputs["identity_frames"][b : b + 1])
            rows.append(self.step(inputs["driver"][b : b + 1]))
        return {n: np.concatenate([r[n] for r in rows]) for n in self.output_names}

    def run_many(self, samples: list[dict]) -> list[dict]:
        return [self.run(x) for x in samples]

    def metadata(self) -> dict:
        return self.runners[IDENTITY_ENCODER].metadata()


# -- prediction on files ----------------------------------------------------------------------------

def _frames_array(arrays: dict, name: str, path, size: int) -> np.ndarray:
    if name not in arrays:
        raise EdgecapError(f"{path}: missing array {name!r}; has {sorted(arrays)}")
    a = arrays[name]
    if a.ndim == 3:
        a = a[None]
    if a.ndim != 4 or a.shape[1:] != (size, size, 3) or len(a) == 0:
        raise EdgecapError(f"{path}: {name} has shape {a.shape}, expected (frames, {size}, {size}, 3) RGB "
                           "(model.image_size)")
    if a.dtype != np.uint8:
        raise EdgecapError(f"{path}: {name} has dtype {a.dtype}, expected uint8 RGB 0..255")
    return a


def predict_file(runner: Runner, cfg, input_path, output_path) -> str:
    """A .npz with `identity` (K', S, S, 3) uint8 RGB frames of the avatar's person (repeated in
    turn to model.identity_frames) and `driver` (N, S, S, 3) uint8 RGB driver frames -> a .npz
    with `image` (N, S, S, 3) uint8 and `mask` (N, S, S) uint8, streamed one driver frame at a
    time (a fused or parts artifact computes the identity once; the whole graph and the PyTorch
    model re-encode it per frame); an .mp4 output also gets driver | output side by side."""
    from pathlib import Path

    from edgecap.core.io import atomic_path

    input_path, output_path = Path(input_path), Path(output_path)
    try:
        with np.load(input_path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
    except (OSError, ValueError) as e:
        raise EdgecapError(f"{input_path}: not a readable .npz ({e})") from None
    s = cfg.image_size
    source = _frames_array(arrays, "identity", input_path, s)
    drivers = _frames_array(arrays, "driver", input_path, s)
    frames = k_frames(source, cfg.identity_frames)[None]
    images, masks = [], []
    for d in drivers:
        out = runner.run({"identity_frames": frames, "driver": to_chw(d)[None]})
        images.append(np.moveaxis(out["image"][0], 0, -1))
        masks.append(out["mask"][0, 0])
    image = (np.clip(np.stack(images), 0, 1) * 255 + 0.5).astype(np.uint8)
    mask = (np.stack(masks) > 0.5).astype(np.uint8)
    with atomic_path(output_path) as tmp:
        if output_path.suffix.lower() == ".mp4":
            write_video(tmp, np.concatenate([drivers, image], 2))
        else:
            with open(tmp, "wb") as f:
                np.savez(f, image=image, mask=mask)
    return f"wrote {output_path}: {len(image)} frames at {s} px ({runner.format})"


def write_video(path, frames: np.ndarray, fps: float = 25.0) -> None:
    """(N, H, W, 3) uint8 RGB -> an mp4 (OpenCV's mp4v codec)."""
    import cv2

    h, w = frames.shape[1:3]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    if not writer.isOpened():
        raise EdgecapError(f"{path}: OpenCV cannot write an mp4 here")
    for f in frames:
        writer.write(cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    writer.release()
