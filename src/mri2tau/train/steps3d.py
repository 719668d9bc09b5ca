"""3D models in the one training loop: their hyper-parameters and their training data.

The families' steps are in :mod:`mri2tau.train.steps` (``supervised``: the 3D synthesis
objective is the loss; ``pix2pix``/``cyclegan``: it is added with weight ``lambda_synthesis``).
This module supplies what differs for 3D models:

* Which 3D models the config trains and their resolved hyper-parameters: torch-free, in
  :mod:`mri2tau.train.hparams` (the Snakefile reads them while it parses).
* :func:`train_from_volumes`: volume datasets (augmented training set, subject-level hold-out)
  and the objective :func:`mri2tau.losses.ssim3d.build_synthesis_loss` into
  :func:`mri2tau.train.loop.fit`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mri2tau.data.datasets import subject_holdout
from mri2tau.data.volumes import AugmentConfig, VolumeDataset, open_volumes
from mri2tau.errors import PipelineInputError
from mri2tau.log import get_logger
from mri2tau.losses.ssim3d import build_synthesis_loss
from mri2tau.models import registry
from mri2tau.train.baseline import fit_mean
from mri2tau.train.loop import RunSettings, fit

log = get_logger("train")


def train_from_volumes(
    model: str,
    volumes_dir: str | Path,
    out_dir: str | Path,
    hparams: dict[str, Any],
    train_config: dict[str, Any],
) -> Path:
    """Train 3D ``model`` on the ``train`` volumes in ``volumes_dir`` into ``out_dir``; return ``model.pt``.

    The ``mean`` baseline is the mean of every training volume (:func:`mri2tau.train.baseline.fit_mean`).

    ``train.val_fraction`` of the training subjects (seeded) are held out (no augmentation) for
    ``best.pt``. The generator files carry ``volumes.json`` (geometry and SUVR window) as
    ``data`` so synthesis can put volumes back on the template grid in SUVR units.
    """
    volumes = open_volumes(volumes_dir, "train")
    if registry.get(model).family == "mean":
        return fit_mean(model, volumes, out_dir, hparams)
    if list(volumes.geometry.shape) != list(hparams["image_size"]):
        raise PipelineInputError(
            f"volumes are {list(volumes.geometry.shape)} but {model} expects image_size {hparams['image_size']}",
            stage="train", path=volumes_dir, fix="rerun the volumes rule after changing the volumes section",
        )
    settings = RunSettings.from_config(train_config)
    train_rows, val_rows = subject_holdout(volumes.index, float(train_config.get("val_fraction", 0.0)), settings.seed)
    augment = AugmentConfig.from_config(hparams.get("augment", {}))
    log.info("%s: %d training / %d validation volumes of %s; perceptual %s", model, len(train_rows),
             len(val_rows), volumes.geometry.shape, hparams["perceptual"].get("kind"))
    return fit(
        model, hparams, VolumeDataset(volumes, train_rows, augment), out_dir, settings,
        val_data=VolumeDataset(volumes, val_rows) if len(val_rows) else None,
        extra_loss=build_synthesis_loss(hparams["perceptual"]), data_info=volumes.meta,
    )
