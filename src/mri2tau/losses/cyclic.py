"""Perceptual losses for 3D synthesis: cyclic / static 2.5D (VGG16 on slices) and 3D (ResNet).

Volumes are template-space tensors of shape (B, 1, X, Y, Z) whose axes follow the RAS+
voxel axes of the template grid (``mri2tau.templates.template_grid``): X = left -> Right,
Y = posterior -> Anterior, Z = inferior -> Superior. Plane names follow from that:

* ``sagittal`` slices are taken along X (dim 2), each slice a (Y, Z) image;
* ``coronal`` slices along Y (dim 3), each an (X, Z) image;
* ``axial`` slices along Z (dim 4), each an (X, Y) image.

Cyclic 2.5D perceptual loss (Moon et al., seeds/cyclic-2.5d-perceptual-loss-abstract.txt): the
active plane cycles axial -> coronal -> sagittal, each for the current duration ``d`` epochs
(default 120); after each full cycle ``d <- floor(d * factor)`` (factor 2/3). When the floor
would reach 0, ``d`` stays at 1 (the plane then changes every epoch, for the rest of training),
as in the authors' code (``max(1, ...)``). The schedule is a pure function of the epoch, so a
resumed run only needs the epoch number (``PerceptualLoss25D.set_epoch``).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mri2tau.errors import PipelineInputError
from mri2tau.losses.perceptual import load_vgg16_features

PLANES = ("axial", "coronal", "sagittal")
#: Tensor dim of (B, C, X, Y, Z) along which each plane's slices are taken (RAS+ template axes).
PLANE_DIM = {"sagittal": 2, "coronal": 3, "axial": 4}
PERCEPTUAL_KINDS = ("none", "3d", "static25d", "cyclic25d")


Factor = float | str | Fraction


def _exact_factor(factor: Factor) -> Fraction:
    """``factor`` as an exact fraction: ``"2/3"``, ``Fraction(2, 3)`` or the float 2/3 all give 2/3."""
    out = Fraction(factor).limit_denominator(10**6)
    if out <= 0:
        raise ValueError(f"factor must be > 0, got {factor}")
    return out


def _cycles(initial_duration: int, factor: Factor) -> Iterator[tuple[int, int]]:
    """Yield (start_epoch, duration) of each full axial->coronal->sagittal cycle, forever."""
    if int(initial_duration) < 1:
        raise ValueError(f"initial_duration must be >= 1 epoch, got {initial_duration}")
    frac = _exact_factor(factor)
    start, duration = 0, int(initial_duration)
    while True:
        yield start, duration
        start += 3 * duration
        duration = max(1, math.floor(duration * frac))


def plane_schedule(epoch: int, initial_duration: int = 120, factor: Factor = Fraction(2, 3)) -> str:
    """Active plane (``"axial"``/``"coronal"``/``"sagittal"``) at 0-based ``epoch``.

    Each cycle shows axial, coronal, sagittal for ``d`` epochs each; ``d`` starts at
    ``initial_duration`` and becomes ``max(1, floor(d * factor))`` after every cycle.
    """
    if epoch < 0:
        raise ValueError(f"epoch must be >= 0, got {epoch}")
    for start, duration in _cycles(initial_duration, factor):
        if duration == 1:  # from here the plane changes every epoch: no need to walk on
            return PLANES[(epoch - start) % 3]
        if epoch < start + 3 * duration:
            return PLANES[(epoch - start) // duration]
    raise AssertionError("unreachable")


def plane_switch_epochs(
    n_epochs: int, initial_duration: int = 120, factor: Factor = Fraction(2, 3)
) -> dict[str, list[int]]:
    """Epochs (< ``n_epochs``) at which each plane becomes active: plane -> sorted list.

    Epoch 0 counts as the switch to axial. For 1000 epochs and the defaults: axial
    0, 360, 600, 759, 864, 933, 978; coronal 120, 440, ...; sagittal 240, 520, ...
    """
    out: dict[str, list[int]] = {plane: [] for plane in PLANES}
    for start, duration in _cycles(initial_duration, factor):
        if start >= n_epochs:
            return out
        for k, plane in enumerate(PLANES):
            if start + k * duration < n_epochs:
                out[plane].append(start + k * duration)
    raise AssertionError("unreachable")


def minmax_slices(volume: Tensor, dim: int) -> Tensor:
    """Slices of ``volume`` (B, 1, X, Y, Z) along ``dim`` as (B * N, 1, H, W), each scaled to [0, 1].

    Min-max scaling is per sample and per slice (a constant slice maps to 0). Slice order:
    sample-major, then slice index along ``dim``.
    """
    if volume.dim() != 5 or volume.shape[1] != 1:
        raise ValueError(f"expected a (B, 1, X, Y, Z) volume, got {tuple(volume.shape)}")
    slices = volume.movedim(dim, 2).flatten(0, 2).unsqueeze(1)  # (B*N, 1, H, W)
    lo = slices.amin(dim=(2, 3), keepdim=True)
    hi = slices.amax(dim=(2, 3), keepdim=True)
    return (slices - lo) / (hi - lo + 1e-8)


class PerceptualLoss25D(nn.Module):
    """2.5D VGG16 perceptual loss between (B, 1, X, Y, Z) volumes (any intensity range).

    For one plane: every slice along the plane's axis (see module docstring) is min-max scaled
    to [0, 1] per slice, repeated to 3 channels and passed through frozen VGG16
    ``features[:n_layers]`` (23 -> relu4_3); the loss is the MSE between the feature maps of
    prediction and target, averaged over all slices (and the batch). No ImageNet mean/std
    normalisation is applied, as in the authors' code.

    ``mode="cyclic25d"``: only the active plane, :attr:`plane`, set by :meth:`set_epoch` from
    :func:`plane_schedule`. ``mode="static25d"``: the sum of the three planes' losses
    (:attr:`plane` is ``"all"``).
    ``slices_per_pass`` bounds how many slices go through VGG at once (memory), without
    changing the value. Gradients flow to ``pred`` only; the VGG stays frozen in eval mode.
    """

    def __init__(
        self,
        mode: str = "cyclic25d",
        weights: str = "imagenet",
        n_layers: int = 23,
        initial_duration: int = 120,
        factor: Factor = Fraction(2, 3),
        slices_per_pass: int = 64,
        features: nn.Module | None = None,
    ) -> None:
        super().__init__()
        if mode not in ("cyclic25d", "static25d"):
            raise ValueError(f"mode must be 'cyclic25d' or 'static25d', got {mode!r}")
        self.mode = mode
        self.features = features if features is not None else load_vgg16_features(weights, n_layers=n_layers)
        self.features.requires_grad_(False).eval()
        self.initial_duration = int(initial_duration)
        self.factor = _exact_factor(factor)
        self.slices_per_pass = int(slices_per_pass)
        self.set_epoch(0)

    def set_epoch(self, epoch: int) -> None:
        """Select the plane for 0-based ``epoch`` (the training loop calls this every epoch)."""
        self.epoch = int(epoch)
        cyclic = self.mode == "cyclic25d"
        self.plane = plane_schedule(self.epoch, self.initial_duration, self.factor) if cyclic else "all"

    def train(self, mode: bool = True) -> PerceptualLoss25D:
        """Keep the frozen VGG in eval mode whatever the parent's mode."""
        super().train(mode)
        self.features.eval()
        return self

    def _vgg(self, slices01: Tensor) -> Tensor:
        return self.features(slices01.expand(-1, 3, -1, -1))

    def plane_loss(self, pred: Tensor, target: Tensor, plane: str) -> Tensor:
        """Mean over all slices of ``plane`` of the VGG feature MSE (scalar)."""
        if pred.shape != target.shape:
            raise ValueError(f"pred {tuple(pred.shape)} and target {tuple(target.shape)} differ in shape")
        dim = PLANE_DIM[plane]
        pred_slices = minmax_slices(pred, dim)
        target_slices = minmax_slices(target.detach(), dim)
        total, count = pred.new_zeros(()), 0
        for start in range(0, pred_slices.shape[0], self.slices_per_pass):
            stop = start + self.slices_per_pass
            with torch.no_grad():
                f_target = self._vgg(target_slices[start:stop])
            f_pred = self._vgg(pred_slices[start:stop])
            total = total + F.mse_loss(f_pred, f_target, reduction="sum")
            count += f_pred.numel()
        return total / count

    def forward(self, pred: Tensor, target: Tensor) -> Tensor:
        """Scalar loss: active plane (cyclic) or sum over the three planes (static)."""
        if self.mode == "cyclic25d":
            return self.plane_loss(pred, target, self.plane)
        return sum(self.plane_loss(pred, target, plane) for plane in PLANES)


def _dilate(layer: nn.Sequential, dilation: int) -> None:
    """Turn a strided MONAI ResNet layer into MedicalNet's dilated one (stride 1, dilation ``dilation``)."""
    for block in layer:
        for conv in (block.conv1, block.conv2):
            conv.stride, conv.dilation, conv.padding = (1, 1, 1), (dilation,) * 3, (dilation,) * 3
        if isinstance(block.downsample, nn.Sequential):
            block.downsample[0].stride = (1, 1, 1)


def load_medicalnet_resnet10(weights_path: str | None) -> nn.Module:
    """MedicalNet 3D ResNet-10 feature extractor (1 input channel, up to ``layer4``), frozen.

    Architecture as MedicalNet: 7x7x7 stem with stride 2, max-pool, ``layer2`` stride 2,
    ``layer3``/``layer4`` dilated (2, 4) with stride 1, so features are at 1/8 of the input
    resolution (e.g. 64^3 -> 8^3, 512 channels). ``weights_path``: a local MedicalNet ``resnet_10(_23dataset).pth`` (a dict with
    ``state_dict``, keys possibly prefixed ``module.``) or a plain state dict. ``None``: random
    weights with a warning (nothing is ever downloaded).
    """
    from monai.networks.nets import resnet10

    net = resnet10(
        spatial_dims=3, n_input_channels=1, conv1_t_stride=2, feed_forward=False, shortcut_type="B", bias_downsample=False
    )
    _dilate(net.layer3, 2)
    _dilate(net.layer4, 4)
    if weights_path is None:
        warnings.warn(
            "3D perceptual loss uses a RANDOM ResNet-10 (no perceptual.weights_3d file given): "
            "fine for tests and the demo, not for a real run",
            stacklevel=2,
        )
    else:
        path = Path(weights_path).expanduser()
        fix = (
            "download MedicalNet's resnet_10_23dataset.pth (Tencent/MedicalNet) on a machine with "
            "internet, copy it here and set perceptual.weights_3d to its path"
        )
        if not path.is_file():
            raise PipelineInputError("3D perceptual weights file not found", stage="perceptual loss", path=path, fix=fix)
        state = torch.load(path, map_location="cpu", weights_only=True)
        state = state.get("state_dict", state)
        state = {key.removeprefix("module."): value for key, value in state.items() if not key.startswith("module.fc")}
        try:
            net.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            raise PipelineInputError(
                f"not a MedicalNet ResNet-10 state dict: {exc}", stage="perceptual loss", path=path, fix=fix
            ) from exc
    body = nn.Sequential(net.conv1, net.bn1, net.act, net.maxpool, net.layer1, net.layer2, net.layer3, net.layer4)
    body.requires_grad_(False)
    return body.eval()


class PerceptualLoss3D(nn.Module):
    """3D perceptual loss: MSE between 3D ResNet-10 ``layer4`` feature maps of (B, 1, X, Y, Z) volumes.

    Each volume is z-scored per sample (MedicalNet's input normalisation) before the network.
    The feature network is frozen and stays in eval mode; gradients flow to ``pred`` only.
    """

    def __init__(self, weights_path: str | None = None, features: nn.Module | None = None) -> None:
        super().__init__()
        self.features = features if features is not None else load_medicalnet_resnet10(weights_path)
        self.features.requires_grad_(False).eval()

    def train(self, mode: bool = True) -> PerceptualLoss3D:
        """Keep the frozen network in eval mode whatever the parent's mode."""
        super().train(mode)
        self.features.eval()
        return self

    @staticmethod
    def _zscore(volume: Tensor) -> Tensor:
        mean = volume.mean(dim=(1, 2, 3, 4), keepdim=True)
        std = volume.std(dim=(1, 2, 3, 4), keepdim=True)
        return (volume - mean) / (std + 1e-8)

    def forward(self, pred: Tensor, target: Tensor) -> Tensor:
        """Scalar feature MSE."""
        if pred.shape != target.shape:
            raise ValueError(f"pred {tuple(pred.shape)} and target {tuple(target.shape)} differ in shape")
        with torch.no_grad():
            f_target = self.features(self._zscore(target))
        return F.mse_loss(self.features(self._zscore(pred)), f_target)


def build_perceptual_loss(
    kind: str,
    vgg_weights: str = "imagenet",
    weights_3d: str | None = None,
    initial_duration: int = 120,
    factor: Factor = Fraction(2, 3),
    vgg_layers: int = 23,
    slices_per_pass: int = 64,
) -> nn.Module | None:
    """The perceptual term selected by config ``perceptual.kind``; ``None`` for ``"none"``.

    ``cyclic25d``/``static25d`` -> :class:`PerceptualLoss25D` (VGG16 ``vgg_weights``:
    ``imagenet``/``none``/path); ``3d`` -> :class:`PerceptualLoss3D` (``weights_3d`` path or random).
    """
    if kind not in PERCEPTUAL_KINDS:
        raise ValueError(f"perceptual kind must be one of {PERCEPTUAL_KINDS}, got {kind!r}")
    if kind == "none":
        return None
    if kind == "3d":
        return PerceptualLoss3D(weights_3d)
    return PerceptualLoss25D(
        mode=kind,
        weights=vgg_weights,
        n_layers=vgg_layers,
        initial_duration=initial_duration,
        factor=factor,
        slices_per_pass=slices_per_pass,
    )

