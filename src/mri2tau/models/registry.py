"""Model registry: name -> how to build it, its training family and per-preset defaults.

Adding a model is one :func:`register` call in the module that defines it; the module is
listed in ``_MODEL_MODULES`` so :func:`available` can import it. The training loop only
needs ``spec.family`` (which losses/steps apply) and ``spec.build(hparams)``.

``build`` returns named networks, e.g. ``{"generator": G, "discriminator": D}`` or, for
CycleGAN, ``{"generator": G_mri2pet, "generator_inv": G_pet2mri, "discriminator": D_pet,
"discriminator_inv": D_mri}``. ``"generator"`` always maps MRI -> PET: shape (B, 1, H, W)
for 2D models and (B, 1, D, H, W) for 3D models, input and output in [-1, 1].
"""

from __future__ import annotations

import copy
import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from torch import nn

_MODEL_MODULES = (
    "mri2tau.models.mcr_vqgan",
    "mri2tau.models.pix2pix",
    "mri2tau.models.wgan_gp",
    "mri2tau.models.cyclegan",
    "mri2tau.models.monai3d",
    "mri2tau.models.baseline",
)

FAMILIES = ("vqgan", "pix2pix", "wgan_gp", "cyclegan", "supervised", "mean")


@dataclass(frozen=True)
class ModelSpec:
    """How to build one registered model.

    name: registry key (also the ``results/models/<name>/`` folder).
    dims: 2 (slices) or 3 (volumes).
    family: which training step applies, one of :data:`FAMILIES`.
    build: hyper-parameters -> named networks (see module docstring).
    defaults: preset name (``demo``/``paper``) -> default hyper-parameters (incl. training ones
        such as ``batch_size``, ``lr``, ``epochs``, ``optimizer`` and loss weights).
    description: one line for ``mri2tau models``.
    """

    name: str
    dims: int
    family: str
    build: Callable[[dict[str, Any]], dict[str, nn.Module]]
    defaults: dict[str, dict[str, Any]] = field(default_factory=dict)
    description: str = ""

    def hparams(self, preset: str = "demo", **overrides: Any) -> dict[str, Any]:
        """Defaults for ``preset`` updated by ``overrides`` (a fresh dict)."""
        if preset not in self.defaults:
            raise KeyError(f"model {self.name!r} has no {preset!r} preset; has {sorted(self.defaults)}")
        out = copy.deepcopy(self.defaults[preset])
        out.update(overrides)
        return out


REGISTRY: dict[str, ModelSpec] = {}


def register(spec: ModelSpec) -> ModelSpec:
    """Add ``spec`` to the registry (a name can be registered once)."""
    if spec.family not in FAMILIES:
        raise ValueError(f"model {spec.name!r}: unknown family {spec.family!r}; one of {FAMILIES}")
    if spec.name in REGISTRY and REGISTRY[spec.name] is not spec:
        raise ValueError(f"model {spec.name!r} is already registered")
    REGISTRY[spec.name] = spec
    return spec


def _load_all() -> None:
    for module in _MODEL_MODULES:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name != module:
                raise


def available() -> list[str]:
    """Names of every registered model (imports the model modules first)."""
    _load_all()
    return sorted(REGISTRY)


def get(name: str) -> ModelSpec:
    """The spec registered as ``name``; the error lists what exists."""
    _load_all()
    if name not in REGISTRY:
        raise KeyError(f"unknown model {name!r}; registered: {', '.join(sorted(REGISTRY))}")
    return REGISTRY[name]


def build(name: str, preset: str = "demo", **overrides: Any) -> dict[str, nn.Module]:
    """Build model ``name`` with the ``preset`` defaults updated by ``overrides``."""
    spec = get(name)
    return spec.build(spec.hparams(preset, **overrides))


def count_parameters(module: nn.Module) -> int:
    """Number of parameters (works on the meta device: no memory is allocated)."""
    return sum(p.numel() for p in module.parameters())
