"""What every training loop shares (the generators' :func:`mri2tau.train.loop.fit`, the Table V
classifier's :func:`mri2tau.train.classifier.train_classifier`): seeding and one epoch of steps."""

from __future__ import annotations

import os
import random
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np
import torch

#: One optimisation step on a batch (the batch's 0-based position in the epoch given): the losses
#: it reports (tensors or floats) and the batch's weight in the epoch means.
Step = Callable[[Any, int], tuple[Mapping[str, Any], float]]


def seed_rngs(seed: int) -> None:
    """Seed torch (CPU + CUDA), numpy and ``random``."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def seed_everything(seed: int, deterministic: bool) -> None:
    """:func:`seed_rngs`, and force deterministic kernels (no cuDNN benchmark) when ``deterministic``."""
    seed_rngs(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(deterministic)
    torch.backends.cudnn.benchmark = not deterministic


def run_epoch(batches: Iterable[Any], step: Step, limit: int | None = None) -> dict[str, float]:
    """Run ``step`` on each batch (the first ``limit`` only, when set); return each reported
    loss's weighted mean over the batches that reported it."""
    sums: dict[str, Any] = {}
    weights: dict[str, float] = {}
    for i, batch in enumerate(batches):
        if limit is not None and i >= limit:
            break
        losses, weight = step(batch, i)
        for key, value in losses.items():
            sums[key] = sums.get(key, 0.0) + value * weight
            weights[key] = weights.get(key, 0) + weight
    return {key: float(total) / weights[key] for key, total in sums.items()}
