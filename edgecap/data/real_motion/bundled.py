"""The real-motion training clips that ship inside edgecap, so the default lifter trains on some
real motion with nothing downloaded (`data.real_sequences`).

`training_clips.npz` beside this file holds the training split of the real-motion set
(everything but `EVAL_CLIPS`): three climbing sequences of holosoma-retargeting 0.1.0
(Apache-2.0) and eight DeepMimic clips of pybullet 3.2.7 (zlib), already mapped to the H36M 17
joints by `clips.py` (altered from the originals: joint positions only, in millimetres, y up).
Their licences are in `TRAINING_CLIPS_LICENCES/`. No evaluation clip is in the file.

It is written from the real-motion cache (`make real-motion`) by

    python -m edgecap.data.real_motion.bundled [--cache DIR] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import sys
import zipfile
from pathlib import Path

import numpy as np

from edgecap import EdgecapError
from edgecap.data.real_motion.clips import RealClip

BUNDLE = Path(__file__).with_name("training_clips.npz")


def load_training_clips(path: Path = BUNDLE) -> list[RealClip]:
    """The bundled training clips, in the order they were written."""
    from edgecap.data.real_motion import EVAL_CLIPS

    try:
        with np.load(path, allow_pickle=False) as f:
            index = json.loads(str(f["index"]))
            clips = [RealClip(c["name"], c["source"], c["motion"], float(c["fps"]), f[f"clip{i}"])
                     for i, c in enumerate(index)]
        bad = [c.name for c in clips if c.joints_mm.ndim != 3 or c.joints_mm.shape[1:] != (17, 3)]
        if bad:
            raise ValueError(f"clips {bad} are not (frames, 17, 3) joints")
    except (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile) as e:
        raise EdgecapError(f"{path}: not a readable bundle of training clips ({e}); reinstall edgecap or "
                           "rewrite it with `python -m edgecap.data.real_motion.bundled`") from None
    leaked = [c.name for c in clips if c.name in EVAL_CLIPS]
    if leaked:  # a bundle from another split would train on what evaluates
        raise EdgecapError(f"{path}: holds evaluation clips {leaked}; training may never see them")
    return clips


def write_bundle(cache: Path | None = None, path: Path = BUNDLE) -> list[RealClip]:
    """The cache's training split into `path` (atomically)."""
    from edgecap.core.io import atomic_path
    from edgecap.data.real_motion import load_clips

    clips = load_clips(cache, "train")
    index = [{"name": c.name, "source": c.source, "motion": c.motion, "fps": c.fps} for c in clips]
    with atomic_path(Path(path)) as tmp, open(tmp, "wb") as f:
        np.savez_compressed(f, index=np.array(json.dumps(index)),
                            **{f"clip{i}": c.joints_mm.astype(np.float32) for i, c in enumerate(clips)})
    return clips


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m edgecap.data.real_motion.bundled", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cache", type=Path, help="the real-motion cache (default: make real-motion's)")
    parser.add_argument("--out", type=Path, default=BUNDLE)
    a = parser.parse_args(argv)
    try:
        clips = write_bundle(a.cache, a.out)
    except EdgecapError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    frames = sum(len(c.joints_mm) for c in clips)
    print(f"wrote {a.out}: {len(clips)} clips, {frames} frames ({a.out.stat().st_size / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
