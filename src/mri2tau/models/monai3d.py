"""3D MRI -> tau PET synthesis models (Moon et al., SPEC §4): MONAI nets in the model registry.

Every generator maps a template-space T1 volume (B, 1, X, Y, Z) in [-1, 1] to a PET volume of
the same shape (X = R, Y = A, Z = S voxel axes, see :mod:`mri2tau.losses.cyclic`). Sizes:

* ``unet3d``: MONAI ``UNet`` (channels 64-128-256-512-1024, strides 2, dropout 0.2, instance
  norm, PReLU; as the authors' code); every side a multiple of 2**len(strides) (16).
* ``unetr``: MONAI ``UNETR``; fixed ``image_size`` (every side a multiple of 16, the ViT patch).
* ``swinunetr``: MONAI ``SwinUNETR``; every side a multiple of 32 and >= 64 (the 1/32
  bottleneck is instance-normalised and needs more than one voxel).
* ``pix2pix3d``: the 3D U-Net generator + a conditional 3D PatchGAN (MRI and PET concatenated).
* ``cyclegan3d``: two 3D U-Net generators (MRI -> PET, PET -> MRI) + two 3D PatchGANs.

Output layer (``output_activation``): ``linear`` for the supervised nets (the authors' MONAI
UNet has no output activation; the synthesis stage clips to [-1, 1]) and ``tanh`` for the GAN
generators (pix2pix / CycleGAN convention, bounded like the images the discriminator sees).

Training hyper-parameters (read by the training loop): ``epochs``, ``batch_size``, ``lr``,
``optimizer`` (Adam), ``betas``, ``scheduler`` (cosine) and for the GANs ``lambda_adv``,
``lambda_l1`` (pix2pix) / ``lambda_cyc`` (CycleGAN) and ``lambda_synthesis``, the weight of the
3D synthesis objective α·MSE + β·(1−SSIM) + γ·perceptual
(:class:`mri2tau.losses.ssim3d.SynthesisLoss3D`, built from ``hp["perceptual"]`` = config
section ``perceptual`` by :mod:`mri2tau.train.steps3d`) added to the generator loss. For the
supervised family that objective is the whole loss. ``image_size`` (X, Y, Z) is the volume box
(:mod:`mri2tau.data.volumes`); the builders check it fits the network.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from torch import nn

from mri2tau.models.defaults import PRESETS
from mri2tau.models.registry import ModelSpec, register


def check_image_size(hp: dict[str, Any], multiple: int, minimum: int = 1) -> None:
    """Raise ``ValueError`` unless every side of ``hp["image_size"]`` is a multiple of ``multiple`` and >= ``minimum``."""
    size = [int(n) for n in hp.get("image_size", [])]
    if any(n % multiple or n < minimum for n in size):
        raise ValueError(
            f"volume size {size} does not fit this network: every side must be a multiple of {multiple} "
            f"and >= {minimum} voxels; set volumes.pad_multiple (or volumes.shape) accordingly"
        )


def unet3d_generator(hp: dict[str, Any]) -> nn.Module:
    """MONAI 3D ``UNet`` (B, 1, X, Y, Z) -> (B, 1, X, Y, Z), optional tanh output."""
    from monai.networks.nets import UNet

    check_image_size(hp, 2 ** len(hp["strides"]))
    return _generator(UNet, hp, channels=tuple(hp["channels"]), strides=tuple(hp["strides"]),
                      num_res_units=int(hp.get("num_res_units", 0)), dropout=float(hp.get("dropout", 0.0)))


def _generator(net_class: type[nn.Module], hp: dict[str, Any], **kwargs: Any) -> nn.Module:
    """``net_class(spatial_dims=3, in_channels=1, out_channels=1, **kwargs)`` with ``hp["output_activation"]``
    (``linear``: the net itself; ``tanh``: followed by ``nn.Tanh``)."""
    net = net_class(spatial_dims=3, in_channels=1, out_channels=1, **kwargs)
    activation = hp.get("output_activation", "linear")
    if activation == "linear":
        return net
    if activation == "tanh":
        return nn.Sequential(net, nn.Tanh())
    raise ValueError(f"output_activation must be 'linear' or 'tanh', got {activation!r}")


def _patch_discriminator(in_channels: int, hp: dict[str, Any]) -> nn.Module:
    from mri2tau.models.blocks import PatchDiscriminator

    return PatchDiscriminator(in_channels, tuple(hp["disc_channels"]), spatial_dims=3)


def build_unet3d(hp: dict[str, Any]) -> dict[str, nn.Module]:
    """``{"generator": 3D U-Net}``."""
    return {"generator": unet3d_generator(hp)}


def build_unetr(hp: dict[str, Any]) -> dict[str, nn.Module]:
    """``{"generator": UNETR}`` for volumes of exactly ``image_size`` (X, Y, Z)."""
    from monai.networks.nets import UNETR

    check_image_size(hp, 16)  # MONAI UNETR's fixed 16^3 ViT patch
    return {"generator": _generator(
        UNETR, hp, img_size=tuple(hp["image_size"]), feature_size=int(hp["feature_size"]),
        hidden_size=int(hp["hidden_size"]), mlp_dim=int(hp["mlp_dim"]), num_heads=int(hp["num_heads"]),
        dropout_rate=float(hp.get("dropout", 0.0)))}


def build_swinunetr(hp: dict[str, Any]) -> dict[str, nn.Module]:
    """``{"generator": SwinUNETR}`` (sides multiples of 32, >= 64)."""
    from monai.networks.nets import SwinUNETR

    check_image_size(hp, 32, minimum=64)
    return {"generator": _generator(
        SwinUNETR, hp, feature_size=int(hp["feature_size"]), depths=tuple(hp["depths"]),
        num_heads=tuple(hp["num_heads"]), drop_rate=float(hp.get("dropout", 0.0)),
        use_checkpoint=bool(hp.get("gradient_checkpointing", False)))}


def build_pix2pix3d(hp: dict[str, Any]) -> dict[str, nn.Module]:
    """3D U-Net generator + conditional 3D PatchGAN on cat(MRI, PET) (2 channels)."""
    return {"generator": unet3d_generator(hp), "discriminator": _patch_discriminator(2, hp)}


def build_cyclegan3d(hp: dict[str, Any]) -> dict[str, nn.Module]:
    """MRI -> PET and PET -> MRI 3D U-Nets, PatchGANs on PET (``discriminator``) and MRI (``_inv``)."""
    return {
        "generator": unet3d_generator(hp),
        "generator_inv": unet3d_generator(hp),
        "discriminator": _patch_discriminator(1, hp),
        "discriminator_inv": _patch_discriminator(1, hp),
    }


@contextlib.contextmanager
def parameters_on_meta() -> Iterator[None]:
    """Build modules with parameters and buffers moved to the ``meta`` device as they register.

    For counting parameters of paper-size nets without allocating them. Unlike
    ``torch.device("meta")`` it lets constructors compute on real tensors (SwinUNETR calls
    ``.item()``); only one layer's tensors exist at a time.
    """
    register_parameter, register_buffer = nn.Module.register_parameter, nn.Module.register_buffer

    def to_meta_parameter(self: nn.Module, name: str, param: nn.Parameter | None) -> None:
        if param is not None:
            param = nn.Parameter(param.to("meta"), requires_grad=param.requires_grad)
        register_parameter(self, name, param)

    def to_meta_buffer(self: nn.Module, name: str, tensor: Any, persistent: bool = True) -> None:
        register_buffer(self, name, None if tensor is None else tensor.to("meta"), persistent)

    nn.Module.register_parameter, nn.Module.register_buffer = to_meta_parameter, to_meta_buffer
    try:
        yield
    finally:
        nn.Module.register_parameter, nn.Module.register_buffer = register_parameter, register_buffer


# ---------------------------------------------------------------- registration (defaults: mri2tau.models.defaults)
def _spec(name: str, family: str, build, description: str) -> ModelSpec:
    return register(ModelSpec(name=name, dims=3, family=family, build=build, defaults=PRESETS[name],
                              description=description))


_spec("unet3d", "supervised", build_unet3d,
      "3D U-Net (MONAI), α·MSE + β·(1−SSIM) + γ·perceptual (cyclic 2.5D by default)")
_spec("unetr", "supervised", build_unetr, "UNETR (MONAI), same 3D synthesis objective")
_spec("swinunetr", "supervised", build_swinunetr, "SwinUNETR (MONAI), same 3D synthesis objective")
_spec("pix2pix3d", "pix2pix", build_pix2pix3d, "Pix2Pix 3D: 3D U-Net + 3D PatchGAN, + the 3D synthesis objective")
_spec("cyclegan3d", "cyclegan", build_cyclegan3d,
      "CycleGAN 3D: two 3D U-Nets + two 3D PatchGANs, + the 3D synthesis objective on MRI -> PET")
