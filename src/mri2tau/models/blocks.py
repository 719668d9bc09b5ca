"""Named network building blocks shared by the 2D (and, where marked, 3D) synthesis models.

Shapes use ``S`` for the spatial dimensions: (H, W) when ``spatial_dims`` is 2, (D, H, W) when
it is 3. Every block works in voxel units of the feature map it receives; none knows about mm.
Normalisation is InstanceNorm without affine parameters (per-sample statistics, so batch size 2
behaves like batch size 1, and WGAN-GP's per-sample gradients are not mixed across samples).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from monai.networks.blocks import Convolution
from monai.networks.layers.factories import Conv, Norm
from torch import Tensor, nn


def conv_norm_act(
    spatial_dims: int,
    in_channels: int,
    out_channels: int,
    kernel_size: int = 3,
    stride: int = 1,
    act: str | tuple | None = "relu",
    norm: str | None = "instance",
    transposed: bool = False,
) -> Convolution:
    """MONAI ``Convolution``: conv (or 2x transposed conv) -> InstanceNorm -> activation.

    (B, C_in, *S) -> (B, C_out, *S / stride), or (B, C_out, *S * stride) when ``transposed``
    (padding (k - 1) // 2 and the output padding that makes the size exact, e.g. k 3 or 4).
    """
    padding = (kernel_size - 1) // 2 if transposed else kernel_size // 2
    return Convolution(spatial_dims, in_channels, out_channels, strides=stride, kernel_size=kernel_size, act=act,
                       norm=norm, padding=padding, is_transposed=transposed,
                       output_padding=stride + 2 * padding - kernel_size if transposed else None)


class MultiScaleConv(nn.Module):
    """Parallel k x k convolutions (3, 5, 7) concatenated, then a 1x1 fusion conv (MCR-VQGAN Fig. 1b).

    (B, C_in, *S) -> (B, C_out, *S / stride). ``branch_channels``: output channels of each branch,
    one int for all or one per kernel (default C_out // 4). No normalisation or activation: the
    caller adds them (so the block can stand wherever a plain conv stands).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        branch_channels: int | Sequence[int] | None = None,
        kernel_sizes: Sequence[int] = (3, 5, 7),
        stride: int = 1,
        spatial_dims: int = 2,
    ) -> None:
        super().__init__()
        if branch_channels is None:
            branch_channels = max(out_channels // 4, 1)
        widths = [branch_channels] * len(kernel_sizes) if isinstance(branch_channels, int) else list(branch_channels)
        if len(widths) != len(kernel_sizes) or any(k % 2 == 0 for k in kernel_sizes):
            raise ValueError(f"need one width per odd kernel size, got {widths} for kernels {tuple(kernel_sizes)}")
        conv = Conv[Conv.CONV, spatial_dims]
        self.branches = nn.ModuleList(
            conv(in_channels, width, kernel_size=k, stride=stride, padding=k // 2)
            for width, k in zip(widths, kernel_sizes, strict=True)
        )
        self.fuse = conv(sum(widths), out_channels, kernel_size=1)

    def forward(self, x: Tensor) -> Tensor:
        return self.fuse(torch.cat([branch(x) for branch in self.branches], dim=1))


def make_conv(
    in_channels: int,
    out_channels: int,
    multiscale: bool,
    stride: int = 1,
    spatial_dims: int = 2,
    branch_channels: int | Sequence[int] | None = None,
) -> nn.Module:
    """A :class:`MultiScaleConv` or a plain 3x3 conv with the same in/out contract."""
    if multiscale:
        return MultiScaleConv(in_channels, out_channels, branch_channels, stride=stride, spatial_dims=spatial_dims)
    return Conv[Conv.CONV, spatial_dims](in_channels, out_channels, kernel_size=3, stride=stride, padding=1)


class ChannelAttention(nn.Module):
    """CBAM channel attention: sigmoid(MLP(avgpool x) + MLP(maxpool x)) * x, shared MLP C -> C/r -> C.

    (B, C, *S) -> (B, C, *S).
    """

    def __init__(self, channels: int, reduction: int = 16, spatial_dims: int = 2) -> None:
        super().__init__()
        hidden = max(channels // reduction, 1)
        conv = Conv[Conv.CONV, spatial_dims]
        self.mlp = nn.Sequential(conv(channels, hidden, kernel_size=1), nn.ReLU(), conv(hidden, channels, kernel_size=1))

    def forward(self, x: Tensor) -> Tensor:
        dims = tuple(range(2, x.dim()))
        avg = x.mean(dim=dims, keepdim=True)
        peak = x.amax(dim=dims, keepdim=True)
        return x * torch.sigmoid(self.mlp(avg) + self.mlp(peak))


class SpatialAttention(nn.Module):
    """CBAM spatial attention: sigmoid(conv_k([mean_c x, max_c x])) * x with a k x k conv (k = 7).

    (B, C, *S) -> (B, C, *S).
    """

    def __init__(self, kernel_size: int = 7, spatial_dims: int = 2) -> None:
        super().__init__()
        self.conv = Conv[Conv.CONV, spatial_dims](2, 1, kernel_size=kernel_size, padding=kernel_size // 2, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        pooled = torch.cat([x.mean(dim=1, keepdim=True), x.amax(dim=1, keepdim=True)], dim=1)
        return x * torch.sigmoid(self.conv(pooled))


class CBAM(nn.Module):
    """Convolutional Block Attention Module (Woo et al. 2018): channel then spatial attention.

    (B, C, *S) -> (B, C, *S). Reduction 16, 7x7 spatial kernel by default.
    """

    def __init__(self, channels: int, reduction: int = 16, kernel_size: int = 7, spatial_dims: int = 2) -> None:
        super().__init__()
        self.channel = ChannelAttention(channels, reduction, spatial_dims)
        self.spatial = SpatialAttention(kernel_size, spatial_dims)

    def forward(self, x: Tensor) -> Tensor:
        return self.spatial(self.channel(x))


class ResBlock(nn.Module):
    """Residual block: conv -> IN -> ReLU -> dropout -> conv -> IN [-> CBAM], plus the input.

    (B, C, *S) -> (B, C, *S). ``multiscale``: both convs are :class:`MultiScaleConv` (MCR-VQGAN
    encoder), else plain 3x3 (decoder, CycleGAN). Dropout is element-wise (as in CycleGAN's
    ResNet generator).
    """

    def __init__(
        self,
        channels: int,
        multiscale: bool = False,
        dropout: float = 0.0,
        cbam: bool = False,
        spatial_dims: int = 2,
        branch_channels: int | Sequence[int] | None = None,
        cbam_reduction: int = 16,
    ) -> None:
        super().__init__()
        norm = Norm[Norm.INSTANCE, spatial_dims]
        layers: list[nn.Module] = [
            make_conv(channels, channels, multiscale, spatial_dims=spatial_dims, branch_channels=branch_channels),
            norm(channels),
            nn.ReLU(),
        ]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        layers += [
            make_conv(channels, channels, multiscale, spatial_dims=spatial_dims, branch_channels=branch_channels),
            norm(channels),
        ]
        if cbam:
            layers.append(CBAM(channels, cbam_reduction, spatial_dims=spatial_dims))
        self.body = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


class VectorQuantizerEMA(nn.Module):
    """Vector quantiser with an exponential-moving-average codebook (van den Oord et al. 2017, App. A.1).

    forward(z: (B, D, *S)) -> (z_q (B, D, *S), commitment_loss (scalar), indices (B, *S) int64).

    - Each D-vector of ``z`` is replaced by its nearest (Euclidean) codebook row; the gradient
      passes straight through (z_q = z + sg(e - z)).
    - commitment_loss = β · mean((z - sg(e))²), β = 0.25; the codebook itself gets no gradient.
    - Training mode only, under ``torch.no_grad``: with one-hot assignments A (N x K),
      cluster_size <- γ·cluster_size + (1-γ)·Σ_n A, embed_sum <- γ·embed_sum + (1-γ)·Aᵀz,
      Laplace smoothing n_k <- (cluster_size_k + ε) / (Σ cluster_size + K·ε) · Σ cluster_size,
      codebook <- embed_sum / n_k (γ = 0.99, ε = 1e-5).
    - The EMA starts as if every code had one vector at its initial position (cluster_size = 1,
      embed_sum = codebook), so unused codes stay where they are rather than drifting to 0 or ∞.
    Distances and updates run in float32 (safe under autocast).
    """

    def __init__(
        self,
        num_embeddings: int,
        embedding_dim: int,
        decay: float = 0.99,
        eps: float = 1e-5,
        commitment_beta: float = 0.25,
    ) -> None:
        super().__init__()
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"decay must be in [0, 1), got {decay}")
        self.num_embeddings = num_embeddings
        self.embedding_dim = embedding_dim
        self.decay = decay
        self.eps = eps
        self.commitment_beta = commitment_beta
        codebook = torch.randn(num_embeddings, embedding_dim)
        self.register_buffer("codebook", codebook)
        self.register_buffer("cluster_size", torch.ones(num_embeddings))
        self.register_buffer("embed_sum", codebook.clone())

    def _nearest(self, flat: Tensor) -> Tensor:
        """Index of the nearest codebook row for each row of ``flat`` (N, D)."""
        distances = (
            flat.pow(2).sum(1, keepdim=True) - 2.0 * flat @ self.codebook.t() + self.codebook.pow(2).sum(1)[None, :]
        )
        return distances.argmin(dim=1)

    @torch.no_grad()
    def _ema_update(self, flat: Tensor, indices: Tensor) -> None:
        onehot = F.one_hot(indices, self.num_embeddings).to(flat.dtype)
        self.cluster_size.mul_(self.decay).add_(onehot.sum(0), alpha=1.0 - self.decay)
        self.embed_sum.mul_(self.decay).add_(onehot.t() @ flat, alpha=1.0 - self.decay)
        total = self.cluster_size.sum()
        smoothed = (self.cluster_size + self.eps) / (total + self.num_embeddings * self.eps) * total
        self.codebook.copy_(self.embed_sum / smoothed[:, None])

    def forward(self, z: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        if z.shape[1] != self.embedding_dim:
            raise ValueError(f"expected {self.embedding_dim} channels, got {tuple(z.shape)}")
        with torch.autocast(z.device.type, enabled=False):  # nearest-code search in full precision
            return self._quantize(z)

    def _quantize(self, z: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        z32 = z.float()
        channels_last = z32.movedim(1, -1)
        flat = channels_last.reshape(-1, self.embedding_dim)
        with torch.no_grad():
            indices = self._nearest(flat)
        quantized = self.codebook[indices].view_as(channels_last).movedim(-1, 1)
        commitment = self.commitment_beta * F.mse_loss(z32, quantized.detach())
        if self.training:
            self._ema_update(flat.detach(), indices)
        z_q = z32 + (quantized - z32).detach()
        return z_q.to(z.dtype), commitment, indices.view(channels_last.shape[:-1])


class PatchDiscriminator(nn.Module):
    """PatchGAN: 4x4 stride-2 convs (64, 128, 256) with IN + LeakyReLU(0.2), then a 1-channel map.

    (B, in_channels, *S) -> (B, 1, *S/8 - 1) logits (e.g. 256 px -> 31 x 31 patches, 32 px -> 3 x 3).
    ``in_channels`` 2 for the conditional pix2pix/WGAN-GP critics (MRI and PET concatenated);
    ``norm`` "instance" (paper) or None (WGAN-GP critic); ``spatial_dims`` 2 or 3.
    """

    def __init__(
        self,
        in_channels: int = 1,
        channels: Sequence[int] = (64, 128, 256),
        spatial_dims: int = 2,
        norm: str | None = "instance",
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        previous = in_channels
        for width in channels:
            layers.append(
                Convolution(
                    spatial_dims,
                    previous,
                    width,
                    strides=2,
                    kernel_size=4,
                    padding=1,
                    act=("leakyrelu", {"negative_slope": 0.2}),
                    norm=norm,
                )
            )
            previous = width
        layers.append(Conv[Conv.CONV, spatial_dims](previous, 1, kernel_size=4, stride=1, padding=1))
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class UNetGenerator(nn.Module):
    """pix2pix U-Net generator (Isola et al. 2017) with skip connections at every level.

    (B, in_channels, H, W) -> (B, out_channels, H, W) in [-1, 1] (tanh); H, W divisible by
    2**num_downs (8 -> 256 px with a 1x1 innermost map). Level i has ngf·min(2**i, 8) channels;
    down: [LeakyReLU 0.2] -> 4x4 conv stride 2 -> IN (no IN on the outermost and innermost);
    up: ReLU -> 4x4 transposed conv stride 2 -> IN (dropout on levels 4 .. num_downs-2, as
    pix2pix's 8·ngf blocks) -> concatenated with the matching down output; tanh at the top.
    InstanceNorm (not pix2pix's BatchNorm) so small batches behave the same in train and eval.
    """

    def __init__(
        self,
        in_channels: int = 1,
        out_channels: int = 1,
        num_downs: int = 8,
        ngf: int = 64,
        dropout: float = 0.5,
    ) -> None:
        super().__init__()
        if num_downs < 2:
            raise ValueError(f"num_downs must be >= 2, got {num_downs}")
        self.num_downs = num_downs
        widths = [ngf * min(2**i, 8) for i in range(num_downs)]
        self.downs = nn.ModuleList()
        self.ups = nn.ModuleList()
        for i, width in enumerate(widths):
            innermost, outermost = i == num_downs - 1, i == 0
            c_in = in_channels if outermost else widths[i - 1]
            self.downs.append(
                Convolution(
                    2,
                    c_in,
                    width,
                    strides=2,
                    kernel_size=4,
                    padding=1,
                    adn_ordering="N",
                    act=None,
                    norm=None if (innermost or outermost) else "instance",
                )
            )
            up_in = width if innermost else 2 * width
            up_out = out_channels if outermost else widths[i - 1]
            up_dropout = dropout if 4 <= i <= num_downs - 2 else None
            self.ups.append(
                Convolution(
                    2,
                    up_in,
                    up_out,
                    strides=2,
                    kernel_size=4,
                    padding=1,
                    output_padding=0,
                    is_transposed=True,
                    adn_ordering="ND",
                    act=None,
                    norm=None if outermost else "instance",
                    dropout=up_dropout,
                )
            )
        self.down_act = nn.LeakyReLU(0.2)
        self.up_act = nn.ReLU()

    def forward(self, x: Tensor) -> Tensor:
        step = 2**self.num_downs
        if x.shape[-1] % step or x.shape[-2] % step:
            raise ValueError(f"H and W must be divisible by {step}, got {tuple(x.shape)}")
        skips = []
        h = x
        for i, down in enumerate(self.downs):
            h = down(h if i == 0 else self.down_act(h))
            skips.append(h)
        for i in reversed(range(self.num_downs)):
            h = self.ups[i](self.up_act(h))
            if i > 0:
                h = torch.cat([h, skips[i - 1]], dim=1)
        return torch.tanh(h)
