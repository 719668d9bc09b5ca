"""The mean-image baseline ``mean``: every table's floor row.

Its "generator" ignores the MRI and returns the voxel-wise mean of the training subjects'
standardized SUVR volumes, as the 3D models see them (template-space volume box, SUVR window
mapped to [-1, 1], -1 outside the brain; :mod:`mri2tau.data.volumes`). Synthesis maps it back
to SUVR and undoes each test subject's by-manufacturer standardization like any 3D model's
output. A model that does not beat it has learned nothing from the MRI.

"Training" is one pass over the training volumes (:func:`mri2tau.train.baseline.fit_mean`),
no optimizer: the mean is stored as a buffer (``mean``, shape (1, 1, X, Y, Z)).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from mri2tau.models.defaults import PRESETS
from mri2tau.models.registry import ModelSpec, register


class MeanImage(nn.Module):
    """(B, 1, X, Y, Z) MRI -> the stored mean PET volume, repeated B times (input unused)."""

    def __init__(self, image_size: list[int] | tuple[int, ...]) -> None:
        super().__init__()
        self.register_buffer("mean", torch.full((1, 1, *(int(n) for n in image_size)), -1.0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if tuple(x.shape[2:]) != tuple(self.mean.shape[2:]):
            raise ValueError(f"the mean image is {tuple(self.mean.shape[2:])} voxels; input is {tuple(x.shape[2:])}"
                             " (synthesize the whole volume box in one window)")
        return self.mean.to(x.dtype).expand(x.shape[0], *self.mean.shape[1:])


def build_mean(hp: dict[str, Any]) -> dict[str, nn.Module]:
    """``{"generator": MeanImage(image_size)}``."""
    return {"generator": MeanImage(hp["image_size"])}


register(ModelSpec("mean", 3, "mean", build_mean, PRESETS["mean"],
                   "Mean of the training subjects' standardized SUVR (no MRI input): the floor row"))
