"""Latent-pose head reenactment (Burkov et al., CVPR 2020, "Neural Head Reenactment with Latent
Pose Descriptors").

    identity_encoder(K frames of a person) -> mean identity embedding   once per avatar
    pose_encoder(driver frame)             -> pose embedding            every frame
    generator(identity, pose)              -> rgb, mask; image = rgb x mask

The generator has no spatial input: a learned 4x4 tensor is upsampled to the image size by
residual blocks whose AdaIN scales and shifts all come from one MLP on [identity, pose]. The
pose encoder is kept much smaller than the identity encoder (one of the paper's three
disentangling choices; the other two, identity-changing augmentation of the pose encoder's input
and losses on the masked image, live in app.py).

Images are float32 (N, 3, S, S) in [0, 1], RGB. Every op here exports to ONNX, LiteRT,
ExecuTorch and Core ML: AdaIN is written with mean/var reductions (no instance-norm op with
external affine parameters), and upsampling is nearest-neighbour by a fixed factor.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from torch import nn
from torch.nn import functional as F

from edgecap import EdgecapError
from edgecap.models.backbones.common import ConvBNAct, mbconv_blocks
from edgecap.models.backbones.mobilenet import mobilenet_v2
from edgecap.models.backbones.resnet import resnext50_32x4d


@dataclass(frozen=True)
class ReenactmentConfig:
    name: str = "mobile"  # "mobile" | "paper": which encoders (see PRESETS)
    image_size: int = 64
    identity_dim: int = 128
    pose_dim: int = 64
    identity_width: int = 32  # mobile identity encoder: channels of its first stage (doubling per stage)
    pose_width: int = 8  # mobile pose encoder: channels of its first stage
    generator_width: int = 256  # generator channels at its start (halved per upsampling, at least 16)
    generator_start: int = 8  # side of the generator's starting tensor (a power of two below image_size)
    # "constant": a learned tensor, all conditioning through AdaIN (the paper's); "projected": plus a
    # linear projection of [identity, pose] to that tensor, so the layout can move with the pose
    # from the first layer (learns far faster on a CPU budget)
    generator_input: str = "projected"
    mlp_hidden: int = 256  # the AdaIN-parameter MLP
    # "small": the MobileNetV2-like pose encoder; "as_identity": the identity encoder's architecture
    # (the disentanglement ablation: a pose encoder as large as the identity encoder)
    pose_encoder: str = "small"
    identity_frames: int = 8  # K frames averaged into the identity (training and the exported graph)
    # Training (losses.py): identity-changing augmentation of the pose encoder's input (0 = off,
    # the other ablation), and the loss weights.
    pose_augmentation: float = 1.0
    ssim_weight: float = 1.0
    dice_weight: float = 1.0
    adversarial_weight: float = 0.01
    feature_matching_weight: float = 0.1
    discriminator_width: int = 32
    # Optional perceptual loss: VGG-19 weights as a safetensors file (torchvision's key names).
    vgg_weights: str = ""
    perceptual_weight: float = 0.1

    def validate(self) -> None:
        if self.name not in ("mobile", "paper"):
            raise EdgecapError(f"model.name must be 'mobile' or 'paper', got {self.name!r}")
        if self.generator_input not in ("constant", "projected"):
            raise EdgecapError(f"model.generator_input must be 'constant' or 'projected', got {self.generator_input!r}")
        if self.pose_encoder not in ("small", "as_identity"):
            raise EdgecapError(f"model.pose_encoder must be 'small' or 'as_identity', got {self.pose_encoder!r}")
        if self.image_size < 16 or self.image_size & (self.image_size - 1):
            raise EdgecapError(f"model.image_size must be a power of two >= 16, got {self.image_size}")
        if not 2 <= self.generator_start < self.image_size or self.generator_start & (self.generator_start - 1):
            raise EdgecapError(f"model.generator_start must be a power of two in [2, image_size), got "
                               f"{self.generator_start}")
        for field in ("identity_dim", "pose_dim", "identity_width", "pose_width", "generator_width", "mlp_hidden",
                      "discriminator_width"):
            if not 1 <= getattr(self, field) <= 8192:
                raise EdgecapError(f"model.{field} must be in [1, 8192], got {getattr(self, field)}")
        if not 1 <= self.identity_frames <= 64:
            raise EdgecapError(f"model.identity_frames must be in [1, 64], got {self.identity_frames}")
        for field in ("pose_augmentation", "ssim_weight", "dice_weight", "adversarial_weight",
                      "feature_matching_weight", "perceptual_weight"):
            if not 0 <= getattr(self, field) <= 100:  # NaN fails too
                raise EdgecapError(f"model.{field} must be in [0, 100], got {getattr(self, field)}")


PRESETS = {
    "mobile": ReenactmentConfig(),
    # The reference code's sizes: 256 px, 512-d identity (ResNeXt-50), 256-d pose (MobileNetV2).
    "paper": ReenactmentConfig(name="paper", image_size=256, identity_dim=512, pose_dim=256, generator_width=512,
                               generator_start=4, generator_input="constant", mlp_hidden=768),
}

# ImageNet statistics normalise the encoders' inputs inside the graph (the app feeds [0, 1]).
_MEAN, _STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


class Normalize(nn.Module):
    def __init__(self):
        super().__init__()
        self.register_buffer("mean", torch.tensor(_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(_STD).view(1, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


class Encoder(nn.Module):
    """image (N, 3, S, S) in [0, 1] -> embedding (N, dim): a CNN, global average pool, linear."""

    def __init__(self, body: nn.Module, channels: int, dim: int):
        super().__init__()
        self.normalize, self.body = Normalize(), body
        self.fc = nn.Linear(channels, dim)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        feats = self.body(self.normalize(image))
        feats = feats[-1] if isinstance(feats, list) else feats
        return self.fc(feats.mean((2, 3)))


def _mobile_pose_body(width: int) -> tuple[nn.Module, int]:
    """A MobileNetV2-like stack at `width` channels: inverted residuals, expansion 4, stride 32."""
    w = width
    rows = [(3, 1, w, 1, 1, 0), (3, 4, 2 * w, 2, 2, 0), (3, 4, 3 * w, 2, 2, 0), (3, 4, 4 * w, 2, 2, 0),
            (3, 4, 6 * w, 1, 2, 0)]
    return nn.Sequential(ConvBNAct(3, w, 3, 2, act=nn.ReLU6), *mbconv_blocks(w, rows, nn.ReLU6)), 6 * w


def _mobile_identity_body(width: int) -> tuple[nn.Module, int]:
    """A small ResNet: two 3x3 residual convs per stage, stride 32, channels width..8 x width."""
    layers: list[nn.Module] = [ConvBNAct(3, width, 3, 2)]
    cin = width
    for mult in (1, 2, 4, 8):
        cout = width * mult
        layers += [ResidualBlock(cin, cout, 2), ResidualBlock(cout, cout, 1)]
        cin = cout
    return nn.Sequential(*layers), cin


class ResidualBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.block = nn.Sequential(ConvBNAct(cin, cout, 3, stride), ConvBNAct(cout, cout, 3, act=None))
        self.shortcut = ConvBNAct(cin, cout, 1, stride, act=None) if stride != 1 or cin != cout else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.block(x) + self.shortcut(x))


def build_pose_encoder(cfg: ReenactmentConfig) -> Encoder:
    if cfg.pose_encoder == "as_identity":
        return build_identity_encoder(replace(cfg, identity_dim=cfg.pose_dim))
    if cfg.name == "paper":
        return Encoder(mobilenet_v2(), 320, cfg.pose_dim)
    body, channels = _mobile_pose_body(cfg.pose_width)
    return Encoder(body, channels, cfg.pose_dim)


def build_identity_encoder(cfg: ReenactmentConfig) -> Encoder:
    if cfg.name == "paper":
        return Encoder(resnext50_32x4d(), 2048, cfg.identity_dim)
    body, channels = _mobile_identity_body(cfg.identity_width)
    return Encoder(body, channels, cfg.identity_dim)


class AdaIN(nn.Module):
    """Instance-normalise x and apply per-sample (scale, shift): x_hat * (1 + scale) + shift.
    Mean and variance are plain reductions, so every backend exports it."""

    def forward(self, x: torch.Tensor, scale: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
        mean = x.mean((2, 3), keepdim=True)
        var = ((x - mean) ** 2).mean((2, 3), keepdim=True)
        x = (x - mean) / torch.sqrt(var + 1e-5)
        return x * (1 + scale[:, :, None, None]) + shift[:, :, None, None]


class UpBlock(nn.Module):
    """x2 nearest upsampling; AdaIN-ReLU-conv twice, plus a 1x1 shortcut."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.norm1, self.conv1 = AdaIN(), nn.Conv2d(cin, cout, 3, padding=1)
        self.norm2, self.conv2 = AdaIN(), nn.Conv2d(cout, cout, 3, padding=1)
        self.shortcut = nn.Conv2d(cin, cout, 1)
        self.styles = 2 * cin + 2 * cout  # AdaIN parameters it takes

    def forward(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        cin = x.shape[1]
        s1, b1, s2, b2 = torch.split(style, [cin, cin, self.conv1.out_channels, self.conv1.out_channels], 1)
        x = F.interpolate(x, scale_factor=2.0, mode="nearest")
        h = self.conv1(F.relu(self.norm1(x, s1, b1)))
        h = self.conv2(F.relu(self.norm2(h, s2, b2)))
        return h + self.shortcut(x)


class Generator(nn.Module):
    """(identity (N, D_id), pose (N, D_pose)) -> (rgb (N, 3, S, S) in [0, 1], mask (N, 1, S, S) in [0, 1])."""

    def __init__(self, cfg: ReenactmentConfig):
        super().__init__()
        ups = (cfg.image_size // cfg.generator_start).bit_length() - 1
        widths = [max(16, cfg.generator_width >> i) for i in range(ups + 1)]
        self.start = nn.Parameter(torch.randn(1, widths[0], cfg.generator_start, cfg.generator_start))
        side = cfg.generator_start
        self.project = (nn.Linear(cfg.identity_dim + cfg.pose_dim, widths[0] * side * side)
                        if cfg.generator_input == "projected" else None)
        self.blocks = nn.ModuleList(UpBlock(widths[i], widths[i + 1]) for i in range(ups))
        self.splits = [b.styles for b in self.blocks]
        self.mlp = nn.Sequential(nn.Linear(cfg.identity_dim + cfg.pose_dim, cfg.mlp_hidden), nn.ReLU(),
                                 nn.Linear(cfg.mlp_hidden, cfg.mlp_hidden), nn.ReLU(),
                                 nn.Linear(cfg.mlp_hidden, sum(self.splits)))
        nn.init.zeros_(self.mlp[-1].weight)  # start as plain instance norm: scale 1, shift 0
        nn.init.zeros_(self.mlp[-1].bias)
        self.to_rgb = nn.Sequential(nn.ReLU(), nn.Conv2d(widths[-1], 4, 3, padding=1))

    def forward(self, identity: torch.Tensor, pose: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        code = torch.cat([identity, pose], 1)
        return self.decode(torch.split(self.mlp(code), self.splits, 1), code)

    def decode(self, styles: tuple[torch.Tensor, ...], code: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Each block's AdaIN parameters (and the code [identity, pose], when projected) -> (rgb, mask)."""
        x = self.start.expand(code.shape[0], -1, -1, -1)
        if self.project is not None:
            x = x + self.project(code).view(x.shape)
        for block, style in zip(self.blocks, styles):
            x = block(x, style)
        out = self.to_rgb(x)
        return torch.sigmoid(out[:, :3]), torch.sigmoid(out[:, 3:])


class Compose(nn.Module):
    """image = rgb x mask. Its own module so that int8 paths can keep it float: an int8 product of
    two [0, 1] images would put quantization steps into every output pixel."""

    def forward(self, rgb: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return rgb * mask


class Reenactment(nn.Module):
    """The three networks. forward(driver, identity) is the per-frame graph: the identity
    embedding is an input (computed once per avatar by `identity_encoder`)."""

    def __init__(self, cfg: ReenactmentConfig):
        super().__init__()
        cfg.validate()
        self.cfg = cfg
        self.identity_encoder = build_identity_encoder(cfg)
        self.pose_encoder = build_pose_encoder(cfg)
        self.generator = Generator(cfg)
        self.compose = Compose()

    def embed_identity(self, frames: torch.Tensor) -> torch.Tensor:
        """frames (N, K, 3, S, S) -> (N, D_id), the mean over the K frames."""
        return mean_identity(self.identity_encoder, frames)

    def forward(self, driver: torch.Tensor, identity: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """driver (N, 3, S, S), identity (N, D_id) -> (image = rgb x mask, mask)."""
        return self.render(identity, self.pose_encoder(driver))

    def render(self, identity: torch.Tensor, pose: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(identity, pose embeddings) -> (image = rgb x mask, mask)."""
        rgb, mask = self.generator(identity, pose)
        return self.compose(rgb, mask), mask


class Discriminator(nn.Module):
    """A patch discriminator (pix2pix's PatchGAN): a logit per overlapping patch, and its
    intermediate features for the feature-matching loss."""

    def __init__(self, width: int = 32, layers: int = 3):
        super().__init__()
        blocks, cin = [], 3
        for i in range(layers):
            cout = width * 2**i
            blocks.append(nn.Sequential(nn.Conv2d(cin, cout, 4, 2, 1),
                                        nn.InstanceNorm2d(cout) if i else nn.Identity(), nn.LeakyReLU(0.2)))
            cin = cout
        self.blocks = nn.ModuleList(blocks)
        self.logits = nn.Conv2d(cin, 1, 3, padding=1)

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        feats, x = [], image * 2 - 1
        for block in self.blocks:
            x = block(x)
            feats.append(x)
        return self.logits(x), feats


# -- the deployable graphs (edgecap.models.reenactment.family's layouts) ---------------------------
# Each holds only the networks it runs, under the same names as Reenactment's, so a float-module
# path ("compose") means the same module in every part that has it.

class WholeModel(nn.Module):
    """(identity_frames (N, K, 3, S, S), driver (N, 3, S, S)) -> (image, mask): the identity encoder
    on every call. The reference every layout is checked against; apps use the parts."""

    def __init__(self, net: Reenactment):
        super().__init__()
        self.cfg = net.cfg
        self.identity_encoder, self.pose_encoder = net.identity_encoder, net.pose_encoder
        self.generator, self.compose = net.generator, net.compose

    def forward(self, identity_frames: torch.Tensor, driver: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        rgb, mask = self.generator(mean_identity(self.identity_encoder, identity_frames), self.pose_encoder(driver))
        return self.compose(rgb, mask), mask


def mean_identity(encoder: nn.Module, frames: torch.Tensor) -> torch.Tensor:
    """frames (N, K, 3, S, S) -> (N, D_id), the encoder's embeddings averaged over the K frames."""
    n, k = frames.shape[:2]
    return encoder(frames.flatten(0, 1)).view(n, k, -1).mean(1)


class IdentityEncoderPart(nn.Module):
    """identity_frames (1, K, 3, S, S) -> identity (1, D_id): once per avatar."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.identity_encoder = net.identity_encoder

    def forward(self, identity_frames: torch.Tensor) -> torch.Tensor:
        return mean_identity(self.identity_encoder, identity_frames)


class PoseEncoderPart(nn.Module):
    """driver (1, 3, S, S) -> pose (1, D_pose): per frame, on the capturing device."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.pose_encoder = net.pose_encoder

    def forward(self, driver: torch.Tensor) -> torch.Tensor:
        return self.pose_encoder(driver)


class GeneratorPart(nn.Module):
    """(identity, pose) -> (image, mask): per frame, on the rendering device."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.generator, self.compose = net.generator, net.compose

    def forward(self, identity: torch.Tensor, pose: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        rgb, mask = self.generator(identity, pose)
        return self.compose(rgb, mask), mask


class PerFramePart(nn.Module):
    """(driver, identity) -> (image, mask): pose encoder and generator fused into one graph."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.pose_encoder, self.generator, self.compose = net.pose_encoder, net.generator, net.compose

    def forward(self, driver: torch.Tensor, identity: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        rgb, mask = self.generator(identity, self.pose_encoder(driver))
        return self.compose(rgb, mask), mask


class AvatarPart(nn.Module):
    """driver -> (image, mask) for one avatar: its identity embedding folded into the graph. The
    AdaIN MLP's first layer sees [identity, pose]; with the identity fixed, its identity half is a
    constant added to the bias, so the folded layer takes the pose alone (a per-avatar artifact)."""

    def __init__(self, net: nn.Module, identity: torch.Tensor):
        super().__init__()
        import copy

        self.pose_encoder, self.compose = net.pose_encoder, net.compose
        self.generator = copy.deepcopy(net.generator)
        first = self.generator.mlp[0]
        d_id = identity.shape[-1]
        folded = nn.Linear(first.in_features - d_id, first.out_features)
        with torch.no_grad():
            folded.weight.copy_(first.weight[:, d_id:])
            folded.bias.copy_(first.bias + first.weight[:, :d_id] @ identity.reshape(-1))
        self.generator.mlp[0] = folded
        if self.generator.project is not None:  # the same fold for the projection to the first tensor
            project = self.generator.project
            small = nn.Linear(project.in_features - d_id, project.out_features)
            with torch.no_grad():
                small.weight.copy_(project.weight[:, d_id:])
                small.bias.copy_(project.bias + project.weight[:, :d_id] @ identity.reshape(-1))
            self.generator.project = small

    def forward(self, driver: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        pose = self.pose_encoder(driver)
        rgb, mask = self.generator.decode(torch.split(self.generator.mlp(pose), self.generator.splits, 1), pose)
        return self.compose(rgb, mask), mask


def fold_for_export(net: Reenactment) -> Reenactment:
    """An eval-mode copy with every BatchNorm folded into its convolution."""
    from edgecap.models.fold import folded_copy

    return folded_copy(net, "reenactment")
