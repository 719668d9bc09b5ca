"""Synthesis settings and a trained generator loaded for inference, with its scaling and resolution."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from mri2tau.data.geometry import VolumeGeometry
from mri2tau.data.slices import REFERENCE_GRID
from mri2tau.device import resolve_device
from mri2tau.errors import PipelineInputError
from mri2tau.log import get_logger
from mri2tau.synthesize.spaces import ModelScaling
from mri2tau.templates import template_grid

log = get_logger("synthesize")

STAGE = "synthesize"


@dataclass(frozen=True)
class SynthSettings:
    """Config section ``synthesize`` (keys for models/resources are read by the workflow).

    batch_size: 2D slices per forward pass. slice_range: (first, last) axial indices on the 256
    reference grid (inclusive), or None for every slice covering the template.
    sw_overlap / sw_batch_size: MONAI sliding-window overlap and windows per pass (3D).
    device: ``auto`` (CUDA if available), ``cpu`` or ``cuda``. native_interpolation: ANTs
    interpolator for the template -> native resampling.
    """

    batch_size: int = 16
    slice_range: tuple[int, int] | None = None
    sw_overlap: float = 0.25
    sw_batch_size: int = 1
    device: str = "auto"
    native_interpolation: str = "linear"

    @classmethod
    def from_config(cls, section: dict[str, Any] | None) -> SynthSettings:
        """Pick this dataclass's keys out of the config section (lists become tuples)."""
        known = {k: tuple(v) if isinstance(v, list) else v
                 for k, v in (section or {}).items() if k in cls.__dataclass_fields__}
        return cls(**known)


@dataclass
class LoadedModel:
    """A generator in eval mode with its registry name, dimensionality, scaling and the model
    file's ``data`` meta (the slice/volume stage's settings)."""

    name: str
    dims: int
    generator: nn.Module
    hparams: dict[str, Any]
    scaling: ModelScaling
    device: torch.device
    data: dict[str, Any] = field(default_factory=dict)


def model_scaling(
    info: dict[str, Any], fallback: dict[str, Any], geometry: VolumeGeometry | None, path: str | Path | None = None,
) -> ModelScaling:
    """Scaling from the model file's (``path``) ``data`` meta, missing keys taken from ``fallback``
    (config section ``slices``). 3D: ``data["geometry"]`` if stored, else ``geometry``."""
    data = {**fallback, **(info.get("data") or {})}
    missing = [k for k in ("pet_window", "t1_percentiles") if k not in data]
    if missing:
        raise PipelineInputError(
            f"model file lacks the scaling settings {missing}", stage=STAGE, path=path,
            fix="retrain the model with the current pipeline, or pass the slices config section",
        )
    stored = data.get("geometry")
    if info["dims"] == 3:
        geometry = VolumeGeometry(**{k: tuple(v) for k, v in stored.items()}) if stored else geometry
        if geometry is None:
            raise PipelineInputError("3D model file stores no volume geometry", stage=STAGE, path=path,
                                     fix="pass the volumes config section (volume_geometry)")
    return ModelScaling(
        pet_window=tuple(float(v) for v in data["pet_window"]),  # type: ignore[arg-type]
        t1_percentiles=tuple(float(v) for v in data["t1_percentiles"]),  # type: ignore[arg-type]
        mask_brain=bool(data.get("mask_brain", True)),
        grid=int(data["grid"]) if info["dims"] == 2 else None,
        geometry=geometry if info["dims"] == 3 else None,
    )


def load_model(
    path: str | Path, device: str = "auto", fallback: dict[str, Any] | None = None,
    geometry: VolumeGeometry | None = None,
) -> LoadedModel:
    """Load a generator file (:func:`mri2tau.train.checkpoint.load_generator`) for inference."""
    from mri2tau.train.checkpoint import load_generator

    dev = resolve_device(device)
    generator, info = load_generator(path, dev)
    scaling = model_scaling(info, fallback or {}, geometry, path)
    log.info("model %s (%dD) from %s on %s; scaling %s", info["model"], info["dims"], path, dev, scaling)
    return LoadedModel(info["model"], int(info["dims"]), generator, dict(info["hparams"]), scaling, dev,
                       dict(info.get("data") or {}))


def infer_resolution(model: LoadedModel) -> float:
    """Template resolution (mm) the model was trained at: stored ``resolution_mm``; else the 3D
    box's template grid; else the slice grid spanning the paper's 256 mm (256 / grid)."""
    if "resolution_mm" in model.data:
        return float(model.data["resolution_mm"])
    if model.dims == 3 and model.scaling.geometry is not None:
        for res in (1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 8.0):
            if template_grid(res)[0] == tuple(model.scaling.geometry.template_shape):
                return res
    return REFERENCE_GRID / float(model.scaling.grid or REFERENCE_GRID)
