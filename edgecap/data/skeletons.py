"""Skeleton layouts: joint names, the root used for centring, and left/right pairs.

Two 17-joint layouts are supported, chosen by `LiftingConfig.skeleton`:
- `h36m`: the Human3.6M 17-joint order used by most lifting work, root = pelvis.
- `coco`: the COCO keypoint order, root = midpoint of the two hips (COCO has no pelvis).
"""

from __future__ import annotations

from dataclasses import dataclass

from edgecap import EdgecapError


@dataclass(frozen=True)
class Skeleton:
    name: str
    joints: tuple[str, ...]
    # Weights of the joints whose weighted mean is the root (sum to 1).
    root_weights: dict[str, float]
    # (child, parent) pairs drawn as bones.
    bones: tuple[tuple[str, str], ...]

    @property
    def num_joints(self) -> int:
        return len(self.joints)

    def index(self, name: str) -> int:
        return self.joints.index(name)

    def root_weight_vector(self) -> list[float]:
        return [self.root_weights.get(j, 0.0) for j in self.joints]

    def bone_indices(self) -> list[tuple[int, int]]:
        return [(self.index(a), self.index(b)) for a, b in self.bones]


H36M = Skeleton(
    name="h36m",
    joints=(
        "pelvis", "r_hip", "r_knee", "r_ankle", "l_hip", "l_knee", "l_ankle", "spine",
        "thorax", "neck", "head", "l_shoulder", "l_elbow", "l_wrist", "r_shoulder",
        "r_elbow", "r_wrist",
    ),
    root_weights={"pelvis": 1.0},
    bones=(
        ("r_hip", "pelvis"), ("r_knee", "r_hip"), ("r_ankle", "r_knee"),
        ("l_hip", "pelvis"), ("l_knee", "l_hip"), ("l_ankle", "l_knee"),
        ("spine", "pelvis"), ("thorax", "spine"), ("neck", "thorax"), ("head", "neck"),
        ("l_shoulder", "thorax"), ("l_elbow", "l_shoulder"), ("l_wrist", "l_elbow"),
        ("r_shoulder", "thorax"), ("r_elbow", "r_shoulder"), ("r_wrist", "r_elbow"),
    ),
)

COCO = Skeleton(
    name="coco",
    joints=(
        "nose", "l_eye", "r_eye", "l_ear", "r_ear", "l_shoulder", "r_shoulder", "l_elbow",
        "r_elbow", "l_wrist", "r_wrist", "l_hip", "r_hip", "l_knee", "r_knee", "l_ankle",
        "r_ankle",
    ),
    root_weights={"l_hip": 0.5, "r_hip": 0.5},
    bones=(
        ("l_eye", "nose"), ("r_eye", "nose"), ("l_ear", "l_eye"), ("r_ear", "r_eye"),
        ("l_shoulder", "r_shoulder"), ("l_elbow", "l_shoulder"), ("l_wrist", "l_elbow"),
        ("r_elbow", "r_shoulder"), ("r_wrist", "r_elbow"), ("l_hip", "l_shoulder"),
        ("r_hip", "r_shoulder"), ("l_hip", "r_hip"), ("l_knee", "l_hip"),
        ("l_ankle", "l_knee"), ("r_knee", "r_hip"), ("r_ankle", "r_knee"),
    ),
)

SKELETONS = {"h36m": H36M, "coco": COCO}


def get_skeleton(name: str) -> Skeleton:
    if name not in SKELETONS:
        raise EdgecapError(f"unknown skeleton {name!r}; choose one of {sorted(SKELETONS)}")
    return SKELETONS[name]
