"""Losses: adversarial objectives vs hand-computed values, VGG16 perceptual loss behaviour."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mri2tau.errors import PipelineInputError
from mri2tau.losses import adversarial as adv
from mri2tau.losses.perceptual import VGGPerceptualLoss, imagenet_weights_path, load_vgg16_features
from mri2tau.losses.reconstruction import l1_loss, mse_loss

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def vgg_features() -> nn.Sequential:
    torch.manual_seed(0)
    with pytest.warns(UserWarning, match="RANDOM"):
        return load_vgg16_features("none")


def _linear_disc() -> nn.Conv2d:
    """D(x) = <w, x> + b on 1 x 4 x 4 images -> (B, 1, 1, 1); ∇_x D = w for every x."""
    torch.manual_seed(1)
    return nn.Conv2d(1, 1, kernel_size=4)


# --- adversarial -------------------------------------------------------------------------------


def test_label_smoothing_targets_lie_in_range() -> None:
    """BCE with logits is linear in the target: recover each drawn real target from the loss."""
    torch.manual_seed(0)
    x = torch.tensor([3.0])
    very_fake = torch.tensor([-200.0])  # BCE(fake, 0) = softplus(-200) == 0
    targets = []
    for _ in range(400):
        loss = adv.d_loss_bce(x, very_fake)
        # l(t) = softplus(x) - t * x
        targets.append(((F.softplus(x) - loss) / x).item())
    targets = torch.tensor(targets)
    assert targets.min() >= 0.9 - 1e-5 and targets.max() <= 1.0 + 1e-5
    assert targets.min() < 0.92 and targets.max() > 0.98  # really drawn from the whole range


def test_d_loss_bce_fixed_labels_hand_computed() -> None:
    real, fake = torch.tensor([0.3, -1.2]), torch.tensor([0.5, 2.0])
    expected = F.softplus(-real).mean() + F.softplus(fake).mean()
    assert torch.allclose(adv.d_loss_bce(real, fake, real_label_range=(1.0, 1.0)), expected)
    assert torch.allclose(adv.g_loss_bce(fake), F.softplus(-fake).mean())
    with pytest.raises(ValueError):
        adv.d_loss_bce(real, fake, real_label_range=(0.9, 1.1))


def test_r1_penalty_linear_and_quadratic_discriminators() -> None:
    disc = _linear_disc()
    images = torch.randn(3, 1, 4, 4, requires_grad=True)
    r1 = adv.r1_penalty(disc(images), images)
    assert torch.allclose(r1, disc.weight.pow(2).sum())
    r1.backward()  # differentiable w.r.t. the discriminator: d||w||²/dw = 2w
    assert torch.allclose(disc.weight.grad, 2 * disc.weight)

    # D(x) = sum(x²) -> ∇ = 2x -> E||∇||² = mean_i 4 * sum(x_i²)
    images = torch.randn(3, 1, 4, 4, requires_grad=True)
    r1 = adv.r1_penalty(images.pow(2).flatten(1).sum(1), images)
    assert torch.allclose(r1, (4 * images.detach().pow(2).flatten(1).sum(1)).mean())

    with pytest.raises(ValueError, match="requires_grad"):
        plain = torch.randn(2, 1, 4, 4)
        adv.r1_penalty(disc(plain), plain)


def test_gradient_penalty_hand_computed() -> None:
    disc = _linear_disc()
    real, fake = torch.randn(4, 1, 4, 4), torch.randn(4, 1, 4, 4)
    gp = adv.gradient_penalty(disc, real, fake)
    assert torch.allclose(gp, (disc.weight.norm() - 1).pow(2))

    # critic 0.5 * sum(x²): ∇ = x̂; with real == fake the interpolate is real itself
    def quadratic(x: torch.Tensor) -> torch.Tensor:
        return 0.5 * x.pow(2).flatten(1).sum(1)

    gp = adv.gradient_penalty(quadratic, real, real.clone())
    assert torch.allclose(gp, (real.flatten(1).norm(dim=1) - 1).pow(2).mean())


def test_wgan_and_lsgan_losses_hand_computed() -> None:
    real, fake = torch.tensor([1.0, 3.0]), torch.tensor([-2.0, 0.0])
    assert adv.d_loss_wgan(real, fake).item() == pytest.approx(-1.0 - 2.0)
    assert adv.g_loss_wgan(fake).item() == pytest.approx(1.0)
    # 0.5 * (mean((1-1)², (3-1)²) + mean(4, 0)) = 0.5 * (2 + 2)
    assert adv.d_loss_lsgan(real, fake).item() == pytest.approx(2.0)
    assert adv.g_loss_lsgan(fake).item() == pytest.approx((9.0 + 1.0) / 2)


def test_instance_noise_variance_decays_linearly() -> None:
    assert adv.instance_noise_std(0.0) == pytest.approx(math.sqrt(0.1))
    assert adv.instance_noise_std(0.25) ** 2 == pytest.approx(0.075)
    assert adv.instance_noise_std(0.5, start_variance=0.2) ** 2 == pytest.approx(0.1)
    assert adv.instance_noise_std(1.0) == 0.0
    assert adv.instance_noise_std(1.7) == 0.0 and adv.instance_noise_std(-1.0) == pytest.approx(math.sqrt(0.1))
    images = torch.zeros(2, 1, 64, 64)
    noisy = adv.add_instance_noise(images, adv.instance_noise_std(0.0), generator=torch.Generator().manual_seed(0))
    assert noisy.var().item() == pytest.approx(0.1, rel=0.1)
    assert adv.add_instance_noise(images, 0.0) is images


# --- reconstruction ----------------------------------------------------------------------------


def test_l1_and_mse_with_mask() -> None:
    fake, real = torch.tensor([[1.0, -1.0, 0.5]]), torch.tensor([[0.0, 0.0, 0.0]])
    assert l1_loss(fake, real).item() == pytest.approx(2.5 / 3)
    assert mse_loss(fake, real).item() == pytest.approx(2.25 / 3)
    mask = torch.tensor([[True, False, True]])
    assert l1_loss(fake, real, mask).item() == pytest.approx(1.5 / 2)
    with pytest.raises(ValueError):
        l1_loss(fake, real[:, :2])


# --- perceptual --------------------------------------------------------------------------------


def test_perceptual_zero_for_identical_positive_otherwise(vgg_features: nn.Sequential) -> None:
    loss_fn = VGGPerceptualLoss(features=vgg_features)
    torch.manual_seed(2)
    real = torch.rand(2, 1, 32, 32) * 2 - 1
    assert loss_fn(real, real.clone()).item() == pytest.approx(0.0, abs=1e-7)
    other = (real + 0.3 * torch.randn_like(real)).clamp(-1, 1)
    assert loss_fn(other, real).item() > 1e-3
    # the distance grows with the perturbation
    far = (real + 0.9 * torch.randn_like(real)).clamp(-1, 1)
    assert loss_fn(far, real).item() > loss_fn(other, real).item()


def test_perceptual_vgg_frozen_gradients_reach_input(vgg_features: nn.Sequential) -> None:
    loss_fn = VGGPerceptualLoss(features=vgg_features)
    loss_fn.train()
    assert not loss_fn.features.training  # stays in eval mode
    assert all(not p.requires_grad for p in loss_fn.parameters())
    fake = torch.zeros(1, 1, 16, 16, requires_grad=True)
    real = torch.rand(1, 1, 16, 16) * 2 - 1
    loss_fn(fake, real).backward()
    assert fake.grad is not None and fake.grad.abs().sum() > 0 and torch.isfinite(fake.grad).all()
    assert all(p.grad is None for p in loss_fn.parameters())


def test_vgg_loader_layers_and_local_file(vgg_features: nn.Sequential, tmp_path) -> None:
    assert len(vgg_features) == 23 and isinstance(vgg_features[22], nn.ReLU)
    assert not vgg_features.training
    # features-only file, and a full-model style file with the "features." prefix
    torch.save(vgg_features.state_dict(), tmp_path / "features.pth")
    prefixed = {f"features.{k}": v for k, v in vgg_features.state_dict().items()}
    prefixed["classifier.0.weight"] = torch.zeros(2, 2)
    torch.save(prefixed, tmp_path / "full.pth")
    for name in ("features.pth", "full.pth"):
        loaded = load_vgg16_features(str(tmp_path / name), n_layers=10)
        assert len(loaded) == 10
        assert torch.equal(loaded[7].weight, vgg_features[7].weight)
        assert all(not p.requires_grad for p in loaded.parameters())


def test_missing_weights_raise_helpful_error(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(torch.hub, "_hub_dir", str(tmp_path / "hub"))
    expected = tmp_path / "hub" / "checkpoints" / "vgg16-397923af.pth"
    assert imagenet_weights_path() == expected
    with pytest.raises(PipelineInputError) as info:
        load_vgg16_features("imagenet")
    message = str(info.value)
    assert str(expected) in message and "'none'" in message and "download.pytorch.org" in message
    with pytest.raises(PipelineInputError, match="nothere.pth"):
        load_vgg16_features(str(tmp_path / "nothere.pth"))
