"""One training step per model family: the only model-specific part of the training loop.

A family (registry ``ModelSpec.family``) is a :class:`Family` subclass registered in
:data:`FAMILIES`. It names its optimizers (:attr:`Family.optimizer_groups`: optimizer ->
networks it updates), does one step on a batch with :meth:`Family.train_step` (calling
:meth:`StepContext.update` once per optimizer), and says how to generate PET for validation.
The loop owns everything else (devices, AMP, optimizers, schedulers, checkpoints, logging).

Tensors are (B, 1, H, W) slices or (B, 1, X, Y, Z) volumes in [-1, 1]; MRI -> PET.
Loss weights come from the model's hyper-parameters (``hp``; SPEC §4 defaults in the registry):

* ``vqgan`` (MCR-VQGAN, VQGAN): G: λadv·BCE + λrec·L1 + λperc·VGG + λvq·VQ commitment;
  D: BCE with one-sided label smoothing (real labels ~ U[``real_label_range``]) + γ/2·R1
  (``r1_gamma``). Gaussian instance noise (variance ``instance_noise`` decaying linearly to 0
  over training) on the real and generated images D sees (both steps). R1 is taken on the
  noisy real images D actually sees.
* ``pix2pix`` (cGAN): conditional PatchGAN on concat(MRI, PET); D: ½·BCE (label range
  ``real_label_range``, default (0.9, 1): the paper's one-sided smoothing); G: λadv·BCE +
  ``lambda_l1``·L1 (100) [+ the extra term].
* ``wgan_gp``: conditional critic; critic every batch: E[C(fake)] − E[C(real)] + λgp·GP;
  generator every ``n_critic`` batches (default 5): −λadv·E[C(fake)] + ``lambda_l1``·L1
  [+ the extra term].
  The L1 term (default 100, as pix2pix) is ours: without it the critic only asks for *a*
  realistic tau map, not this subject's, so paired translation would not be learned.
* ``cyclegan``: G (MRI->PET), G_inv (PET->MRI), D (PET), D_inv (MRI); LSGAN; G step:
  λadv·(adv both directions) + λcyc·(L1 both cycles) + λcyc·``lambda_idt``·identity
  (default 0: an MRI->PET identity on PET has no anatomical meaning) [+ the extra term on
  G(MRI) vs PET];
  D step: LSGAN for both discriminators. No image history pool (simpler exact resume).
* ``supervised`` (3D U-Net/UNETR/SwinUNETR): the extra term is the whole loss (default
  :class:`mri2tau.losses.ssim3d.SynthesisLoss3D`: α·MSE + β·(1 − SSIM) + γ·perceptual).

The *extra term* is an optional generator loss module ``(fake, real) -> scalar`` the caller of
the loop supplies: the VGG16 perceptual loss for 2D models (weight ``lambda_perc``) or the 3D
synthesis objective for 3D GANs (weight ``lambda_synthesis``). A term whose value depends on
the epoch (the cyclic 2.5D plane) exposes ``set_epoch(epoch)``; :meth:`Family.set_epoch`
forwards it at the start of every epoch, so a resumed run (which restarts at a known epoch)
follows the same schedule. For the supervised family a term with ``terms(fake, real) -> dict``
has each part logged and is computed in float32 (outside autocast); the GAN families compute
it under autocast with the rest of the generator loss.
Extra per-family state goes in :meth:`Family.state_dict`, which the loop checkpoints.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from mri2tau.losses.adversarial import (
    add_instance_noise,
    d_loss_bce,
    d_loss_lsgan,
    d_loss_wgan,
    g_loss_bce,
    g_loss_lsgan,
    g_loss_wgan,
    gradient_penalty,
    instance_noise_std,
    r1_penalty,
)
from mri2tau.losses.reconstruction import l1_loss

Losses = dict[str, Tensor]


@dataclass
class StepContext:
    """What the loop lends a family for one batch.

    progress: fraction of training done in [0, 1] (epoch + batch fraction) / epochs.
    step: 0-based global step of this batch.
    """

    optimizers: dict[str, torch.optim.Optimizer]
    scalers: dict[str, torch.amp.GradScaler]
    autocast: Callable[[], AbstractContextManager]
    progress: float
    step: int

    def update(self, group: str, loss: Tensor) -> None:
        """Back-propagate ``loss`` and step optimizer ``group`` (with its grad scaler)."""
        optimizer, scaler = self.optimizers[group], self.scalers[group]
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()


@contextlib.contextmanager
def frozen(*nets: nn.Module) -> Iterator[None]:
    """Turn off parameter gradients of ``nets`` inside the block (a D during the G step)."""
    previous = [[p.requires_grad for p in net.parameters()] for net in nets]
    for net in nets:
        net.requires_grad_(False)
    try:
        yield
    finally:
        for net, flags in zip(nets, previous):
            for p, flag in zip(net.parameters(), flags):
                p.requires_grad_(flag)


def _weight(hp: dict[str, Any], key: str, default: float | None = None) -> float:
    if key in hp:
        return float(hp[key])
    if default is None:
        raise KeyError(f"hyper-parameter {key!r} is missing (needed by the training step)")
    return float(default)


def _detached(losses: dict[str, Tensor | float]) -> Losses:
    return {k: (v.detach().float() if isinstance(v, Tensor) else torch.tensor(float(v))) for k, v in losses.items()}


#: Hyper-parameter keys that weight the extra generator term, first one present wins.
EXTRA_WEIGHT_KEYS = ("lambda_perc", "lambda_synthesis")


class Family:
    """Base class: a family's networks, optimizer groups and one training step.

    ``nets``: the registry's built networks (already on the device); ``dims``: 2 or 3;
    ``extra_loss``: optional extra generator term ``(fake, real) -> scalar`` (module docstring),
    weighted by the first of :data:`EXTRA_WEIGHT_KEYS` in ``hp`` (1 if none).
    """

    name: ClassVar[str]
    optimizer_groups: ClassVar[dict[str, tuple[str, ...]]] = {
        "generator": ("generator",),
        "discriminator": ("discriminator",),
    }

    def __init__(self, nets: dict[str, nn.Module], hp: dict[str, Any], dims: int = 2,
                 extra_loss: nn.Module | None = None) -> None:
        missing = {n for names in self.optimizer_groups.values() for n in names} - set(nets)
        if missing:
            raise KeyError(f"family {self.name!r} needs networks {sorted(missing)}; the model built {sorted(nets)}")
        self.nets, self.hp, self.dims, self.extra_loss = nets, hp, dims, extra_loss
        key = next((k for k in EXTRA_WEIGHT_KEYS if k in hp), None)
        self.extra_weight = 0.0 if extra_loss is None else (float(hp[key]) if key else 1.0)
        #: metrics name of the extra term: ``perceptual`` (2D VGG) or ``synthesis`` (3D objective)
        self.extra_name = "synthesis" if key == "lambda_synthesis" else "perceptual"

    def stepped_groups(self) -> tuple[str, ...]:
        """The optimizer groups :meth:`train_step` updates (their LR schedulers step per epoch)."""
        return tuple(self.optimizer_groups)

    def generate(self, mri: Tensor) -> Tensor:
        """Synthetic PET from MRI (generators returning ``(pet, aux)`` are unwrapped)."""
        out = self.nets["generator"](mri)
        return out[0] if isinstance(out, tuple) else out

    def set_epoch(self, epoch: int) -> dict[str, Any]:
        """Called at the start of every (0-based) epoch; returns loggable schedule info."""
        if self.extra_loss is None or not hasattr(self.extra_loss, "set_epoch"):
            return {}
        self.extra_loss.set_epoch(epoch)
        planes = [m.plane for m in self.extra_loss.modules() if isinstance(getattr(m, "plane", None), str)]
        return {"perceptual_plane": planes[0]} if planes else {}

    def extra_term(self, fake: Tensor, real: Tensor) -> Tensor | float:
        """The unweighted extra generator term (0 when there is none or its weight is 0)."""
        return self.extra_loss(fake, real) if self.extra_weight > 0 else 0.0

    def train_step(self, mri: Tensor, pet: Tensor, ctx: StepContext) -> Losses:
        """One optimisation step on a batch; returns detached scalar losses (incl. ``l1``)."""
        raise NotImplementedError

    def state_dict(self) -> dict[str, Any]:
        """Extra state to checkpoint (none by default)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`."""


FAMILIES: dict[str, type[Family]] = {}


def register_family(cls: type[Family]) -> type[Family]:
    """Class decorator: make ``cls`` the step of registry family ``cls.name``."""
    FAMILIES[cls.name] = cls
    return cls


def get_family(name: str) -> type[Family]:
    """The :class:`Family` subclass for registry family ``name``."""
    if name not in FAMILIES:
        raise KeyError(f"no training step for family {name!r}; known: {', '.join(sorted(FAMILIES))}")
    return FAMILIES[name]


@register_family
class VQGANFamily(Family):
    """MCR-VQGAN / VQGAN: generator returns ``(fake, vq_loss)``; unconditional PatchGAN on PET."""

    name = "vqgan"

    def train_step(self, mri: Tensor, pet: Tensor, ctx: StepContext) -> Losses:
        gen, disc, hp = self.nets["generator"], self.nets["discriminator"], self.hp
        std = instance_noise_std(ctx.progress, _weight(hp, "instance_noise"))
        label_range = tuple(hp.get("real_label_range", (0.9, 1.0)))
        gamma = _weight(hp, "r1_gamma")
        with ctx.autocast():
            fake, vq_loss = gen(mri)
        real_seen = add_instance_noise(pet, std).detach().requires_grad_(gamma > 0)
        with ctx.autocast():
            d_real = disc(real_seen)
            d_fake = disc(add_instance_noise(fake.detach(), std))
            d_adv = d_loss_bce(d_real.float(), d_fake.float(), label_range)
        r1 = r1_penalty(d_real.float(), real_seen) if gamma > 0 else torch.zeros((), device=mri.device)
        ctx.update("discriminator", d_adv + gamma / 2 * r1)
        with frozen(disc), ctx.autocast():
            g_adv = g_loss_bce(disc(add_instance_noise(fake, std)).float())
            l1 = l1_loss(fake.float(), pet)
            perc = self.extra_term(fake, pet)
            g_loss = (_weight(hp, "lambda_adv") * g_adv + _weight(hp, "lambda_rec") * l1
                      + self.extra_weight * perc + _weight(hp, "lambda_vq") * vq_loss.float())
        ctx.update("generator", g_loss)
        return _detached({"g_loss": g_loss, "g_adv": g_adv, "l1": l1, self.extra_name: perc, "vq": vq_loss,
                          "d_loss": d_adv, "r1": r1, "noise_std": std})


@register_family
class Pix2PixFamily(Family):
    """cGAN / pix2pix: conditional PatchGAN on concat(MRI, PET), λL1 = 100."""

    name = "pix2pix"

    def stepped_groups(self) -> tuple[str, ...]:
        """Without the adversarial term (``lambda_adv: 0``) the discriminator is never updated."""
        return tuple(g for g in self.optimizer_groups if g != "discriminator" or _weight(self.hp, "lambda_adv", 1.0))

    def train_step(self, mri: Tensor, pet: Tensor, ctx: StepContext) -> Losses:
        """``lambda_adv: 0``: no adversarial term, so the discriminator is neither run nor updated
        (the generator alone with λL1 and the optional extra term; ``g_adv``/``d_loss`` logged as 0)."""
        disc, hp = self.nets["discriminator"], self.hp
        lambda_adv = _weight(hp, "lambda_adv", 1.0)
        label_range = tuple(hp.get("real_label_range", (0.9, 1.0)))
        with ctx.autocast():
            fake = self.generate(mri)
        zero = torch.zeros((), device=fake.device)
        d_loss = zero
        if lambda_adv:
            with ctx.autocast():
                d_real = disc(torch.cat([mri, pet], 1))
                d_fake = disc(torch.cat([mri, fake.detach()], 1))
                d_loss = 0.5 * d_loss_bce(d_real.float(), d_fake.float(), label_range)
            ctx.update("discriminator", d_loss)
        with frozen(disc), ctx.autocast():
            g_adv = g_loss_bce(disc(torch.cat([mri, fake], 1)).float()) if lambda_adv else zero
            l1 = l1_loss(fake.float(), pet)
            perc = self.extra_term(fake, pet)
            g_loss = lambda_adv * g_adv + _weight(hp, "lambda_l1") * l1 + self.extra_weight * perc
        ctx.update("generator", g_loss)
        return _detached({"g_loss": g_loss, "g_adv": g_adv, "l1": l1, self.extra_name: perc, "d_loss": d_loss})


@register_family
class WGANGPFamily(Family):
    """WGAN-GP with a conditional critic on concat(MRI, PET); generator every ``n_critic`` batches."""

    name = "wgan_gp"

    def train_step(self, mri: Tensor, pet: Tensor, ctx: StepContext) -> Losses:
        gen, critic, hp = self.nets["generator"], self.nets["discriminator"], self.hp
        n_critic = int(hp.get("n_critic", 5))

        def conditioned(img: Tensor) -> Tensor:
            return critic(torch.cat([mri, img], 1)).float()

        with ctx.autocast():
            fake = self.generate(mri)
            c_loss = d_loss_wgan(conditioned(pet), conditioned(fake.detach()))
        gp = gradient_penalty(conditioned, pet, fake.float())
        ctx.update("discriminator", c_loss + _weight(hp, "lambda_gp") * gp)
        out: dict[str, Tensor | float] = {"d_loss": c_loss, "gp": gp, "l1": l1_loss(fake.detach().float(), pet)}
        if ctx.step % n_critic == 0:
            with frozen(critic), ctx.autocast():
                g_adv = g_loss_wgan(conditioned(fake))
                l1 = l1_loss(fake.float(), pet)
                perc = self.extra_term(fake, pet)
                g_loss = _weight(hp, "lambda_adv", 1.0) * g_adv + _weight(hp, "lambda_l1", 100.0) * l1 + self.extra_weight * perc
            ctx.update("generator", g_loss)
            out.update({"g_loss": g_loss, "g_adv": g_adv, self.extra_name: perc})
        return _detached(out)


@register_family
class CycleGANFamily(Family):
    """CycleGAN: two generators, two LSGAN discriminators, cycle (and optional identity) L1."""

    name = "cyclegan"
    optimizer_groups = {
        "generator": ("generator", "generator_inv"),
        "discriminator": ("discriminator", "discriminator_inv"),
    }

    def train_step(self, mri: Tensor, pet: Tensor, ctx: StepContext) -> Losses:
        g, g_inv = self.nets["generator"], self.nets["generator_inv"]
        d, d_inv = self.nets["discriminator"], self.nets["discriminator_inv"]
        hp = self.hp
        lambda_cyc, lambda_id = _weight(hp, "lambda_cyc"), _weight(hp, "lambda_idt", 0.0)
        with ctx.autocast():
            fake_pet, fake_mri = g(mri), g_inv(pet)
            cycle = l1_loss(g_inv(fake_pet).float(), mri) + l1_loss(g(fake_mri).float(), pet)
            identity = (l1_loss(g(pet).float(), pet) + l1_loss(g_inv(mri).float(), mri)) if lambda_id > 0 else 0.0
            with frozen(d, d_inv):
                g_adv = g_loss_lsgan(d(fake_pet).float()) + g_loss_lsgan(d_inv(fake_mri).float())
            perc = self.extra_term(fake_pet, pet)
            g_loss = (_weight(hp, "lambda_adv", 1.0) * g_adv + lambda_cyc * cycle
                      + lambda_cyc * lambda_id * identity + self.extra_weight * perc)
        ctx.update("generator", g_loss)
        with ctx.autocast():
            d_loss = (d_loss_lsgan(d(pet).float(), d(fake_pet.detach()).float())
                      + d_loss_lsgan(d_inv(mri).float(), d_inv(fake_mri.detach()).float()))
        ctx.update("discriminator", d_loss)
        return _detached({"g_loss": g_loss, "g_adv": g_adv, "cycle": cycle, "identity": identity,
                          self.extra_name: perc, "l1": l1_loss(fake_pet.detach().float(), pet), "d_loss": d_loss})


@register_family
class SupervisedFamily(Family):
    """Direct regression (3D U-Net, UNETR, SwinUNETR): the extra term is the loss."""

    name = "supervised"
    optimizer_groups = {"generator": ("generator",)}

    def __init__(self, nets: dict[str, nn.Module], hp: dict[str, Any], dims: int = 3,
                 extra_loss: nn.Module | None = None) -> None:
        if extra_loss is None:
            from mri2tau.losses.ssim3d import SynthesisLoss3D

            extra_loss = SynthesisLoss3D(perceptual=None)
        super().__init__(nets, hp, dims, extra_loss)
        self.extra_weight = 1.0

    def train_step(self, mri: Tensor, pet: Tensor, ctx: StepContext) -> Losses:
        with ctx.autocast():
            fake = self.generate(mri)
        terms_of = getattr(self.extra_loss, "terms", None)
        terms = terms_of(fake.float(), pet) if terms_of else {"total": self.extra_loss(fake.float(), pet)}
        ctx.update("generator", terms["total"])
        return _detached({"g_loss": terms["total"], **{k: v for k, v in terms.items() if k != "total"},
                          "l1": l1_loss(fake.detach().float(), pet)})
