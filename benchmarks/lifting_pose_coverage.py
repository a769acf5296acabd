"""Which real poses the lifter's training data never shows: for every frame of the held-out real
clips, the distance from each limb's pose to the nearest pose of that limb in the training data.

    python benchmarks/lifting_pose_coverage.py [--sequences 400] [--out FILE.json]

(--out defaults to docs/results/benchmarks/lifting_pose_coverage.json.)

A limb's pose is the unit directions of its two bones (upper arm and forearm, or thigh and shin)
in the torso's frame (outward, up, forward), 6 numbers, so a left limb reads like its mirrored
right twin and each frame gives two arms and two legs
(`edgecap.models.lifting.real_motion.limb_poses`). The distance to the nearest training limb is 0 for a pose
the data holds and up to about 2.8 for one pointing the other way; a frame past 0.3 (a bone about
17 degrees from anything seen) counts as not covered. Training data: the synthetic motion mixes
(classic and extended, anthropometric bodies, every 2nd frame of --sequences sequences) and
the real training clips bundled with edgecap. Needs the real-motion cache (`make real-motion`).
This is how the shoulder-twist range of the synthetic data was found too narrow (docs/lifting.md).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

from edgecap import EdgecapError
from edgecap.core.io import write_json
from edgecap.models.lifting.real_motion import LIMBS, limb_poses

FAR = 0.3


def nearest(query: np.ndarray, pool: np.ndarray, chunk: int = 4096) -> np.ndarray:
    pool_t = torch.from_numpy(pool).float()
    return np.concatenate([torch.cdist(torch.from_numpy(query[i : i + chunk]).float(), pool_t).min(1).values.numpy()
                           for i in range(0, len(query), chunk)])


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sequences", type=int, default=400, help="synthetic sequences per motion mix")
    p.add_argument("--out", type=Path, default=Path("docs/results/benchmarks/lifting_pose_coverage.json"))
    a = p.parse_args()
    from edgecap.data.real_motion import load_clips
    from edgecap.data.real_motion.bundled import load_training_clips
    from edgecap.data.synthetic_motion import generate_motion

    try:
        clips = load_clips(None, "eval")
        bundled = np.concatenate([c.joints_mm for c in load_training_clips()]).astype(np.float64)
    except EdgecapError as e:
        print(f"lifting_pose_coverage: error: {e}", file=sys.stderr)
        return 2
    pools = {}
    for motions in ("classic", "extended"):
        seqs = generate_motion(a.sequences, 100, seed=3, proportions="anthropometric", motions=motions,
                               noise_px=0.0, drop_prob=0.0, occlusion_rate=0.0)
        pools[motions] = seqs.joints_3d_mm[:, ::2].reshape(-1, 17, 3).astype(np.float64)
    pools["extended+real"] = np.concatenate([pools["extended"], bundled])  # the default training data
    rows = {}
    for clip in clips:
        poses = clip.joints_mm[::2].astype(np.float64)
        for limb in LIMBS:
            query = limb_poses(poses, limb)
            for pool_name, pool in pools.items():
                d = nearest(query, limb_poses(pool, limb))
                rows.setdefault(clip.name, {}).setdefault(limb, {})[pool_name] = {
                    "median": float(np.median(d)), "p90": float(np.quantile(d, 0.9)),
                    "not_covered": float((d > FAR).mean())}
    names = list(pools)
    print(f"share of real limb poses farther than {FAR} from any training pose (median distance); training "
          "data: synthetic classic, synthetic extended, synthetic extended + the bundled real clips")
    print(f"{'clip':<26} {'limb':<5} " + " ".join(f"{n:>15}" for n in names))
    for clip, limbs in rows.items():
        for limb, by_pool in limbs.items():
            print(f"{clip:<26} {limb:<5} " + " ".join(
                f"{by_pool[n]['not_covered']:>8.0%} ({by_pool[n]['median']:.2f})" for n in names))
    write_json(a.out, {"command": "python benchmarks/lifting_pose_coverage.py" + (
        f" --sequences {a.sequences}" if a.sequences != 400 else ""), "date": time.strftime("%Y-%m-%d"),
        "far": FAR, "sequences_per_mix": a.sequences, "clips": rows})
    print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
