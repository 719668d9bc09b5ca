"""CycleGAN baseline (Zhu et al. 2017): two ResNet generators, two PatchGANs, λcyc = 10.

build returns ``generator`` (MRI -> PET), ``generator_inv`` (PET -> MRI), ``discriminator``
(real vs fake PET) and ``discriminator_inv`` (real vs fake MRI); generators return tensors in
[-1, 1], discriminators (unconditional, 1 input channel) patch scores for the least-squares
losses. Identity loss weight ``lambda_idt`` defaults to 0: MRI and PET are different
modalities, so G(PET) ≈ PET is not a meaningful constraint here.

Paper preset: ngf 64 and 9 residual blocks (CycleGAN's 256 px generator): 11.37 M parameters
per generator, 22.73 M for the pair — the top of the paper's 4.2-22.7 M baseline range.
"""

from __future__ import annotations

from typing import Any

from monai.networks.layers.factories import Conv
from torch import Tensor, nn

from mri2tau.models.blocks import PatchDiscriminator, ResBlock, conv_norm_act
from mri2tau.models.defaults import PRESETS
from mri2tau.models.registry import ModelSpec, register


class ResnetGenerator(nn.Module):
    """Johnson-style ResNet generator used by CycleGAN.

    (B, in_channels, H, W) -> (B, out_channels, H, W) in [-1, 1]; H, W divisible by 4.
    7x7 conv (ngf), IN, ReLU -> 2 stride-2 3x3 convs (2·ngf, 4·ngf) -> ``n_blocks`` plain
    :class:`ResBlock` at 4·ngf -> 2 transposed 3x3 stride-2 convs (2·ngf, ngf) -> 7x7 conv, tanh.
    (Zero padding instead of CycleGAN's reflection padding; same parameter count.)
    """

    def __init__(
        self, in_channels: int = 1, out_channels: int = 1, ngf: int = 64, n_blocks: int = 9, dropout: float = 0.0
    ) -> None:
        super().__init__()
        self.net = nn.Sequential(
            conv_norm_act(2, in_channels, ngf, kernel_size=7),
            conv_norm_act(2, ngf, 2 * ngf, stride=2),
            conv_norm_act(2, 2 * ngf, 4 * ngf, stride=2),
            *(ResBlock(4 * ngf, dropout=dropout) for _ in range(n_blocks)),
            conv_norm_act(2, 4 * ngf, 2 * ngf, kernel_size=3, stride=2, transposed=True),
            conv_norm_act(2, 2 * ngf, ngf, kernel_size=3, stride=2, transposed=True),
            Conv[Conv.CONV, 2](ngf, out_channels, kernel_size=7, padding=3),
            nn.Tanh(),
        )

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[-1] % 4 or x.shape[-2] % 4:
            raise ValueError(f"H and W must be divisible by 4, got {tuple(x.shape)}")
        return self.net(x)


def build_cyclegan(hparams: dict[str, Any]) -> dict[str, nn.Module]:
    """Two generators (MRI -> PET, PET -> MRI) and two unconditional PatchGANs (PET, MRI)."""

    def generator() -> ResnetGenerator:
        return ResnetGenerator(1, 1, ngf=hparams["ngf"], n_blocks=hparams["n_blocks"], dropout=hparams["dropout"])

    disc_channels = tuple(hparams["disc_channels"])
    return {
        "generator": generator(),
        "generator_inv": generator(),
        "discriminator": PatchDiscriminator(1, disc_channels),
        "discriminator_inv": PatchDiscriminator(1, disc_channels),
    }


register(
    ModelSpec(
        name="cyclegan",
        dims=2,
        family="cyclegan",
        build=build_cyclegan,
        defaults=PRESETS["cyclegan"],
        description="CycleGAN baseline: two ResNet generators + two PatchGANs, LSGAN + 10 cycle L1",
    )
)
