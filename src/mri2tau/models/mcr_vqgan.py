"""MCR-VQGAN (multi-scale conv + CBAM + residual VQGAN) and its Table I ablations, as one class.

Generator (paper preset; all convs on (B, C, H, W) slices, H and W divisible by 8):

    7x7 conv stem 1 -> 64, IN, ReLU
    3 down stages 64 -> 128 -> 256 -> 512: conv stride 2 (multi-scale if ``multiscale``), IN, ReLU,
        CBAM (if ``cbam``)
    6 encoder ResBlocks at 512 (if ``resblocks``): conv, IN, ReLU, dropout 0.5, conv, IN,
        CBAM (if ``cbam``); convs multi-scale if ``multiscale``
    1x1 conv 512 -> 256, VectorQuantizerEMA (1024 x 256, decay 0.99, β 0.25), 1x1 conv 256 -> 512
    6 decoder ResBlocks at 512 (if ``resblocks``): plain 3x3, same layout
    3 up stages 512 -> 256 -> 128 -> 64: 4x4 transposed conv stride 2, 3x3 conv, IN, ReLU,
        CBAM (if ``cbam``)
    7x7 conv 64 -> 1, tanh

forward(mri (B, 1, H, W) in [-1, 1]) -> (fake_pet (B, 1, H, W) in [-1, 1], vq_loss scalar).
The latent grid is (H/8, W/8); ``indices`` of the last forward are kept in ``last_indices``.

Multi-scale branch widths (the paper does not give them): each of the three branches (3x3, 5x5,
7x7) has ``branch_fraction`` x C_out channels, default 5/32, i.e. 80 channels per kernel at 512
(40 at 256, 20 at 128), so the concatenation has 240 channels before the 1x1 fusion back to 512.
With it the paper-preset generator has 77.24 M parameters (paper: ≈ 75.0 M, +3 %); the
PatchDiscriminator adds 0.66 M. Generator counts of the four Table I rows (paper preset):
vqgan 5.35 M, mcr_vqgan_ms 6.19 M, mcr_vqgan_ms_res 76.79 M, mcr_vqgan 77.24 M.

Table I ablations are flags on the same class (registry names, paper preset, generator only):

    vqgan             multiscale=False resblocks=False cbam=False  "Standard VQGAN"
    mcr_vqgan_ms      multiscale=True  resblocks=False cbam=False  "VQGAN + Multi-Conv"
    mcr_vqgan_ms_res  multiscale=True  resblocks=True  cbam=False  "VQGAN + Multi-Conv + ResNet Blocks"
    mcr_vqgan         multiscale=True  resblocks=True  cbam=True   "MCR-VQGAN (Full)"

Without ``resblocks`` the bottleneck has no residual blocks (encoder -> 1x1 -> VQ -> 1x1 ->
decoder); that keeps the standard VQGAN within the paper's 4.2-22.7 M baseline range.
The discriminator is the paper's :class:`PatchDiscriminator` (64, 128, 256; IN; LeakyReLU 0.2).
"""

from __future__ import annotations

from typing import Any

from monai.networks.layers.factories import Conv
from torch import Tensor, nn

from mri2tau.models.blocks import CBAM, PatchDiscriminator, ResBlock, VectorQuantizerEMA, conv_norm_act, make_conv
from mri2tau.models.defaults import PRESETS, VQGAN_ABLATIONS
from mri2tau.models.registry import ModelSpec, register


def _branch_width(channels: int, fraction: float) -> int:
    return max(int(round(channels * fraction)), 1)


class MCRVQGAN(nn.Module):
    """The MCR-VQGAN generator; flags select the Table I ablation row (see module docstring)."""

    def __init__(
        self,
        in_channels: int = 1,
        out_channels: int = 1,
        base_channels: int = 64,
        n_down: int = 3,
        n_res_blocks: int = 6,
        codebook_size: int = 1024,
        embedding_dim: int = 256,
        multiscale: bool = True,
        resblocks: bool = True,
        cbam: bool = True,
        dropout: float = 0.5,
        branch_fraction: float = 5 / 32,
        cbam_reduction: int = 16,
        ema_decay: float = 0.99,
        commitment_beta: float = 0.25,
    ) -> None:
        super().__init__()
        self.downsample_factor = 2**n_down
        conv = Conv[Conv.CONV, 2]
        widths = [base_channels * 2**i for i in range(n_down + 1)]  # 64, 128, 256, 512
        bottleneck = widths[-1]

        def attention(channels: int) -> list[nn.Module]:
            return [CBAM(channels, cbam_reduction)] if cbam else []

        encoder: list[nn.Module] = [conv_norm_act(2, in_channels, base_channels, kernel_size=7)]
        for c_in, c_out in zip(widths[:-1], widths[1:], strict=True):
            encoder += [
                make_conv(c_in, c_out, multiscale, stride=2, branch_channels=_branch_width(c_out, branch_fraction)),
                nn.InstanceNorm2d(c_out),
                nn.ReLU(),
                *attention(c_out),
            ]
        n_blocks = n_res_blocks if resblocks else 0
        encoder += [
            ResBlock(
                bottleneck,
                multiscale=multiscale,
                dropout=dropout,
                cbam=cbam,
                branch_channels=_branch_width(bottleneck, branch_fraction),
                cbam_reduction=cbam_reduction,
            )
            for _ in range(n_blocks)
        ]
        self.encoder = nn.Sequential(*encoder)
        self.pre_quant = conv(bottleneck, embedding_dim, kernel_size=1)
        self.quantizer = VectorQuantizerEMA(codebook_size, embedding_dim, ema_decay, commitment_beta=commitment_beta)
        self.post_quant = conv(embedding_dim, bottleneck, kernel_size=1)

        decoder: list[nn.Module] = [
            ResBlock(bottleneck, multiscale=False, dropout=dropout, cbam=cbam, cbam_reduction=cbam_reduction)
            for _ in range(n_blocks)
        ]
        for c_in, c_out in zip(widths[:0:-1], widths[-2::-1], strict=True):
            decoder += [
                conv_norm_act(2, c_in, c_out, kernel_size=4, stride=2, act=None, norm=None, transposed=True),
                conv_norm_act(2, c_out, c_out, kernel_size=3),
                *attention(c_out),
            ]
        decoder += [conv(base_channels, out_channels, kernel_size=7, padding=3), nn.Tanh()]
        self.decoder = nn.Sequential(*decoder)
        self.last_indices: Tensor | None = None

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(B, 1, H, W) MRI in [-1, 1] -> ((B, 1, H, W) synthetic PET in [-1, 1], VQ commitment loss)."""
        if x.shape[-1] % self.downsample_factor or x.shape[-2] % self.downsample_factor:
            raise ValueError(f"H and W must be divisible by {self.downsample_factor}, got {tuple(x.shape)}")
        z_q, vq_loss, indices = self.quantizer(self.pre_quant(self.encoder(x)))
        self.last_indices = indices
        return self.decoder(self.post_quant(z_q)), vq_loss


_ARCH_KEYS = (
    "base_channels",
    "n_down",
    "n_res_blocks",
    "codebook_size",
    "embedding_dim",
    "multiscale",
    "resblocks",
    "cbam",
    "dropout",
    "branch_fraction",
    "cbam_reduction",
    "ema_decay",
    "commitment_beta",
)


def build_vqgan_family(hparams: dict[str, Any]) -> dict[str, nn.Module]:
    """{"generator": MCRVQGAN, "discriminator": PatchDiscriminator} from hyper-parameters."""
    generator = MCRVQGAN(**{key: hparams[key] for key in _ARCH_KEYS if key in hparams})
    discriminator = PatchDiscriminator(1, tuple(hparams.get("disc_channels", (64, 128, 256))))
    return {"generator": generator, "discriminator": discriminator}


# Table I rows (name -> (architecture flags, description)); defaults in mri2tau.models.defaults.
for _name, (_flags, _description) in VQGAN_ABLATIONS.items():
    register(ModelSpec(name=_name, dims=2, family="vqgan", build=build_vqgan_family, defaults=PRESETS[_name],
                       description=_description))
