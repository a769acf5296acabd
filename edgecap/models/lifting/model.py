"""Temporal 2D->3D keypoint lifting: a shallow residual MLP over a window of 2D keypoints.

Input  `keypoints_2d`: (B, T, J, 3) float32, per joint and frame (x_px, y_px, validity).
Output `joints_3d_mm`: (B, J, 3) float32, root-relative 3D joints of the target frame in
millimetres, in the camera frame (x right, y down, z forward).

Normalization (inside the graph, so every exported artifact maps raw pixels to millimetres):
1. Validity v is clamped to [0, 1]; invalid joints have their (x, y) zeroed.
2. Root per frame t: r_t = sum_j w_j v_tj p_tj / sum_j w_j v_tj, with the skeleton's root
   weights w (H36M: pelvis = 1; COCO: each hip = 0.5). A frame with no valid root joint takes
   the mean root of the window's frames that have one; a window with no valid root at all
   takes the centroid of all its valid joints.
3. Centred coordinates d_tj = (p_tj - r_t) * v_tj.
4. Scale s = sqrt(sum |d_tj|^2 / max(sum v_tj, 1)) over the whole window (RMS distance of
   valid joints to their root, in pixels), clamped below at 1e-3.
5. Features: concat(d_tj / s, v_tj) flattened to T*J*3 values.
Output: the MLP predicts z (J*3); joints_3d_mm = z * pose_std + pose_mean, where pose_mean and
pose_std (mm, per joint coordinate) are statistics of the root-relative training poses stored
as buffers with the weights. The root joint's std is tiny, so its output stays at 0.

Mirroring. model.mirror (on by default): in training each window is mirrored with probability
1/2 (left and right joints swapped, x negated, on the features and back on the prediction: the
same as training on mirrored windows with mirrored targets, as MPJPE is blind to the mirror).
The lifter learns to be left-right symmetric, which transferred 2.5 mm P-MPJPE better to real
motion (docs/lifting.md, "Real motion"). model.mirror_average (off by default): the graph also
lifts the window's mirror image, as a batch of two, and averages the two poses (VideoPose3D's
test-time flip); on real motion a further 0.5-0.7 mm, for two lifts per frame.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_linear_bn_eval

from edgecap import EdgecapError
from edgecap.data.skeletons import get_skeleton


@dataclass(frozen=True)
class LiftingConfig:
    skeleton: str = "h36m"  # "h36m" | "coco"
    window: int = 9  # T, frames per window
    target: str = "last"  # "last": pose of the newest frame (no latency); "centre": middle frame
    hidden: int = 1024
    blocks: int = 2
    dropout: float = 0.1  # 0.25 transferred worse to real motion (docs/lifting.md, "Real motion")
    mirror: bool = True  # each training window mirrored with probability 1/2 (module docstring)
    mirror_average: bool = False  # inference averages the window's lift with its mirror image's

    # A run saved before mirroring existed was trained without it (edgecap.core.config.from_dict).
    BEFORE_FIELD_EXISTED = {"mirror": False}

    def validate(self) -> None:
        get_skeleton(self.skeleton)
        if not 1 <= self.window <= 1024:
            raise EdgecapError(f"model.window must be in [1, 1024], got {self.window}")
        if not 1 <= self.hidden <= 65536 or not 0 <= self.blocks <= 64:
            raise EdgecapError(f"model.hidden must be in [1, 65536] and model.blocks in [0, 64], got {self.hidden} "
                               f"and {self.blocks}")
        if not 0.0 <= self.dropout < 1.0:
            raise EdgecapError(f"model.dropout must be in [0, 1), got {self.dropout}")
        if self.target not in ("last", "centre"):
            raise EdgecapError(f"model.target must be 'last' or 'centre', got {self.target!r}")
        if self.target == "centre" and self.window % 2 == 0:
            raise EdgecapError(f"model.target=centre needs an odd model.window, got {self.window}")


class KeypointNormalizer(nn.Module):
    """Per-window root centring and scale normalization (scheme in the module docstring).

    Written with clamps and multiplications instead of boolean masks or `where`, so it
    exports unchanged to every backend (Core ML rejects bool `&`, see export-probe.md).
    """

    def __init__(self, root_weights: list[float]):
        super().__init__()
        self.register_buffer("root_weights", torch.tensor(root_weights).view(-1, 1))

    def forward(self, keypoints: torch.Tensor) -> torch.Tensor:
        v = keypoints[..., 2:3].clamp(0.0, 1.0)  # (B,T,J,1)
        xy = keypoints[..., 0:2] * v
        w = self.root_weights
        root_num = (xy * w).sum(2)  # (B,T,2)
        root_den = (v * w).sum(2)  # (B,T,1)
        frame_has_root = (root_den * 1e4).clamp(0.0, 1.0)
        frame_root = root_num / root_den.clamp(min=1e-6)
        win_den = frame_has_root.sum(1, keepdim=True)  # (B,1,1)
        win_root = (frame_root * frame_has_root).sum(1, keepdim=True) / win_den.clamp(min=1e-6)
        centroid = xy.sum((1, 2)) / v.sum((1, 2)).clamp(min=1e-6)  # (B,2)
        win_has_root = (win_den * 1e4).clamp(0.0, 1.0)
        win_root = win_has_root * win_root + (1.0 - win_has_root) * centroid.unsqueeze(1)
        root = frame_has_root * frame_root + (1.0 - frame_has_root) * win_root  # (B,T,2)
        d = (xy - root.unsqueeze(2)) * v
        count = v.sum((1, 2, 3)).clamp(min=1.0)
        scale = ((d * d).sum((1, 2, 3)) / count).clamp(min=1e-6).sqrt()
        feats = torch.cat([d / scale.view(-1, 1, 1, 1), v], dim=-1)
        return feats.flatten(1)


class PoseDenormalizer(nn.Module):
    """z (B, J*3) -> millimetres (B, J, 3) with training-set statistics."""

    def __init__(self, num_joints: int):
        super().__init__()
        self.num_joints = num_joints
        self.register_buffer("pose_mean", torch.zeros(num_joints * 3))
        self.register_buffer("pose_std", torch.ones(num_joints * 3))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return (z * self.pose_std + self.pose_mean).view(-1, self.num_joints, 3)


class LinearBlock(nn.Module):
    """Linear -> BatchNorm1d -> ReLU -> Dropout; `fold()` gives the export form."""

    def __init__(self, cin: int, cout: int, dropout: float):
        super().__init__()
        self.linear = nn.Linear(cin, cout)
        self.bn = nn.BatchNorm1d(cout)
        self.act = nn.ReLU()
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.act(self.bn(self.linear(x))))

    def fold(self) -> nn.Sequential:
        return nn.Sequential(fuse_linear_bn_eval(self.linear, self.bn), nn.ReLU())


class ResidualBlock(nn.Module):
    def __init__(self, width: int, dropout: float):
        super().__init__()
        self.layers = nn.Sequential(LinearBlock(width, width, dropout), LinearBlock(width, width, dropout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.layers(x)


class ResidualMLP(nn.Module):
    """The Martinez et al. (2017) style lifter body: stem, residual blocks, linear out."""

    def __init__(self, cin: int, cout: int, hidden: int, blocks: int, dropout: float):
        super().__init__()
        self.stem = LinearBlock(cin, hidden, dropout)
        self.blocks = nn.Sequential(*[ResidualBlock(hidden, dropout) for _ in range(blocks)])
        self.head = nn.Linear(hidden, cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(self.stem(x)))


class Mirror(nn.Module):
    """The left-right mirror image of (..., J, 3) values whose channel 0 is x: left and right
    joints swapped, x negated. Works on features (x, y, validity) and on poses (x, y, z)."""

    def __init__(self, joints: tuple[str, ...]):
        super().__init__()
        twin = {"l_": "r_", "r_": "l_"}
        perm = [joints.index(twin[j[:2]] + j[2:]) if j[:2] in twin else i for i, j in enumerate(joints)]
        # not persistent: fixed by the skeleton, so weights saved before mirroring still load
        self.register_buffer("perm", torch.tensor(perm), persistent=False)
        self.register_buffer("sign", torch.tensor([-1.0, 1.0, 1.0]), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.index_select(-2, self.perm) * self.sign


class MirrorPair(nn.Module):
    """Features (B, T*J*3) -> (2B, T*J*3): each window, then the mirror images of them all."""

    def __init__(self, joints: tuple[str, ...]):
        super().__init__()
        self.num_joints = len(joints)
        self.mirror = Mirror(joints)

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        window = feats.view(feats.shape[0], -1, self.num_joints, 3)
        return torch.cat([feats, self.mirror(window).flatten(1)], 0)


class MirrorMean(nn.Module):
    """Poses (2B, J, 3) lifted from MirrorPair's batch -> (B, J, 3), each pose averaged with the
    mirror of its mirror image's."""

    def __init__(self, joints: tuple[str, ...]):
        super().__init__()
        self.num_joints = len(joints)
        self.mirror = Mirror(joints)

    def forward(self, poses: torch.Tensor) -> torch.Tensor:
        plain, mirrored = poses.view(2, -1, self.num_joints, 3).unbind(0)
        return (plain + self.mirror(mirrored)) * 0.5


class TemporalLifter(nn.Module):
    """keypoints_2d (B,T,J,3) pixels+validity -> joints_3d_mm (B,J,3)."""

    def __init__(self, cfg: LiftingConfig):
        super().__init__()
        cfg.validate()
        skeleton = get_skeleton(cfg.skeleton)
        self.cfg = cfg
        j = skeleton.num_joints
        self.normalize = KeypointNormalizer(skeleton.root_weight_vector())
        self.core = ResidualMLP(cfg.window * j * 3, j * 3, cfg.hidden, cfg.blocks, cfg.dropout)
        self.denormalize = PoseDenormalizer(j)
        self.mirror = Mirror(skeleton.joints) if cfg.mirror else None
        # a window and its mirror image lifted as a batch of two, then averaged (at inference; in
        # training too where model.mirror is off)
        self.mirror_pair = MirrorPair(skeleton.joints) if cfg.mirror_average else None
        self.mirror_mean = MirrorMean(skeleton.joints) if cfg.mirror_average else None

    def forward(self, keypoints_2d: torch.Tensor) -> torch.Tensor:
        feats = self.normalize(keypoints_2d)
        if self.training and self.mirror is not None:  # the same as mirrored samples with mirrored targets
            # shape[0], not len(): len() would fix the batch size of an exported graph
            flip = (torch.rand(feats.shape[0], 1, 1, device=feats.device) < 0.5).to(feats.dtype)
            window = feats.view(feats.shape[0], -1, self.denormalize.num_joints, 3)
            window = flip.unsqueeze(-1) * self.mirror(window) + (1.0 - flip.unsqueeze(-1)) * window
            poses = self.denormalize(self.core(window.flatten(1)))
            return flip * self.mirror(poses) + (1.0 - flip) * poses
        if self.mirror_pair is not None:
            return self.mirror_mean(self.denormalize(self.core(self.mirror_pair(feats))))
        return self.denormalize(self.core(feats))

    @torch.no_grad()
    def set_pose_statistics(self, poses_mm: torch.Tensor) -> None:
        """Store mean/std of root-relative training poses (N, J, 3) for un-normalization."""
        flat = poses_mm.reshape(len(poses_mm), -1).double()
        self.denormalize.pose_mean.copy_(flat.mean(0).float())
        self.denormalize.pose_std.copy_(flat.std(0).clamp(min=1e-3).float())


def fold_for_export(model: TemporalLifter) -> TemporalLifter:
    """An eval-mode copy with every BatchNorm folded into its Linear and dropout removed.

    Folding in eager, before any PT2E quantizer sees the graph, is what the export probe
    recommends (conv/linear-BN fusion inside prepare_pt2e is fragile).
    """
    folded = copy.deepcopy(model).eval()

    def fold_blocks(module: nn.Module) -> None:
        for name, child in module.named_children():
            if isinstance(child, LinearBlock):
                setattr(module, name, child.fold())
            else:
                fold_blocks(child)

    fold_blocks(folded.core)
    folded.mirror = None  # random mirroring is for training; a QAT graph exported in train mode must not hold it
    return folded
