"""Adversarial objectives and GAN regularisers (image space, intensities in [-1, 1]).

Every loss returns a scalar tensor averaged over the batch (and over patch positions for
PatchGAN outputs). Weights (λ) are applied by the caller, as in the papers:

- MCR-VQGAN / VQGAN: :func:`d_loss_bce` (one-sided label smoothing) + γ/2 · :func:`r1_penalty`
  (γ = 10) for the discriminator, :func:`g_loss_bce` for the generator, and Gaussian instance
  noise on generated images with std :func:`instance_noise_std`.
- pix2pix (cGAN): :func:`d_loss_bce` / :func:`g_loss_bce` on the conditional PatchGAN.
- WGAN-GP: :func:`d_loss_wgan` + λgp · :func:`gradient_penalty` (λgp = 10), :func:`g_loss_wgan`.
- CycleGAN: least-squares :func:`d_loss_lsgan` / :func:`g_loss_lsgan`.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor


def d_loss_bce(
    real_logits: Tensor,
    fake_logits: Tensor,
    real_label_range: tuple[float, float] = (0.9, 1.0),
) -> Tensor:
    """Discriminator BCE with one-sided label smoothing.

    Real targets are drawn per element from U[lo, hi] (``real_label_range``); fake targets are 0.
    Inputs are logits (no sigmoid) of any shape, e.g. PatchGAN maps (B, 1, h, w).
    Returns BCE(real) + BCE(fake), each averaged over elements.
    """
    lo, hi = real_label_range
    if not 0.0 <= lo <= hi <= 1.0:
        raise ValueError(f"real_label_range must satisfy 0 <= lo <= hi <= 1, got {real_label_range}")
    real_targets = torch.empty_like(real_logits).uniform_(lo, hi)
    loss_real = F.binary_cross_entropy_with_logits(real_logits, real_targets)
    loss_fake = F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits))
    return loss_real + loss_fake


def g_loss_bce(fake_logits: Tensor) -> Tensor:
    """Non-saturating generator BCE: fake logits pushed towards the real label 1."""
    return F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits))


def _input_gradient(outputs: Tensor, inputs: Tensor) -> Tensor:
    """d(sum outputs)/d inputs with a graph, so a penalty on it can be back-propagated."""
    if not inputs.requires_grad:
        raise ValueError("the images must have requires_grad=True before the discriminator is run on them")
    (grad,) = torch.autograd.grad(outputs.sum(), inputs, create_graph=True)
    return grad


def r1_penalty(real_logits: Tensor, real_images: Tensor) -> Tensor:
    """R1 penalty E_x ||∇_x D(x)||² on real images (Mescheder et al. 2018).

    ``real_images`` (B, ...) must have ``requires_grad=True`` and ``real_logits`` must be
    ``D(real_images)``. The squared gradient norm is summed over all of a sample's elements
    (channels, pixels and patch outputs) and averaged over the batch. The caller multiplies by
    γ/2 (γ = 10 in the paper preset).
    """
    grad = _input_gradient(real_logits, real_images)
    return grad.pow(2).flatten(1).sum(1).mean()


def gradient_penalty(
    critic: Callable[[Tensor], Tensor],
    real: Tensor,
    fake: Tensor,
    generator: torch.Generator | None = None,
) -> Tensor:
    """WGAN-GP penalty E[(||∇ D(x̂)||₂ − 1)²] on random interpolates x̂ (Gulrajani et al. 2017).

    x̂ = ε·real + (1 − ε)·fake with ε ~ U[0, 1] per sample; ``fake`` is detached. The gradient
    norm is taken over all of a sample's elements. The caller multiplies by λgp (10).
    """
    if real.shape != fake.shape:
        raise ValueError(f"real {tuple(real.shape)} and fake {tuple(fake.shape)} differ in shape")
    eps_shape = (real.shape[0],) + (1,) * (real.dim() - 1)
    eps = torch.rand(eps_shape, generator=generator, device=real.device, dtype=real.dtype)
    mixed = (eps * real.detach() + (1.0 - eps) * fake.detach()).requires_grad_(True)
    grad = _input_gradient(critic(mixed), mixed)
    return (grad.flatten(1).norm(2, dim=1) - 1.0).pow(2).mean()


def d_loss_wgan(real_out: Tensor, fake_out: Tensor) -> Tensor:
    """Wasserstein critic loss E[D(fake)] − E[D(real)] (add λgp · gradient penalty)."""
    return fake_out.mean() - real_out.mean()


def g_loss_wgan(fake_out: Tensor) -> Tensor:
    """Wasserstein generator loss −E[D(fake)]."""
    return -fake_out.mean()


def d_loss_lsgan(real_out: Tensor, fake_out: Tensor) -> Tensor:
    """Least-squares discriminator loss ½(E[(D(real) − 1)²] + E[D(fake)²]) (CycleGAN)."""
    return 0.5 * (F.mse_loss(real_out, torch.ones_like(real_out)) + F.mse_loss(fake_out, torch.zeros_like(fake_out)))


def g_loss_lsgan(fake_out: Tensor) -> Tensor:
    """Least-squares generator loss E[(D(fake) − 1)²] (CycleGAN)."""
    return F.mse_loss(fake_out, torch.ones_like(fake_out))


def instance_noise_std(progress: float, start_variance: float = 0.1) -> float:
    """Standard deviation of the Gaussian instance noise added to generated images.

    The variance decays linearly from ``start_variance`` at ``progress`` 0 (start of training)
    to 0 at ``progress`` 1 (end); progress outside [0, 1] is clamped. Intensity units of the
    images ([-1, 1] scale).
    """
    if start_variance < 0:
        raise ValueError(f"start_variance must be >= 0, got {start_variance}")
    progress = min(max(float(progress), 0.0), 1.0)
    return math.sqrt(start_variance * (1.0 - progress))


def add_instance_noise(images: Tensor, std: float, generator: torch.Generator | None = None) -> Tensor:
    """``images`` + N(0, std²) noise (same shape); returns ``images`` unchanged when std is 0."""
    if std <= 0:
        return images
    noise = torch.randn(images.shape, generator=generator, device=images.device, dtype=images.dtype)
    return images + std * noise
