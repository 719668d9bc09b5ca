"""Which models a config trains and their resolved hyper-parameters, without importing torch.

``train.smk`` calls these while Snakemake parses the workflow (every ``snakemake`` call and every
cluster job), so they read :mod:`mri2tau.models.defaults` and :mod:`mri2tau.data.geometry`,
never the model modules.

2D: the preset's defaults, updated by ``train.epochs`` (when set: every enabled 2D model) and
then ``train.overrides.<model>``; ``image_size`` always equals ``slices.grid`` (voxels).

3D: the preset's defaults updated by ``train.overrides.<model>``, with ``image_size`` = the
volume box (voxels, :func:`mri2tau.data.geometry.volume_geometry`), ``perceptual`` = config
section ``perceptual`` and ``augment`` = ``volumes.augment`` (not for the ``mean`` baseline,
which uses neither). The train rules pass them as params, so e.g. ``perceptual.kind: cyclic25d
-> static25d`` reruns only the 3D training jobs (and synthesis/evaluation after them); 2D
hyper-parameters never contain these sections.
"""

from __future__ import annotations

from typing import Any

from mri2tau.data.geometry import volume_geometry
from mri2tau.models.defaults import BASELINES, default_hparams, model_dims


def _enabled(config: dict[str, Any], key: str, dims: int) -> list[str]:
    names = list(config["train"].get(key) or [])
    for name in names:
        found = model_dims(name)  # KeyError lists what exists
        if found != dims:
            raise ValueError(f"config key 'train.{key}': {name!r} is a {found}D model; list {dims}D models only")
    return names


def enabled_2d_models(config: dict[str, Any]) -> list[str]:
    """``train.enabled``, checked: each is a registered 2D model."""
    return _enabled(config, "enabled", 2)


def enabled_3d_models(config: dict[str, Any]) -> list[str]:
    """``train.enabled_3d`` (absent: none), checked: each is a registered 3D model."""
    return _enabled(config, "enabled_3d", 3)


def model_hparams(model: str, config: dict[str, Any]) -> dict[str, Any]:
    """Resolved hyper-parameters of 2D ``model`` under ``config`` (see module docstring)."""
    train = config["train"]
    overrides = {} if train.get("epochs") is None else {"epochs": int(train["epochs"])}
    overrides.update(train.get("overrides", {}).get(model, {}))
    grid = int(config["slices"]["grid"])
    if overrides.get("image_size", grid) != grid:
        raise ValueError(f"config key 'train.overrides.{model}.image_size': set slices.grid instead ({grid})")
    overrides["image_size"] = grid
    return default_hparams(model, config["preset"], **overrides)


def model_hparams_3d(model: str, config: dict[str, Any]) -> dict[str, Any]:
    """Resolved hyper-parameters of 3D ``model`` under ``config`` (see module docstring)."""
    dims = model_dims(model)
    if dims != 3:
        raise ValueError(f"{model!r} is a {dims}D model; model_hparams_3d takes 3D models only")
    template = config["template"]
    geometry = volume_geometry(config["volumes"], template["resolution_mm"], template.get("mask_path"))
    overrides = dict(config.get("train", {}).get("overrides", {}).get(model, {}))
    if list(overrides.get("image_size", geometry.shape)) != list(geometry.shape):
        raise ValueError(
            f"config key 'train.overrides.{model}.image_size': the volume box is {list(geometry.shape)}; "
            "set volumes.shape / volumes.pad_multiple instead"
        )
    overrides["image_size"] = list(geometry.shape)
    if model not in BASELINES:  # the mean baseline has no loss and sees no augmentation
        overrides.update(perceptual=dict(config["perceptual"]), augment=dict(config["volumes"].get("augment", {})))
    return default_hparams(model, config["preset"], **overrides)
