"""Reenactment losses and the pose encoder's augmentation."""

import torch

from edgecap.models.reenactment.losses import (augment_for_pose, dice_loss, discriminator_hinge, feature_matching,
                                               generator_hinge, masked_reconstruction)


def _blob(size=64):
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    mask = (((yy - 28) ** 2 + (xx - 32) ** 2) < 15**2).float()[None, None]
    image = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(0)) * 0.3 + 0.3
    return image, mask


def test_masked_reconstruction_ignores_the_background():
    image, mask = _blob()
    other_background = image * mask + (1 - mask) * torch.rand_like(image)
    assert float(masked_reconstruction(image * mask, other_background, mask)) < 1e-5
    worse = masked_reconstruction((image * 0.5) * mask, image, mask)
    assert float(worse) > 0.05


def test_dice():
    _, mask = _blob()
    assert float(dice_loss(mask, mask)) < 1e-3
    assert float(dice_loss(1 - mask, mask)) > 0.95


def test_hinge_and_feature_matching_directions():
    assert float(discriminator_hinge(torch.full((2, 1, 4, 4), 2.0), torch.full((2, 1, 4, 4), -2.0))) == 0.0
    assert float(generator_hinge(torch.full((1, 1, 4, 4), 3.0))) == -3.0
    feats = [torch.ones(1, 4, 8, 8), torch.zeros(1, 8, 4, 4)]
    assert float(feature_matching(feats, feats)) == 0.0
    fake = [torch.zeros(1, 4, 8, 8, requires_grad=True)]
    real = [torch.ones(1, 4, 8, 8, requires_grad=True)]
    loss = feature_matching(fake, real)
    loss.backward()
    assert float(loss) == 1.0 and fake[0].grad is not None and real[0].grad is None  # the real side is a target


def test_augmentation_keeps_the_layout_and_changes_the_colours():
    image, mask = _blob()
    out = augment_for_pose(image.repeat(4, 1, 1, 1), torch.Generator().manual_seed(1))
    assert out.shape == (4, 3, 64, 64) and 0 <= float(out.min()) and float(out.max()) <= 1
    colour_change = (out.mean((2, 3)) - image.mean((2, 3))).abs().max()
    assert float(colour_change) > 0.02
    # a white blob on black stays where it was, within the small scale and shift: the pose is kept
    moved = augment_for_pose(mask.repeat(4, 3, 1, 1), torch.Generator().manual_seed(2))
    for frame in moved.mean(1):
        blob = frame > (frame.max() + frame.min()) / 2
        ys, xs = torch.nonzero(blob, as_tuple=True)
        assert abs(float(ys.float().mean()) - 28) < 4 and abs(float(xs.float().mean()) - 32) < 4
    again = augment_for_pose(image.repeat(4, 1, 1, 1), torch.Generator().manual_seed(1))
    torch.testing.assert_close(out, again)
