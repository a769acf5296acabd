"""Training losses and the pose encoder's input augmentation (Burkov et al. 2020, section 3).

- Reconstruction on the masked image: L1 and multi-scale SSIM (pytorch-msssim) between the
  output (rgb x predicted mask) and the target frame with its background removed.
- Dice between the predicted and the true foreground mask.
- Adversarial: a hinge loss with a patch discriminator, plus feature matching (L1 between the
  discriminator's features of the real and the generated image), trained from scratch.
- Optional perceptual loss: L1 between VGG-19 features, when the user supplies the weights as a
  safetensors file (nothing can be downloaded here).

`augment_for_pose` changes what identity shows in a frame but keeps the pose: colour (gains,
per-channel offsets, contrast), a little scale and shift, noise. The pose encoder sees only
augmented frames, so colour and framing cannot carry identity into the pose vector.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F


def augment_for_pose(images: torch.Tensor, generator: torch.Generator, strength: float = 1.0) -> torch.Tensor:
    """images (N, 3, S, S) in [0, 1] -> the same poses with other colours, scale and framing."""
    n = images.shape[0]

    def uniform(low: float, high: float, *shape: int) -> torch.Tensor:  # drawn on the generator's device
        return (low + (high - low) * torch.rand(n, *shape, generator=generator)).to(images.device)

    gains = 1 + strength * uniform(-0.35, 0.35, 3, 1, 1)  # per channel
    offsets = strength * uniform(-0.15, 0.15, 3, 1, 1)
    contrast = 1 + strength * uniform(-0.3, 0.3, 1, 1, 1)
    mean = images.mean((1, 2, 3), keepdim=True)
    out = ((images - mean) * contrast + mean) * gains + offsets
    scale = 1 + strength * uniform(-0.03, 0.03)  # small: the output must put features where the driver has them
    shift = strength * uniform(-0.02, 0.02, 2)  # of the half-width: +-0.6 px at 64 px
    theta = torch.zeros(n, 2, 3, device=images.device)
    theta[:, 0, 0] = theta[:, 1, 1] = 1 / scale
    theta[:, :, 2] = shift
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    out = F.grid_sample(out, grid, mode="bilinear", padding_mode="border", align_corners=False)
    out = out + strength * 0.02 * torch.randn(out.shape, generator=generator).to(images.device)
    return out.clamp(0, 1)


def masked_reconstruction(image: torch.Tensor, target: torch.Tensor, target_mask: torch.Tensor,
                          ssim_weight: float = 1.0) -> torch.Tensor:
    """L1 + (1 - MS-SSIM) between the output (already rgb x predicted mask) and target x mask.
    At 32 px and below no SSIM window fits the coarsest scale and the loss is the L1 alone."""
    from pytorch_msssim import ms_ssim

    real = target * target_mask
    l1 = (image - real).abs().mean()
    # pytorch-msssim downsamples 4 times and needs the window to fit the smallest scale:
    # the largest odd window up to its default 11 with (window - 1) * 16 < size (3 at 64 px)
    window = min(11, (min(image.shape[-2:]) - 1) // 16 + 1)
    window -= 1 - window % 2
    structure = ms_ssim(image, real, data_range=1.0, win_size=window) if window >= 3 else torch.tensor(1.0)
    return l1 + ssim_weight * (1 - structure)


def dice_loss(mask: torch.Tensor, target_mask: torch.Tensor, eps: float = 1.0) -> torch.Tensor:
    inter = (mask * target_mask).sum((1, 2, 3))
    return (1 - (2 * inter + eps) / (mask.sum((1, 2, 3)) + target_mask.sum((1, 2, 3)) + eps)).mean()


def discriminator_hinge(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    return F.relu(1 - real_logits).mean() + F.relu(1 + fake_logits).mean()


def generator_hinge(fake_logits: torch.Tensor) -> torch.Tensor:
    return -fake_logits.mean()


def feature_matching(fake_feats: list[torch.Tensor], real_feats: list[torch.Tensor]) -> torch.Tensor:
    return sum((f - r.detach()).abs().mean() for f, r in zip(fake_feats, real_feats)) / len(fake_feats)


class VGGFeatures(torch.nn.Module):
    """VGG-19's convolutional layers (torchvision's `features.<i>` key names), returning the
    activations after relu1_2, relu2_2, relu3_4 and relu4_4 for the perceptual loss. Weights come
    only from a user's safetensors file: nothing is downloaded."""

    LAYOUT = (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512)
    TAPS = (3, 8, 17, 26)  # indices in `features` of the ReLUs whose outputs are compared

    def __init__(self):
        super().__init__()
        layers, cin = [], 3
        for item in self.LAYOUT:
            if item == "M":
                layers.append(torch.nn.MaxPool2d(2, 2))
            else:
                layers += [torch.nn.Conv2d(cin, item, 3, padding=1), torch.nn.ReLU()]
                cin = item
        self.features = torch.nn.Sequential(*layers)
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1))
        self.requires_grad_(False)

    @classmethod
    def from_file(cls, path):
        """The feature layers of a VGG-19 state dict saved with safetensors (extra keys, such as
        the classifier's, are ignored; a missing or misshapen feature weight is named)."""
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        from edgecap import EdgecapError

        try:
            state = load_file(str(path))
        except (OSError, SafetensorError) as e:
            raise EdgecapError(f"{path}: not a readable safetensors file of VGG-19 weights ({e})") from None
        vgg = cls()
        own = {k: v for k, v in vgg.state_dict().items() if k.startswith("features.")}
        for key, tensor in own.items():
            if key not in state:
                raise EdgecapError(f"{path}: no tensor {key!r}; expected torchvision VGG-19 key names "
                                   "(features.0.weight, ...)")
            if tuple(state[key].shape) != tuple(tensor.shape):
                raise EdgecapError(f"{path}: {key} has shape {tuple(state[key].shape)}, VGG-19 has {tuple(tensor.shape)}")
        vgg.load_state_dict({k: state[k].float() for k in own}, strict=False)
        return vgg.eval()

    def forward(self, image: torch.Tensor) -> list[torch.Tensor]:
        x, taps = (image - self.mean) / self.std, []
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in self.TAPS:
                taps.append(x)
        return taps


def perceptual(vgg: VGGFeatures, image: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean L1 between VGG-19 features of the output and of the target (images in [0, 1])."""
    with torch.no_grad():
        ref = vgg(target)
    return sum((a - b).abs().mean() for a, b in zip(vgg(image), ref)) / len(ref)
