"""VGG16 perceptual loss for 2D slices (and the frozen VGG16 feature extractor the 3D losses reuse).

ImageNet weights cannot be downloaded at run time on every machine, so :func:`load_vgg16_features`
never downloads: it reads torchvision's file from the torch hub cache, a local file, or builds
random weights on request (``"none"``, for tests and offline demos; it warns).
"""

from __future__ import annotations

import warnings
from pathlib import Path
from urllib.parse import urlparse

import torch
from torch import Tensor, nn
from torchvision.models import VGG16_Weights
from torchvision.models.vgg import cfgs, make_layers

from mri2tau.errors import PipelineInputError

#: Index (in ``vgg16().features``) of the ReLU that ends each compared block.
VGG16_LAYERS = {"relu1_2": 3, "relu2_2": 8, "relu3_3": 15, "relu4_3": 22}
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def imagenet_weights_path() -> Path:
    """Where torchvision keeps ``VGG16_Weights.IMAGENET1K_V1`` in the torch hub cache."""
    filename = Path(urlparse(VGG16_Weights.IMAGENET1K_V1.url).path).name
    return Path(torch.hub.get_dir()) / "checkpoints" / filename


def _resolve_weights_file(weights: str) -> Path | None:
    """``"none"`` -> None; ``"imagenet"`` -> the hub-cache file; else the given path. Must exist."""
    if weights.lower() == "none":
        return None
    path = imagenet_weights_path() if weights.lower() == "imagenet" else Path(weights).expanduser()
    if path.is_file():
        return path
    url = VGG16_Weights.IMAGENET1K_V1.url
    raise PipelineInputError(
        f"VGG16 weights {weights!r} not found (they are never downloaded at run time)",
        stage="perceptual loss",
        path=path,
        fix=(
            f"download {url} on a machine with internet and copy it to {imagenet_weights_path()} "
            "(or set TORCH_HOME), or pass the path of a local VGG16 .pth state dict (full model or "
            "features only), or use weights 'none' for random weights (tests/demo only)"
        ),
    )


def _features_state(state: dict[str, Tensor], n_layers: int, path: Path) -> dict[str, Tensor]:
    """Keys of ``features[:n_layers]`` from a full-VGG16 or features-only state dict."""
    if any(key.startswith("features.") for key in state):
        state = {key.removeprefix("features."): value for key, value in state.items() if key.startswith("features.")}
    kept = {key: value for key, value in state.items() if int(key.split(".", 1)[0]) < n_layers}
    if not kept:
        raise PipelineInputError(
            "the file holds no VGG16 feature weights (expected keys like 'features.0.weight' or '0.weight')",
            stage="perceptual loss",
            path=path,
            fix="save torchvision.models.vgg16(...).state_dict() or its .features.state_dict()",
        )
    return kept


def _vgg16_features_random(n_layers: int) -> nn.Sequential:
    """torchvision's VGG16 ``features[:n_layers]`` with VGG's own init (without building the classifier)."""
    features = make_layers(cfgs["D"])[:n_layers]
    for layer in features:
        if isinstance(layer, nn.Conv2d):
            nn.init.kaiming_normal_(layer.weight, mode="fan_out", nonlinearity="relu")
            nn.init.zeros_(layer.bias)
    return features


def load_vgg16_features(weights: str = "imagenet", n_layers: int = 23) -> nn.Sequential:
    """Frozen torchvision VGG16 ``features[:n_layers]`` in eval mode (23 -> up to relu4_3).

    ``weights``: ``"imagenet"`` (torchvision's IMAGENET1K_V1 file, only if already in
    ``torch.hub.get_dir()/checkpoints/``), a path to a local ``.pth`` state dict (full VGG16 or
    features only), or ``"none"`` (random weights, with a warning). Input of the returned network:
    (B, 3, H, W) ImageNet-normalised RGB. ReLUs are made non-inplace so intermediate feature maps
    can be kept. Raises :class:`PipelineInputError` when the weights file is missing.
    """
    if not 1 <= n_layers <= 31:
        raise ValueError(f"n_layers must be in 1..31 (vgg16().features has 31 layers), got {n_layers}")
    path = _resolve_weights_file(weights)
    features = _vgg16_features_random(n_layers)
    if path is None:
        warnings.warn(
            "VGG16 perceptual features use RANDOM weights (weights='none'): fine for tests and the "
            "demo, not for a real run",
            stacklevel=2,
        )
    else:
        state = torch.load(path, map_location="cpu", weights_only=True)
        try:
            features.load_state_dict(_features_state(state, n_layers, path), strict=True)
        except RuntimeError as exc:
            raise PipelineInputError(
                f"the file is not a VGG16 state dict covering features[:{n_layers}]: {exc}",
                stage="perceptual loss",
                path=path,
                fix="pass torchvision's vgg16-397923af.pth or a state dict saved from torchvision's vgg16",
            ) from exc
    for layer in features:
        if isinstance(layer, nn.ReLU):
            layer.inplace = False
    features.requires_grad_(False)
    return features.eval()


class VGGPerceptualLoss(nn.Module):
    """LPIPS-style VGG16 distance between (B, 1, H, W) images in [-1, 1] (no learned weights).

    Images are mapped to [0, 1], repeated to 3 channels and ImageNet-normalised; at relu1_2,
    relu2_2, relu3_3 and relu4_3 each feature vector is unit-normalised over channels, and the
    squared difference is summed over channels and averaged over positions and batch; the four
    layer terms are summed. 0 for identical inputs. The VGG is frozen and stays in eval mode;
    gradients flow to the inputs. H, W >= 8 (three 2x max-pools before relu4_3).
    """

    def __init__(self, weights: str = "imagenet", features: nn.Sequential | None = None, eps: float = 1e-10) -> None:
        super().__init__()
        self.features = features if features is not None else load_vgg16_features(weights, n_layers=23)
        self.layer_ids = sorted(VGG16_LAYERS.values())
        if len(self.features) <= self.layer_ids[-1]:
            raise ValueError(f"features must have at least {self.layer_ids[-1] + 1} layers, has {len(self.features)}")
        self.eps = eps
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def train(self, mode: bool = True) -> VGGPerceptualLoss:
        """Keep the frozen VGG in eval mode whatever the parent's mode."""
        super().train(mode)
        self.features.eval()
        return self

    def _prepare(self, images: Tensor) -> Tensor:
        """(B, 1, H, W) in [-1, 1] -> (B, 3, H, W) ImageNet-normalised."""
        if images.dim() != 4 or images.shape[1] != 1:
            raise ValueError(f"expected (B, 1, H, W) images, got {tuple(images.shape)}")
        rgb = ((images + 1.0) / 2.0).expand(-1, 3, -1, -1)
        return (rgb - self.mean) / self.std

    def _feature_maps(self, x: Tensor) -> list[Tensor]:
        maps = []
        for index, layer in enumerate(self.features[: self.layer_ids[-1] + 1]):
            x = layer(x)
            if index in self.layer_ids:
                maps.append(x * torch.rsqrt(x.pow(2).sum(dim=1, keepdim=True) + self.eps))
        return maps

    def forward(self, fake: Tensor, real: Tensor) -> Tensor:
        """Scalar perceptual distance between ``fake`` and ``real`` (B, 1, H, W)."""
        if fake.shape != real.shape:
            raise ValueError(f"fake {tuple(fake.shape)} and real {tuple(real.shape)} differ in shape")
        both = self._feature_maps(self._prepare(torch.cat([fake, real], dim=0)))
        total = fake.new_zeros(())
        for maps in both:
            f_fake, f_real = maps.chunk(2, dim=0)
            total = total + (f_fake - f_real).pow(2).sum(dim=1).mean()
        return total
