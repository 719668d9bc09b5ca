"""What the ``train`` rules run: :func:`train_model`, the one entry for 2D and 3D training.

The model's dimensionality picks the data: a slice set (``slices/train.npz``) for 2D models, the
volume directory (``volumes/``, its ``train`` volumes) for 3D ones. Each is checked against the
model's ``image_size`` and brings its extra generator term (:class:`TrainingData`); then
``train.val_fraction`` of the training subjects (seeded by ``train.seed``) are held out for
``best.pt`` and :func:`mri2tau.train.loop.fit` runs. Hyper-parameters are resolved (torch-free) by
:mod:`mri2tau.train.hparams` and reach the rules as params.

* 2D: a VGG16 perceptual term (weights ``vgg_weights``: the ``perceptual`` section's) when
  ``lambda_perc`` > 0; the generator files carry the slice set's meta.
* 3D: the training volumes are augmented (``hparams["augment"]``), the validation ones are not; the
  objective :func:`mri2tau.losses.ssim3d.build_synthesis_loss` is the ``supervised`` family's loss
  and is added with weight ``lambda_synthesis`` by ``pix2pix``/``cyclegan`` (:mod:`mri2tau.train.steps`);
  the generator files carry ``volumes.json`` (geometry and SUVR window) so synthesis can put volumes
  back on the template grid in SUVR units. The ``mean`` baseline is the mean of every training
  volume (:func:`mri2tau.train.baseline.fit_mean`), no loop.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from torch import nn
from torch.utils.data import Dataset

from mri2tau.data.datasets import SliceDataset, open_slices, subject_holdout
from mri2tau.data.volumes import AugmentConfig, VolumeDataset, open_volumes
from mri2tau.errors import PipelineInputError
from mri2tau.log import get_logger
from mri2tau.losses.ssim3d import build_synthesis_loss
from mri2tau.models import registry
from mri2tau.train.baseline import fit_mean
from mri2tau.train.checkpoint import data_key
from mri2tau.train.loop import RunSettings, fit

log = get_logger("train")


@dataclass
class TrainingData:
    """A model's training data: the sample ``index`` (``sub`` column for the hold-out),
    ``dataset(rows, training)`` (``training`` False: the validation set), the extra generator
    term, the meta stored in the generator files, what the samples are (for the log) and the
    arrays behind them (for the resume key)."""

    index: pd.DataFrame
    dataset: Callable[[np.ndarray, bool], Dataset]
    extra_loss: nn.Module | None
    data_info: dict[str, Any]
    what: str
    arrays: tuple[np.ndarray, ...]


def _check_image_size(model: str, what: str, found: object, expected: object, path: str | Path, fix: str,
                      unit: str = "") -> None:
    """Data of size ``found`` (``unit``) must match the model's ``image_size`` (``expected``)."""
    if found != expected:
        raise PipelineInputError(f"{what} are {found}{unit} but {model} expects image_size {expected}",
                                 stage="train", path=path, fix=fix)


def slice_data(model: str, path: str | Path, hparams: dict[str, Any], train_config: dict[str, Any]) -> TrainingData:
    """The slice set ``path`` for 2D ``model``, with the VGG16 perceptual term when ``lambda_perc`` > 0."""
    slices = open_slices(path)
    _check_image_size(model, "slices", slices.mri.shape[-1], hparams["image_size"], path,
                      "rerun the slices rule after changing slices.grid", unit=" px")
    perceptual = None
    if float(hparams.get("lambda_perc", 0.0)) > 0:
        from mri2tau.losses.perceptual import VGGPerceptualLoss

        perceptual = VGGPerceptualLoss(weights=str(train_config.get("vgg_weights", "imagenet")))
    return TrainingData(slices.index, lambda rows, _: SliceDataset(slices, rows), perceptual, slices.meta, "slices",
                        (slices.mri, slices.pet))


def volume_data(model: str, path: str | Path, hparams: dict[str, Any], train_config: dict[str, Any]) -> TrainingData:
    """The ``train`` volumes in directory ``path`` for 3D ``model`` (augmented when training), with
    the 3D synthesis objective."""
    volumes = open_volumes(path, "train")
    _check_image_size(model, "volumes", list(volumes.geometry.shape), list(hparams["image_size"]), path,
                      "rerun the volumes rule after changing the volumes section")
    augment = AugmentConfig.from_config(hparams.get("augment", {}))
    log.info("%s: volumes of %s; perceptual %s", model, volumes.geometry.shape, hparams["perceptual"].get("kind"))
    return TrainingData(
        volumes.index, lambda rows, training: VolumeDataset(volumes, rows, augment if training else None),
        build_synthesis_loss(hparams["perceptual"]), volumes.meta, "volumes", (volumes.mri, volumes.pet),
    )


def train_model(model: str, data: str | Path, out_dir: str | Path, hparams: dict[str, Any],
                train_config: dict[str, Any]) -> Path:
    """Train registry ``model`` with ``hparams`` into ``out_dir``; return ``model.pt``.

    ``data``: the slice set (2D models) or the volume directory (3D models). ``train_config``: the
    ``train`` section (run settings, ``val_fraction``, ``seed``; ``vgg_weights`` for 2D).
    """
    spec = registry.get(model)
    if spec.family == "mean":
        return fit_mean(model, open_volumes(data, "train"), out_dir, hparams)
    prepared = (slice_data if spec.dims == 2 else volume_data)(model, data, hparams, train_config)
    settings = RunSettings.from_config(train_config)
    train_rows, val_rows = subject_holdout(prepared.index, float(train_config.get("val_fraction", 0.0)), settings.seed)
    log.info("%s: %d training / %d validation %s", model, len(train_rows), len(val_rows), prepared.what)
    return fit(
        model, hparams, prepared.dataset(train_rows, True), out_dir, settings,
        val_data=prepared.dataset(val_rows, False) if len(val_rows) else None,
        extra_loss=prepared.extra_loss, data_info=prepared.data_info,
        data_key=data_key(prepared.arrays, train_rows, val_rows),
    )
