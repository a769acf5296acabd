"""The trainable reenactment model: the deployable networks (`net`), the patch discriminator that
only training uses, and, when the user gives VGG-19 weights, the perceptual loss's feature
network. Its forward returns one training phase's loss, so DDP sees every parameter it uses.

One iteration (family.training_phases): the generator phase (encoders and generator) on the
meta-learning batch, then the discriminator phase on the same batch's real frames and the
generator phase's output, detached.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from edgecap import EdgecapError
from edgecap.models.reenactment import losses
from edgecap.models.reenactment.model import Discriminator, Reenactment, ReenactmentConfig

GENERATOR, DISCRIMINATOR = "generator", "discriminator"


class ReenactmentTraining(nn.Module):
    def __init__(self, cfg: ReenactmentConfig):
        super().__init__()
        self.cfg = cfg
        self.net = Reenactment(cfg)
        self.discriminator = Discriminator(cfg.discriminator_width)
        # Not a submodule: fixed weights from the user's file (read by `load_perceptual` when training
        # starts), never trained or saved with the run; later stages never need the file.
        self._vgg: list[losses.VGGFeatures] = []

    def load_perceptual(self) -> None:
        if self.cfg.vgg_weights and not self._vgg:
            self._vgg.append(losses.VGGFeatures.from_file(Path(self.cfg.vgg_weights)))

    def forward(self, identity_frames: torch.Tensor, driver: torch.Tensor, driver_mask: torch.Tensor | None = None,
                seed: torch.Tensor | None = None, phase: str | None = None, fake: torch.Tensor | None = None):
        """Without a phase: the whole model, (identity_frames, driver) -> (image, mask).
        In training: identity_frames (B, K, 3, S, S), driver (B, 3, S, S), driver_mask (B, 1, S, S),
        seed: the augmentation's (an int64 tensor, drawn with the batch so a resumed run repeats it);
        generator phase -> (loss, output image); discriminator phase (`fake`: that image) -> loss."""
        if phase is None:
            return self.net(driver, self.net.embed_identity(identity_frames))
        real = driver * driver_mask
        if phase == DISCRIMINATOR:
            real_logits, _ = self.discriminator(real)
            fake_logits, _ = self.discriminator(fake.detach())
            return losses.discriminator_hinge(real_logits, fake_logits)
        if phase != GENERATOR:
            raise EdgecapError(f"reenactment has no training phase {phase!r}")
        cfg = self.cfg
        identity = self.net.embed_identity(identity_frames)
        pose_input = driver
        if cfg.pose_augmentation > 0:
            generator = torch.Generator().manual_seed(int(seed))
            pose_input = losses.augment_for_pose(driver, generator, cfg.pose_augmentation)
        image, mask = self.net.render(identity, self.net.pose_encoder(pose_input))
        loss = (losses.masked_reconstruction(image, driver, driver_mask, cfg.ssim_weight)
                + cfg.dice_weight * losses.dice_loss(mask, driver_mask))
        if cfg.adversarial_weight > 0 or cfg.feature_matching_weight > 0:
            fake_logits, fake_feats = self.discriminator(image)
            _, real_feats = self.discriminator(real)
            loss = (loss + cfg.adversarial_weight * losses.generator_hinge(fake_logits)
                    + cfg.feature_matching_weight * losses.feature_matching(fake_feats, real_feats))
        if self._vgg:
            vgg = self._vgg[0].to(image.device)
            loss = loss + cfg.perceptual_weight * losses.perceptual(vgg, image, real)
        return loss, image

    def discriminator_parameters(self) -> list[nn.Parameter]:
        return list(self.discriminator.parameters())

    def generator_parameters(self) -> list[nn.Parameter]:
        return list(self.net.parameters())


def finetune_identity(net: Reenactment, frames: torch.Tensor, masks: torch.Tensor, steps: int = 100,
                      lr: float = 1e-2, ssim_weight: float = 1.0) -> tuple[torch.Tensor, list[float]]:
    """Per-identity fine-tuning (the paper's last stage): the averaged identity embedding of
    `frames` (K, 3, S, S) in [0, 1] becomes a trainable parameter and is fitted so that the
    generator redraws each frame from its own pose, with `masks` (K, 1, S, S) removing the
    background; the encoders and the generator stay frozen. Returns (embedding (1, D_id), the
    loss at every step)."""
    was_training = net.training
    net.eval()
    frozen = [p.requires_grad for p in net.parameters()]
    net.requires_grad_(False)
    try:
        with torch.no_grad():
            start = net.embed_identity(frames[None])
            poses = net.pose_encoder(frames)
        embedding = torch.nn.Parameter(start.clone())
        optimizer = torch.optim.Adam([embedding], lr=lr)
        history = []
        for _ in range(steps):
            image, mask = net.render(embedding.expand(len(frames), -1), poses)
            loss = (losses.masked_reconstruction(image, frames, masks, ssim_weight) + losses.dice_loss(mask, masks))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            history.append(float(loss))
    finally:
        for p, flag in zip(net.parameters(), frozen):
            p.requires_grad_(flag)
        net.train(was_training)
    return embedding.detach(), history
