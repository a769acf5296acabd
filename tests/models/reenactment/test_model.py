"""The reenactment networks: shapes, the identity embedding as an input of the per-frame graph,
the encoders' relative sizes, AdaIN conditioning, and the patch discriminator."""

import pytest
import torch

from edgecap import EdgecapError
from edgecap.models.reenactment.model import PRESETS, AdaIN, Discriminator, Reenactment, ReenactmentConfig


def _params(m):
    return sum(p.numel() for p in m.parameters())


def test_mobile_shapes_and_ranges():
    torch.manual_seed(0)
    model = Reenactment(PRESETS["mobile"]).eval()
    s, d = PRESETS["mobile"].image_size, PRESETS["mobile"].identity_dim
    identity = model.embed_identity(torch.rand(2, 3, 3, s, s))
    assert identity.shape == (2, d)
    image, mask = model(torch.rand(2, 3, s, s), identity)
    assert image.shape == (2, 3, s, s) and mask.shape == (2, 1, s, s)
    assert 0 <= float(image.min()) and float(image.max()) <= 1 and 0 <= float(mask.min()) and float(mask.max()) <= 1
    assert torch.all(image <= mask + 1e-6)  # image = rgb x mask: nothing outside the mask


def test_identity_is_the_mean_over_frames():
    torch.manual_seed(0)
    model = Reenactment(PRESETS["mobile"]).eval()
    frames = torch.rand(1, 4, 3, 64, 64)
    each = torch.stack([model.identity_encoder(frames[:, k]) for k in range(4)], 1).mean(1)
    torch.testing.assert_close(model.embed_identity(frames), each)


@pytest.mark.parametrize("preset", ["mobile", "paper"])
def test_pose_encoder_is_much_smaller_than_the_identity_encoder(preset):
    model = Reenactment(PRESETS[preset])
    assert _params(model.pose_encoder) * 10 < _params(model.identity_encoder)


def test_paper_preset_runs_at_the_reference_sizes():
    """256 px in, 512-d identity and 256-d pose embeddings out of the built networks."""
    model = Reenactment(PRESETS["paper"]).eval()
    with torch.no_grad():
        frame = torch.rand(1, 3, 256, 256)
        assert model.identity_encoder(frame).shape == (1, 512) and model.pose_encoder(frame).shape == (1, 256)
        image, mask = model(frame, torch.randn(1, 512))
    assert image.shape == (1, 3, 256, 256) and mask.shape == (1, 1, 256, 256)


def test_adain_takes_its_statistics_from_the_style():
    x = torch.randn(2, 4, 8, 8) * 3 + 5
    scale, shift = torch.full((2, 4), 1.0), torch.full((2, 4), 0.5)
    y = AdaIN()(x, scale, shift)
    torch.testing.assert_close(y.mean((2, 3)), torch.full((2, 4), 0.5), atol=1e-4, rtol=0)
    torch.testing.assert_close(y.std((2, 3), unbiased=False), torch.full((2, 4), 2.0), atol=1e-3, rtol=0)


def test_generator_output_depends_on_identity_and_pose():
    torch.manual_seed(0)
    model = Reenactment(PRESETS["mobile"]).eval()
    with torch.no_grad():  # the last MLP layer starts at zero; give it weights to see the conditioning
        model.generator.mlp[-1].weight.normal_(0, 0.05)
        driver = torch.rand(1, 3, 64, 64)
        a, _ = model(driver, torch.randn(1, 128))
        b, _ = model(driver, torch.randn(1, 128))
        c, _ = model(torch.rand(1, 3, 64, 64), torch.randn(1, 128))
    assert (a - b).abs().mean() > 1e-3 and (a - c).abs().mean() > 1e-3


def test_discriminator_patches_and_features():
    logits, feats = Discriminator()(torch.rand(2, 3, 64, 64))
    assert logits.shape == (2, 1, 8, 8) and len(feats) == 3


def test_config_refusals():
    with pytest.raises(EdgecapError, match="model.image_size must be a power of two"):
        ReenactmentConfig(image_size=100).validate()
    with pytest.raises(EdgecapError, match="model.name"):
        ReenactmentConfig(name="big").validate()


@pytest.mark.parametrize("generator_input", ["constant", "projected"])
def test_avatar_part_folds_the_identity_into_the_first_layer(generator_input):
    from dataclasses import replace

    from edgecap.models.reenactment.model import AvatarPart, PerFramePart

    torch.manual_seed(0)
    model = Reenactment(replace(PRESETS["mobile"], generator_input=generator_input)).eval()
    with torch.no_grad():
        model.generator.mlp[-1].weight.normal_(0, 0.05)
        identity, driver = torch.randn(1, 128), torch.rand(2, 3, 64, 64)
        avatar = AvatarPart(model, identity)
        expected = PerFramePart(model)(driver, identity.expand(2, -1))
        got = avatar(driver)
    assert avatar.generator.mlp[0].in_features == PRESETS["mobile"].pose_dim  # the pose alone goes in
    for a, b in zip(got, expected):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    assert model.generator.mlp[0].in_features == 128 + 64  # the shared network is untouched
