"""Videos of face crops for head reenactment: the built-in synthetic talking heads, or a
VoxCeleb-style folder of frames.

Folder layout (one folder per identity, one per video, frames in name order):

    root/<identity>/<video>/<frame>.jpg|.png     RGB face crops, all model.image_size square
    root/<identity>/<video>/landmarks.npy        optional: (frames, L, 2|3) x px, y px[, visible]
    root/<identity>/<video>/masks/<frame>.png    optional: foreground masks (nonzero = person)

Without masks the whole frame counts as foreground (the losses then cover the background too).
Every frame is decoded when the folder is read, so a corrupt or truncated file, or a frame of
another size, is reported by name before training starts. A video folder named `masks` would be
taken for a mask folder, so none may have that name.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgecap import EdgecapError
from edgecap.core.images import read_image

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


@dataclass
class FaceVideos:
    """frames[v] (F_v, S, S, 3) uint8 RGB; masks[v] (F_v, S, S) uint8 {0,1}; landmarks[v]
    (F_v, L, 3) float32 (x, y, visible) or None; person[v] the identity index; names[v]
    "<identity>/<video>"; identities the identity names."""

    frames: list[np.ndarray]
    masks: list[np.ndarray]
    landmarks: list[np.ndarray | None]
    person: np.ndarray
    names: list[str]
    identities: list[str]
    identity_params: np.ndarray | None = None  # (V, P) the renderer's identity parameters (synthetic only)

    @property
    def size(self) -> int:
        return self.frames[0].shape[1]

    def __len__(self) -> int:
        return len(self.frames)


def from_talking_heads(heads) -> FaceVideos:
    """The synthetic talking heads (edgecap.data.talking_heads.TalkingHeads) as FaceVideos."""
    names = [f"person{p:05d}/video{k:05d}" for k, p in enumerate(heads.person)]
    return FaceVideos(frames=list(heads.images), masks=list(heads.masks), landmarks=list(heads.landmarks),
                      person=np.asarray(heads.person), names=names,
                      identities=[f"person{p:05d}" for p in sorted(set(heads.person.tolist()))],
                      identity_params=np.asarray(heads.identity, np.float32))


def read_face(path: Path, size: int) -> np.ndarray:
    """(size, size, 3) uint8 RGB."""
    rgb = read_image(path)
    if rgb.shape[:2] != (size, size):
        raise EdgecapError(f"{path}: {rgb.shape[1]}x{rgb.shape[0]} px, expected {size}x{size} (model.image_size); "
                           "crop and resize the faces to that size first")
    return rgb


def _read_mask(path: Path, size: int) -> np.ndarray:
    mask = read_image(path, "L")
    if mask.shape != (size, size):
        raise EdgecapError(f"{path}: mask is {mask.shape[1]}x{mask.shape[0]} px, expected {size}x{size}")
    return (mask > 0).astype(np.uint8)


def _read_landmarks(path: Path, frames: int) -> np.ndarray:
    try:
        arr = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise EdgecapError(f"{path}: not a readable .npy file: {e}") from None
    if arr.ndim != 3 or arr.shape[0] != frames or arr.shape[2] not in (2, 3) or not np.isfinite(arr).all():
        raise EdgecapError(f"{path}: landmarks must be finite (frames={frames}, L, 2|3), got shape {arr.shape}")
    if arr.shape[2] == 2:
        arr = np.concatenate([arr, np.ones(arr.shape[:2] + (1,))], -1)
    return arr.astype(np.float32)


def load_face_folder(root: Path, size: int, min_frames: int = 2, progress: bool = False) -> FaceVideos:
    """Every video of every identity under `root` (layout in the module docstring)."""
    root = Path(root)
    if not root.is_dir():
        raise EdgecapError(f"{root}: no such folder of identities (expected root/<identity>/<video>/<frame>.jpg)")
    identities = sorted(p for p in root.iterdir() if p.is_dir())
    if not identities:
        raise EdgecapError(f"{root}: no identity folders (expected root/<identity>/<video>/<frame>.jpg)")
    frames, masks, landmarks, person, names = [], [], [], [], []
    videos = [(i, ident, video) for i, ident in enumerate(identities)
              for video in sorted(p for p in ident.iterdir() if p.is_dir() and p.name != "masks")]
    for ident in identities:
        if not any(f.suffix.lower() in IMAGE_SUFFIXES for _, who, v in videos if who == ident for f in v.iterdir()):
            raise EdgecapError(f"{ident}: identity folder with no images ({'/'.join(IMAGE_SUFFIXES)}) in any video "
                               "folder (expected <identity>/<video>/<frame>.jpg)")
    if progress:
        from edgecap.core.console import progress as progress_bar

        videos = progress_bar(videos, desc="read faces", leave=False)
    for i, ident, video in videos:
        files = sorted(f for f in video.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            continue  # an empty video folder beside others; the identity check above has images
        if len(files) < min_frames:
            raise EdgecapError(f"{video}: {len(files)} frame(s); a video needs at least {min_frames} (identity "
                               "frames and a held-out driver frame come from the same video)")
        frames.append(np.stack([read_face(f, size) for f in files]))
        mask_dir = video / "masks"
        if mask_dir.is_dir():
            missing = [f.stem for f in files if not (mask_dir / (f.stem + ".png")).exists()]
            if missing:
                raise EdgecapError(f"{mask_dir}: no mask for frame(s) {', '.join(missing[:3])}; masks are "
                                   "<frame>.png, one per frame")
            masks.append(np.stack([_read_mask(mask_dir / (f.stem + ".png"), size) for f in files]))
        else:
            masks.append(np.ones((len(files), size, size), np.uint8))
        lm = video / "landmarks.npy"
        landmarks.append(_read_landmarks(lm, len(files)) if lm.exists() else None)
        person.append(i)
        names.append(f"{ident.name}/{video.name}")
    return FaceVideos(frames=frames, masks=masks, landmarks=landmarks, person=np.asarray(person),
                      names=names, identities=[p.name for p in identities])


@dataclass(frozen=True)
class FaceDataConfig:
    """Where reenactment videos come from: the built-in synthetic talking heads (different people
    in the train and val splits), or a folder (`root`, layout above) whose last `val_identities`
    identities, in name order, are held out for validation."""

    source: str = "synthetic"  # "synthetic" | "folder"
    seed: int = 0
    identities: int = 400  # synthetic: training people
    videos_per_identity: int = 2
    frames: int = 24
    # frames per second of the synthetic videos: 24 frames at 3 fps span 8 s of talking and turning,
    # as a training sample's frames come from a whole clip, not from one second of it
    fps: float = 3.0
    val_identities: int = 16  # synthetic: validation people; folder: identities held out
    root: str = ""
    judge_steps: int = 1500  # training steps of the synthetic data's metric networks (cached per config)

    RANGES = {"seed": (0, 2**32 - 1), "identities": (2, 100_000), "videos_per_identity": (1, 1000),
              "frames": (2, 10_000), "val_identities": (2, 100_000), "judge_steps": (1, 1_000_000),
              "fps": (0.1, 1000.0)}

    def validate(self) -> None:
        if self.source not in ("synthetic", "folder"):
            raise EdgecapError(f"data.source must be 'synthetic' or 'folder', got {self.source!r}")
        for name, (low, high) in self.RANGES.items():
            if not low <= getattr(self, name) <= high:
                raise EdgecapError(f"data.{name} must be in [{low}, {high}], got {getattr(self, name)!r}")
        if self.source == "folder" and not self.root:
            raise EdgecapError("data.source=folder needs data.root=DIR (root/<identity>/<video>/<frame>.jpg)")


def load_face_videos(cfg: FaceDataConfig, size: int, split: str) -> FaceVideos:
    """The "train" or "val" videos of a data config at `size` px."""
    cfg.validate()
    if split not in ("train", "val"):
        raise EdgecapError(f"unknown split {split!r}; expected 'train' or 'val'")
    if cfg.source == "folder":
        return _folder_split(cfg.root, size, split, cfg.val_identities)
    return _synthetic_split(cfg, size, split)


@functools.lru_cache(maxsize=2)  # the stages of one pipeline process render each split once
def _synthetic_split(cfg: FaceDataConfig, size: int, split: str) -> FaceVideos:
    from edgecap.data.talking_heads import generate_talking_heads

    people = cfg.identities if split == "train" else cfg.val_identities
    seed = [cfg.seed, 0 if split == "train" else 1]  # other people in each split
    return from_talking_heads(generate_talking_heads(people, cfg.videos_per_identity, cfg.frames, size,
                                                     int(np.random.SeedSequence(seed).generate_state(1)[0]),
                                                     cfg.fps))


def _folder_split(root: str, size: int, split: str, held_out: int) -> FaceVideos:
    videos = load_face_folder(Path(root), size, progress=True)
    if len(videos.identities) <= held_out:
        raise EdgecapError(f"{root}: {len(videos.identities)} identities; data.val_identities={held_out} are held "
                           "out for validation, so at least one more is needed for training")
    first_val = len(videos.identities) - held_out
    keep = [i for i, p in enumerate(videos.person) if (p >= first_val) == (split == "val")]
    return FaceVideos(frames=[videos.frames[i] for i in keep], masks=[videos.masks[i] for i in keep],
                      landmarks=[videos.landmarks[i] for i in keep], person=videos.person[keep],
                      names=[videos.names[i] for i in keep], identities=videos.identities)
