"""Pixel-wise reconstruction losses (any spatial dims, intensities in [-1, 1])."""

from __future__ import annotations

import torch
from torch import Tensor


def _masked_mean(values: Tensor, mask: Tensor | None) -> Tensor:
    """Mean of ``values`` over all elements, or over ``mask`` (broadcastable, bool or 0/1)."""
    if mask is None:
        return values.mean()
    weights = mask.to(values.dtype).expand_as(values)
    return (values * weights).sum() / weights.sum().clamp_min(1.0)


def l1_loss(fake: Tensor, real: Tensor, mask: Tensor | None = None) -> Tensor:
    """Mean absolute error between ``fake`` and ``real`` (same shape), optionally within ``mask``."""
    if fake.shape != real.shape:
        raise ValueError(f"fake {tuple(fake.shape)} and real {tuple(real.shape)} differ in shape")
    return _masked_mean((fake - real).abs(), mask)


def mse_loss(fake: Tensor, real: Tensor, mask: Tensor | None = None) -> Tensor:
    """Mean squared error between ``fake`` and ``real`` (same shape), optionally within ``mask``."""
    if fake.shape != real.shape:
        raise ValueError(f"fake {tuple(fake.shape)} and real {tuple(real.shape)} differ in shape")
    return _masked_mean(torch.square(fake - real), mask)
