"""cGAN baseline: pix2pix (Isola et al. 2017) U-Net generator + conditional PatchGAN, λL1 = 100.

generator: :class:`~mri2tau.models.blocks.UNetGenerator`, (B, 1, H, W) MRI -> (B, 1, H, W) PET,
both in [-1, 1] (returns a tensor, not a tuple). discriminator:
:class:`~mri2tau.models.blocks.PatchDiscriminator` with 2 input channels, fed
``torch.cat([mri, pet], 1)`` (conditional), returning patch logits for the BCE losses.

Paper preset: 8 downsamplings (256 px), ngf 32 -> 13.6 M generator parameters. pix2pix's own
unet_256 has ngf 64 (54.4 M; ``ngf: 64`` restores it); the MCR-VQGAN paper reports 4.2-22.7 M
for all its baselines, so the narrower width is the one consistent with the paper we reproduce.

Baselines keep their own papers' objectives, so ``lambda_perc`` is 0 (no VGG term) for cGAN,
WGAN-GP and CycleGAN; set it > 0 to give a baseline the perceptual term as well.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from mri2tau.models.blocks import PatchDiscriminator, UNetGenerator
from mri2tau.models.defaults import PRESETS
from mri2tau.models.registry import ModelSpec, register


def build_unet_generator(hparams: dict[str, Any]) -> UNetGenerator:
    """The U-Net generator (1 -> 1 channel) from ``num_downs``, ``ngf`` and ``dropout``."""
    return UNetGenerator(1, 1, num_downs=hparams["num_downs"], ngf=hparams["ngf"], dropout=hparams["dropout"])


def build_pix2pix(hparams: dict[str, Any]) -> dict[str, nn.Module]:
    """{"generator": U-Net, "discriminator": conditional PatchGAN (MRI, PET) with IN}."""
    return {
        "generator": build_unet_generator(hparams),
        "discriminator": PatchDiscriminator(2, tuple(hparams["disc_channels"])),
    }


register(
    ModelSpec(
        name="cgan",
        dims=2,
        family="pix2pix",
        build=build_pix2pix,
        defaults=PRESETS["cgan"],
        description="cGAN baseline: pix2pix U-Net + conditional PatchGAN, BCE + 100 L1",
    )
)
