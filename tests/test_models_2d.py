"""2D synthesis networks: blocks, the VQ-EMA codebook step, registry models, parameter counts, CLI."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mri2tau import cli
from mri2tau.models import registry
from mri2tau.models.blocks import (
    CBAM,
    MultiScaleConv,
    PatchDiscriminator,
    ResBlock,
    UNetGenerator,
    VectorQuantizerEMA,
)

torch.set_num_threads(1)

MODELS_2D = ["cgan", "cyclegan", "mcr_vqgan", "mcr_vqgan_ms", "mcr_vqgan_ms_res", "vqgan", "wgan_gp"]
CONDITIONAL = {"pix2pix", "wgan_gp"}  # discriminator sees (MRI, PET)


def _generate(generator: nn.Module, mri: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(fake, vq_loss) for every generator (non-VQ generators return a tensor: vq_loss 0)."""
    out = generator(mri)
    return out if isinstance(out, tuple) else (out, mri.new_zeros(()))


def _toy_pair(size: int = 32, batch: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    """Smooth MRI-like input and a PET-like target that is a fixed nonlinear map of it."""
    gen = torch.Generator().manual_seed(0)
    coarse = torch.rand(batch, 1, size // 8, size // 8, generator=gen)
    mri = F.interpolate(coarse, size=(size, size), mode="bilinear", align_corners=False) * 2 - 1
    pet = torch.tanh(2 * mri.roll(2, dims=-1)) * 0.8 - 0.1
    return mri, pet


def test_registry_lists_every_2d_model() -> None:
    names = [name for name in registry.available() if registry.get(name).dims == 2]
    assert sorted(names) == MODELS_2D


# --- blocks ------------------------------------------------------------------------------------


def _nonzero_radius(out: torch.Tensor) -> int:
    """Half-width of the region where a response to a centred impulse differs from the bias."""
    response = (out - out[..., :1, :1]).abs().sum(dim=(0, 1)) > 1e-7
    rows = response.any(dim=1).nonzero().flatten()
    return int((rows.max() - rows.min()).item() // 2)


def test_multiscale_conv_receptive_field_and_shapes() -> None:
    torch.manual_seed(0)
    impulse = torch.zeros(1, 2, 21, 21)
    impulse[..., 10, 10] = 1.0
    assert _nonzero_radius(MultiScaleConv(2, 6, branch_channels=2)(impulse)) == 3  # 7x7 branch
    assert _nonzero_radius(MultiScaleConv(2, 6, branch_channels=2, kernel_sizes=(3,))(impulse)) == 1
    block = MultiScaleConv(4, 8, branch_channels=(4, 2, 1), stride=2)
    assert [b.out_channels for b in block.branches] == [4, 2, 1] and block.fuse.in_channels == 7
    assert block(torch.randn(2, 4, 16, 16)).shape == (2, 8, 8, 8)
    block3d = MultiScaleConv(2, 4, spatial_dims=3, stride=2)
    assert block3d(torch.randn(1, 2, 8, 8, 8)).shape == (1, 4, 4, 4, 4)


def test_cbam_only_rescales_and_resblock_keeps_shape() -> None:
    torch.manual_seed(0)
    x = torch.randn(2, 32, 8, 8)
    cbam = CBAM(32)
    assert cbam.channel.mlp[0].out_channels == 2  # reduction 16
    assert cbam.spatial.conv.kernel_size == (7, 7)
    out = cbam(x)
    assert out.shape == x.shape
    assert (out.abs() <= x.abs() + 1e-6).all() and (torch.sign(out) == torch.sign(x)).all()
    block = ResBlock(32, multiscale=True, dropout=0.5, cbam=True)
    assert block(x).shape == x.shape
    assert any(isinstance(m, nn.Dropout) for m in block.modules())
    assert CBAM(8, reduction=4, spatial_dims=3)(torch.randn(1, 8, 4, 4, 4)).shape == (1, 8, 4, 4, 4)


@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_patch_discriminator_shapes(spatial_dims: int) -> None:
    disc = PatchDiscriminator(in_channels=2, channels=(8, 16, 32), spatial_dims=spatial_dims)
    x = torch.randn((1, 2) + (32,) * spatial_dims)
    assert disc(x).shape == (1, 1) + (3,) * spatial_dims
    convs = [m for m in disc.modules() if isinstance(m, (nn.Conv2d, nn.Conv3d))]
    assert [c.out_channels for c in convs] == [8, 16, 32, 1]
    assert all(c.kernel_size == (4,) * spatial_dims for c in convs) and [c.stride[0] for c in convs] == [2, 2, 2, 1]
    assert not any("norm" in type(m).__name__.lower() for m in PatchDiscriminator(1, norm=None).modules())


def test_unet_generator_matches_pix2pix_size() -> None:
    with torch.device("meta"):
        assert registry.count_parameters(UNetGenerator(1, 1, num_downs=8, ngf=64)) == 54_403_457  # pix2pix unet_256 (IN)
    with pytest.raises(ValueError, match="divisible by 32"):
        UNetGenerator(1, 1, num_downs=5, ngf=4)(torch.zeros(1, 1, 48, 40))


# --- vector quantiser --------------------------------------------------------------------------


def test_vector_quantizer_ema_step_matches_hand_computation() -> None:
    decay, eps, beta = 0.9, 1e-5, 0.25
    vq = VectorQuantizerEMA(3, 2, decay=decay, eps=eps, commitment_beta=beta)
    codebook = [[0.0, 0.0], [1.0, 1.0], [5.0, 5.0]]
    vq.codebook.copy_(torch.tensor(codebook))
    vq.embed_sum.copy_(torch.tensor(codebook))
    vectors = [[0.1, -0.1], [0.9, 1.2], [1.2, 0.8], [-0.2, 0.1]]  # nearest: 0, 1, 1, 0; code 2 unused
    z = torch.tensor(vectors).t().reshape(1, 2, 1, 4).requires_grad_(True)

    z_q, commitment, indices = vq(z)

    assert indices.tolist() == [[[0, 1, 1, 0]]]
    expected_q = torch.tensor([codebook[i] for i in (0, 1, 1, 0)]).t().reshape(1, 2, 1, 4)
    assert torch.allclose(z_q, expected_q)  # quantised with the codebook before the update
    sq = sum((a - b) ** 2 for v, i in zip(vectors, (0, 1, 1, 0)) for a, b in zip(v, codebook[i]))
    assert commitment.item() == pytest.approx(beta * sq / 8)

    # hand-computed EMA step (cluster sizes and sums start at 1 and at the codebook)
    counts = [2, 2, 0]
    sums = [[-0.1, 0.0], [2.1, 2.0], [0.0, 0.0]]
    cluster = [decay * 1 + (1 - decay) * n for n in counts]  # 1.1, 1.1, 0.9
    embed_sum = [[decay * e + (1 - decay) * s for e, s in zip(ec, sc)] for ec, sc in zip(codebook, sums)]
    total = sum(cluster)
    smoothed = [(c + eps) / (total + 3 * eps) * total for c in cluster]
    new_codebook = [[v / n for v in row] for row, n in zip(embed_sum, smoothed)]
    assert vq.cluster_size.tolist() == pytest.approx(cluster)
    assert vq.embed_sum.flatten().tolist() == pytest.approx([v for row in embed_sum for v in row])
    assert vq.codebook.flatten().tolist() == pytest.approx([v for row in new_codebook for v in row], rel=1e-6)
    assert new_codebook[1] == pytest.approx([1.11 / 1.1, 1.10 / 1.1], rel=1e-4)

    # straight-through: d(sum z_q)/dz = 1; the commitment term adds 2β(z - e)/N
    (z_q.sum() + commitment).backward()
    expected_grad = 1 + 2 * beta * (z.detach() - expected_q) / 8
    assert torch.allclose(z.grad, expected_grad)
    assert not vq.codebook.requires_grad


def test_vector_quantizer_frozen_in_eval_mode() -> None:
    vq = VectorQuantizerEMA(8, 4).eval()
    before = {name: buf.clone() for name, buf in vq.named_buffers()}
    vq(torch.randn(2, 4, 3, 3))
    assert all(torch.equal(before[name], buf) for name, buf in vq.named_buffers())
    vq.train()(torch.randn(2, 4, 3, 3))
    assert not torch.equal(before["cluster_size"], vq.cluster_size)


# --- registered models -------------------------------------------------------------------------


@pytest.mark.parametrize("name", MODELS_2D)
def test_forward_shapes_demo_preset(name: str) -> None:
    torch.manual_seed(0)
    spec = registry.get(name)
    nets = registry.build(name, "demo")
    mri, pet = _toy_pair()
    out = nets["generator"](mri)
    if spec.family == "vqgan":
        assert isinstance(out, tuple) and out[1].dim() == 0 and out[1].item() >= 0
        out = out[0]
    assert out.shape == (2, 1, 32, 32) and out.abs().max() <= 1.0
    disc_in = torch.cat([mri, out], 1) if spec.family in CONDITIONAL else out
    assert nets["discriminator"](disc_in).shape == (2, 1, 3, 3)
    if spec.family == "cyclegan":
        assert nets["generator_inv"](pet).shape == (2, 1, 32, 32)
        assert nets["discriminator_inv"](mri).shape == (2, 1, 3, 3)
        assert nets["generator"] is not nets["generator_inv"]


@pytest.mark.parametrize("name", MODELS_2D)
def test_tiny_model_overfits_one_batch(name: str) -> None:
    """60 Adam steps on one batch halve the generator's L1 reconstruction loss (plus VQ loss)."""
    torch.manual_seed(0)
    generator = registry.build(name, "demo", dropout=0.0)["generator"].train()
    mri, pet = _toy_pair()
    optimizer = torch.optim.Adam(generator.parameters(), lr=2e-3)
    with torch.no_grad():
        initial = F.l1_loss(_generate(generator, mri)[0], pet).item()
    for _ in range(60):
        fake, vq_loss = _generate(generator, mri)
        loss = F.l1_loss(fake, pet) + vq_loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        final = F.l1_loss(_generate(generator, mri)[0], pet).item()
    assert math.isfinite(final) and final <= 0.5 * initial, f"{name}: L1 {initial:.4f} -> {final:.4f}"


def _generator_count(name: str, **overrides) -> int:
    with torch.device("meta"):
        return registry.count_parameters(registry.build(name, "paper", **overrides)["generator"])


def test_paper_mcr_vqgan_parameter_count_and_ablation_order() -> None:
    full = _generator_count("mcr_vqgan")
    assert 0.85 * 75e6 <= full <= 1.15 * 75e6, full
    rows = [_generator_count(name) for name in ("vqgan", "mcr_vqgan_ms", "mcr_vqgan_ms_res", "mcr_vqgan")]
    assert rows == sorted(set(rows)), rows  # strictly increasing
    # the rows are flags on one class: the full model with all flags off is the standard VQGAN
    assert _generator_count("mcr_vqgan", multiscale=False, resblocks=False, cbam=False) == rows[0]
    assert rows[0] <= 22.7e6  # within the paper's baseline range


def test_ablation_flags_select_blocks() -> None:
    expected = {
        "vqgan": (False, False, False),
        "mcr_vqgan_ms": (True, False, False),
        "mcr_vqgan_ms_res": (True, True, False),
        "mcr_vqgan": (True, True, True),
    }
    for name, flags in expected.items():
        generator = registry.build(name, "demo")["generator"]
        present = tuple(any(isinstance(m, kind) for m in generator.modules()) for kind in (MultiScaleConv, ResBlock, CBAM))
        assert present == flags, name
    decoder_blocks = [m for m in registry.build("mcr_vqgan", "demo")["generator"].decoder if isinstance(m, ResBlock)]
    assert decoder_blocks and not any(isinstance(m, MultiScaleConv) for b in decoder_blocks for m in b.modules())


def test_paper_defaults_follow_spec() -> None:
    vq = registry.get("mcr_vqgan").hparams("paper")
    assert (vq["codebook_size"], vq["embedding_dim"], vq["dropout"], vq["batch_size"]) == (1024, 256, 0.5, 2)
    assert (vq["optimizer"], vq["betas"], vq["lr"], vq["epochs"]) == ("adamw", [0.5, 0.999], 2e-4, 500)
    weights = [vq[k] for k in ("lambda_adv", "lambda_rec", "lambda_perc", "lambda_vq", "r1_gamma", "instance_noise")]
    assert weights == [1.0, 10.0, 10.0, 5.0, 10.0, 0.1]
    assert registry.get("vqgan").hparams("paper")["optimizer"] == "adamw"
    for name, batch in (("cgan", 4), ("wgan_gp", 4), ("cyclegan", 2)):
        hp = registry.get(name).hparams("paper")
        assert (hp["batch_size"], hp["optimizer"], hp["lr"]) == (batch, "adam", 2e-4)
    assert registry.get("cgan").hparams("paper")["lambda_l1"] == 100.0
    assert registry.get("wgan_gp").hparams("paper")["lambda_gp"] == 10.0
    assert registry.get("cyclegan").hparams("paper")["lambda_cyc"] == 10.0
    with torch.device("meta"):
        nets = registry.build("cyclegan", "paper")
    assert set(nets) == {"generator", "generator_inv", "discriminator", "discriminator_inv"}


def test_models_cli_prints_every_model(capsys) -> None:
    assert cli.main(["models", "--preset", "paper"]) == 0
    lines = capsys.readouterr().out.splitlines()
    rows = {line.split()[0]: line.split() for line in lines[2:]}
    assert set(rows) == set(registry.available())
    for name in MODELS_2D:
        assert rows[name][1] == "2D" and rows[name][4] == "M" and float(rows[name][3]) > 0
    assert float(rows["mcr_vqgan"][3]) == pytest.approx(_generator_count("mcr_vqgan") / 1e6, abs=0.01)


def test_vector_quantizer_searches_in_full_precision_under_autocast() -> None:
    torch.manual_seed(0)
    vq = VectorQuantizerEMA(512, 16).eval()
    z = torch.randn(2, 16, 8, 8)
    _, _, reference = vq(z)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        z_q, commitment, indices = vq(z.bfloat16())
    assert torch.equal(indices, vq(z.bfloat16().float())[2]) and z_q.dtype == torch.bfloat16
    assert (indices == reference).float().mean() > 0.9  # only bf16 input rounding can change a code
