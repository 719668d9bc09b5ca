""""Training" the mean-image baseline (:mod:`mri2tau.models.baseline`): one pass over the
training volumes, no optimizer.

Writes what every training job writes (``results/models/mean/``): ``model.pt`` and ``best.pt``
(the same generator file: the mean volume + hyper-parameters + the volume stage's meta, so
synthesis maps it back to SUVR like any 3D model) and ``metrics.csv`` (one row: the mean absolute
difference between the training volumes and their mean, [-1, 1] units, as ``l1``).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from mri2tau.data.volumes import VolumeSet
from mri2tau.io.atomic import atomic_path
from mri2tau.log import get_logger
from mri2tau.models import registry
from mri2tau.train.checkpoint import save_generator

log = get_logger("train")


def fit_mean(model: str, volumes: VolumeSet, out_dir: str | Path, hparams: dict[str, Any],
             rows: np.ndarray | None = None) -> Path:
    """Store the voxel-wise mean of ``volumes.pet[rows]`` (default: all) in ``model``'s generator;
    return the path of ``model.pt``."""
    start = time.perf_counter()
    rows = np.arange(len(volumes)) if rows is None else np.asarray(rows)
    if len(rows) == 0:
        raise ValueError(f"{model}: no training volumes to average")
    total = np.zeros(volumes.pet.shape[1:], np.float64)
    for r in rows:
        total += volumes.pet[int(r)]
    mean = total / len(rows)
    l1 = float(np.mean([np.abs(np.asarray(volumes.pet[int(r)], np.float64) - mean).mean() for r in rows]))
    generator = registry.get(model).build(hparams)["generator"]
    if tuple(generator.mean.shape[1:]) != mean.shape:
        raise ValueError(f"{model}: image_size {hparams['image_size']} differs from the volumes {mean.shape[1:]}")
    with torch.no_grad():
        generator.mean.copy_(torch.from_numpy(mean[None]).float())
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for name in ("best.pt", "model.pt"):
        save_generator(out / name, generator, model, hparams, 1, volumes.meta)
    metrics = pd.DataFrame([{"epoch": 1, "step": len(rows), "l1": l1, "monitored_l1": l1, "best_l1": l1,
                             "seconds": time.perf_counter() - start}])
    with atomic_path(out / "metrics.csv") as tmp:
        metrics.to_csv(tmp, index=False)
    log.info("%s: mean of %d training volumes, training L1 %.4f", model, len(rows), l1)
    return out / "model.pt"
