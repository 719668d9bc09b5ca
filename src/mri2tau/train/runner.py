"""What the ``train`` rule runs: train a 2D model on slices.

Its hyper-parameters are resolved (torch-free) by :func:`mri2tau.train.hparams.model_hparams`
and reach the rule as params.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mri2tau.data.datasets import SliceDataset, open_slices, subject_holdout
from mri2tau.errors import PipelineInputError
from mri2tau.log import get_logger
from mri2tau.train.loop import RunSettings, fit

log = get_logger("train")


def train_from_slices(
    model: str,
    slices_npz: str | Path,
    out_dir: str | Path,
    hparams: dict[str, Any],
    train_config: dict[str, Any],
) -> Path:
    """Train 2D ``model`` on the slice set ``slices_npz`` into ``out_dir``; return ``model.pt``.

    ``train.val_fraction`` of the training subjects (seeded) are held out for ``best.pt``;
    a VGG16 perceptual term (weights ``vgg_weights``: the ``perceptual`` section's) is built when
    ``lambda_perc`` > 0.
    """
    slices = open_slices(slices_npz)
    height = slices.mri.shape[-1]
    if height != hparams["image_size"]:
        raise PipelineInputError(
            f"slices are {height} px but {model} expects image_size {hparams['image_size']}",
            stage="train", path=slices_npz, fix="rerun the slices rule after changing slices.grid",
        )
    settings = RunSettings.from_config(train_config)
    train_rows, val_rows = subject_holdout(slices.index, float(train_config.get("val_fraction", 0.0)), settings.seed)
    perceptual = None
    if float(hparams.get("lambda_perc", 0.0)) > 0:
        from mri2tau.losses.perceptual import VGGPerceptualLoss

        perceptual = VGGPerceptualLoss(weights=str(train_config.get("vgg_weights", "imagenet")))
    log.info("%s: %d training / %d validation slices", model, len(train_rows), len(val_rows))
    return fit(
        model, hparams, SliceDataset(slices, train_rows), out_dir, settings,
        val_data=SliceDataset(slices, val_rows) if len(val_rows) else None,
        extra_loss=perceptual, data_info=slices.meta,
    )
