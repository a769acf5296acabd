"""Where lifting data comes from: the built-in synthetic motion or Human3.6M files."""

from __future__ import annotations

from dataclasses import dataclass

from edgecap import EdgecapError
from edgecap.data.windows import PoseWindows


@dataclass(frozen=True)
class MotionDataConfig:
    source: str = "synthetic"  # "synthetic" | "h36m"
    seed: int = 0
    # synthetic
    train_sequences: int = 2000
    val_sequences: int = 40
    frames: int = 100
    fps: float = 50.0
    noise_px: float = 2.0
    drop_prob: float = 0.03
    occlusion_rate: float = 0.5
    # The defaults are the prior that transfers best to real motion (docs/lifting.md, "Real motion"):
    proportions: str = "anthropometric"  # | "fixed" (the rest skeleton +-5%)
    motions: str = "extended"  # | "classic" (walk, reach, turn, crouch, idle; no running, dancing, free motion)
    # real motion mixed into training: this many sequences cut from the real-motion training clips
    # bundled with edgecap (never an evaluation clip), seen by the synthetic cameras. 0: synthetic only
    real_sequences: int = 400
    # h36m (VideoPose3D-style npz files; see README "Human3.6M")
    h36m_3d: str = ""
    h36m_2d: str = ""
    h36m_cameras: str = ""
    train_subjects: tuple[str, ...] = ("S1", "S5", "S6", "S7", "S8")
    val_subjects: tuple[str, ...] = ("S9", "S11")
    frame_stride: int = 1

    # (low, high) of every number; a value outside is refused before any data is made.
    RANGES = {"seed": (0, 2**32 - 1), "train_sequences": (1, 1_000_000), "val_sequences": (1, 1_000_000),
              "frames": (1, 1_000_000), "fps": (1.0, 10_000.0), "noise_px": (0.0, 1_000.0),
              "drop_prob": (0.0, 1.0), "occlusion_rate": (0.0, 1.0), "frame_stride": (1, 10_000),
              "real_sequences": (0, 1_000_000)}

    def validate(self) -> None:
        if self.source not in ("synthetic", "h36m"):
            raise EdgecapError(f"data.source must be 'synthetic' or 'h36m', got {self.source!r}")
        for name, (low, high) in self.RANGES.items():
            value = getattr(self, name)
            if not low <= value <= high:  # NaN fails too
                raise EdgecapError(f"data.{name} must be in [{low}, {high}], got {value!r}")
        if self.motions not in ("classic", "extended"):
            raise EdgecapError(f"data.motions must be 'classic' or 'extended', got {self.motions!r}")
        if self.proportions not in ("fixed", "anthropometric"):
            raise EdgecapError(f"data.proportions must be 'fixed' or 'anthropometric', got {self.proportions!r}")


def _real_training_sequences(cfg: MotionDataConfig, skeleton: str):
    """cfg.real_sequences clips of cfg.frames frames cut at random from the real-motion training
    clips bundled with edgecap (real_motion/bundled.py; resampled to cfg.fps), each filmed by its
    own synthetic camera with the same 2D noise."""
    import numpy as np

    from edgecap.data.real_motion.bundled import load_training_clips
    from edgecap.data.real_motion.clips import resample
    from edgecap.data.synthetic_motion import observe_motion

    clips = [resample(c, cfg.fps) for c in load_training_clips()]
    clips = [c for c in clips if len(c) >= cfg.frames]
    if not clips:
        raise EdgecapError(f"no real-motion training clip has data.frames={cfg.frames} frames at {cfg.fps} fps")
    rng = np.random.default_rng([cfg.seed, 7])
    weights = np.array([len(c) for c in clips], np.float64)
    picks = rng.choice(len(clips), size=cfg.real_sequences, p=weights / weights.sum())
    chunks = []
    for k in picks:
        start = rng.integers(0, len(clips[k]) - cfg.frames + 1)
        chunks.append(clips[k][start : start + cfg.frames])
    world = np.stack(chunks).astype(np.float64)
    return observe_motion(world, world[:, :, 0], skeleton, rng, cfg.fps, cfg.noise_px, cfg.drop_prob,
                          cfg.occlusion_rate)


def load_motion_windows(cfg: MotionDataConfig, skeleton: str, window: int, target: str, split: str) -> PoseWindows:
    """Windows for `split` ("train" | "val")."""
    if split not in ("train", "val"):
        raise EdgecapError(f"unknown split {split!r}; expected 'train' or 'val'")
    cfg.validate()
    if cfg.source == "synthetic":
        from edgecap.data.synthetic_motion import generate_motion

        if split == "train" and cfg.real_sequences and skeleton != "h36m":  # before any data is made
            raise EdgecapError(f"data.real_sequences needs the h36m skeleton, not model.skeleton={skeleton!r}; "
                               "set data.real_sequences=0")

        count = cfg.train_sequences if split == "train" else cfg.val_sequences
        # Different seeds per split so validation motion is never seen in training.
        seqs = generate_motion(
            count, cfg.frames, cfg.fps, skeleton, seed=cfg.seed * 2 + (split == "val"),
            noise_px=cfg.noise_px, drop_prob=cfg.drop_prob, occlusion_rate=cfg.occlusion_rate,
            proportions=cfg.proportions, motions=cfg.motions,
        )
        kps, gts = list(seqs.keypoints_2d), list(seqs.joints_3d_mm)
        if split == "train" and cfg.real_sequences:
            real = _real_training_sequences(cfg, skeleton)
            kps, gts = kps + list(real.keypoints_2d), gts + list(real.joints_3d_mm)
    elif cfg.source == "h36m":
        from edgecap.data.h36m import load_h36m

        if skeleton != "h36m":
            raise EdgecapError(f"data.source=h36m provides the h36m skeleton, not model.skeleton={skeleton!r}")
        subjects = cfg.train_subjects if split == "train" else cfg.val_subjects
        kps, gts = load_h36m(cfg.h36m_3d, cfg.h36m_2d, cfg.h36m_cameras, subjects, cfg.frame_stride)
    else:
        raise EdgecapError(f"unknown data.source {cfg.source!r}; choose 'synthetic' or 'h36m'")
    return PoseWindows.from_sequences(kps, gts, window, target)
