"""WGAN-GP baseline (Gulrajani et al. 2017) for paired MRI -> PET translation.

generator: the same :class:`~mri2tau.models.blocks.UNetGenerator` as the cGAN (returns a tensor).
discriminator (the critic): conditional :class:`~mri2tau.models.blocks.PatchDiscriminator` on
``torch.cat([mri, pet], 1)`` WITHOUT normalisation (no batch-coupled statistics, so the
per-sample gradient penalty is well defined) and without a sigmoid (scores, not logits).

Objective: critic E[D(fake)] − E[D(real)] + λgp·GP (λgp 10, ``n_critic`` critic steps per
generator step, 5 as in the WGAN-GP paper); generator −E[D(fake)] + λL1·L1 (100, so the
output is paired with its MRI, as for pix2pix).
"""

from __future__ import annotations

from typing import Any

from torch import nn

from mri2tau.models.blocks import PatchDiscriminator
from mri2tau.models.defaults import PRESETS
from mri2tau.models.pix2pix import build_unet_generator
from mri2tau.models.registry import ModelSpec, register


def build_wgan_gp(hparams: dict[str, Any]) -> dict[str, nn.Module]:
    """{"generator": U-Net, "discriminator": conditional PatchGAN critic without normalisation}."""
    return {
        "generator": build_unet_generator(hparams),
        "discriminator": PatchDiscriminator(2, tuple(hparams["disc_channels"]), norm=None),
    }


register(
    ModelSpec(
        name="wgan_gp",
        dims=2,
        family="wgan_gp",
        build=build_wgan_gp,
        defaults=PRESETS["wgan_gp"],
        description="WGAN-GP baseline: U-Net generator + unnormalised conditional critic, GP 10 + 100 L1",
    )
)
