"""Image similarity metrics between real and synthetic PET, as in the MCR-VQGAN paper.

Intensities are first scaled to [0, 1] (:func:`to_unit_range`: a fixed SUVR window, the same
for real and synthetic, so the scaling can never flatter a model). Then, per 2D slice or per
3D volume:

* MSE  - mean squared error (unitless, on [0, 1] intensities),
* PSNR - 10 log10(1 / MSE) dB (data range 1),
* SSIM - Wang et al. (2004): Gaussian window sigma 1.5 (11 taps), K1 0.01, K2 0.03, population
  covariance. Computed by scikit-image; the value is the mean of the SSIM map over voxels at
  least 5 voxels from the border (scikit-image's convention). torchmetrics computes the same map.

Each metric exists "whole image" (as the paper reports) and brain-masked (only voxels inside a
binary brain mask; for SSIM the mean of the SSIM map inside the mask, borders excluded).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

SSIM_KW = dict(data_range=1.0, gaussian_weights=True, sigma=1.5, use_sample_covariance=False)
_SSIM_PAD = 5  # (11 - 1) // 2 : border voxels scikit-image leaves out of the mean


def to_unit_range(suvr: np.ndarray, window: tuple[float, float]) -> np.ndarray:
    """Map SUVR values in ``window`` = (lo, hi) linearly to [0, 1], clipping outside (float64)."""
    lo, hi = window
    if not hi > lo:
        raise ValueError(f"SUVR window must have hi > lo, got {window}")
    return np.clip((np.asarray(suvr, dtype=np.float64) - lo) / (hi - lo), 0.0, 1.0)


def mse(real: np.ndarray, fake: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Mean squared error over all voxels, or over ``mask`` voxels."""
    diff = (np.asarray(real, np.float64) - np.asarray(fake, np.float64)) ** 2
    if mask is not None:
        mask = np.asarray(mask, bool)
        if not mask.any():
            raise ValueError("empty mask: no voxels to compare")
        diff = diff[mask]
    return float(diff.mean())


def psnr(real: np.ndarray, fake: np.ndarray, mask: np.ndarray | None = None) -> float:
    """PSNR in dB for data range 1 (``inf`` for identical images)."""
    if mask is None:
        with np.errstate(divide="ignore"):
            return float(peak_signal_noise_ratio(np.asarray(real, np.float64), np.asarray(fake, np.float64), data_range=1.0))
    err = mse(real, fake, mask)
    return float("inf") if err == 0 else float(10.0 * np.log10(1.0 / err))


def ssim(real: np.ndarray, fake: np.ndarray, mask: np.ndarray | None = None) -> float:
    """SSIM (2D slice or 3D volume) on [0, 1] intensities; brain-masked if ``mask`` is given."""
    real = np.asarray(real, np.float64)
    fake = np.asarray(fake, np.float64)
    if mask is None:
        return float(structural_similarity(real, fake, **SSIM_KW))
    _, ssim_map = structural_similarity(real, fake, full=True, **SSIM_KW)
    inner = np.zeros(real.shape, bool)
    inner[tuple(slice(_SSIM_PAD, n - _SSIM_PAD) for n in real.shape)] = True
    keep = inner & np.asarray(mask, bool)
    if not keep.any():
        raise ValueError("empty mask (after excluding the SSIM border): no voxels to compare")
    return float(ssim_map[keep].mean())


def image_metrics(real: np.ndarray, fake: np.ndarray, mask: np.ndarray | None = None) -> dict[str, float]:
    """MSE, PSNR, SSIM whole image and, if ``mask`` is given, brain-masked (``*_brain``)."""
    out = {"mse": mse(real, fake), "psnr": psnr(real, fake), "ssim": ssim(real, fake)}
    if mask is not None:
        out.update(
            mse_brain=mse(real, fake, mask), psnr_brain=psnr(real, fake, mask), ssim_brain=ssim(real, fake, mask)
        )
    return out


def slice_metrics(
    real_volume: np.ndarray,
    fake_volume: np.ndarray,
    slice_indices: Iterable[int],
    mask_volume: np.ndarray | None = None,
    axis: int = 2,
) -> pd.DataFrame:
    """Metrics for each axial slice ``k`` of two [0, 1] volumes (RAS arrays: axial = axis 2)."""
    rows = []
    for k in slice_indices:
        take = lambda v: np.take(v, k, axis=axis)  # noqa: E731
        mask = None if mask_volume is None else take(mask_volume)
        if mask is not None and not mask[_SSIM_PAD:-_SSIM_PAD, _SSIM_PAD:-_SSIM_PAD].any():
            mask = None  # slice outside the brain: whole-image metrics only
        row = {"slice": int(k), **image_metrics(take(real_volume), take(fake_volume), mask)}
        rows.append(row)
    return pd.DataFrame(rows)


def summarize(frame: pd.DataFrame, columns: Iterable[str], by: str | list[str] | None = None) -> pd.DataFrame:
    """Mean and sd (ddof 1) of ``columns``, optionally per group (``by``); inf PSNR excluded."""
    cols = list(columns)
    data = frame.replace([np.inf, -np.inf], np.nan)
    grouped = data.groupby(by) if by else data.assign(_all="all").groupby("_all")
    stats = grouped[cols].agg(["mean", "std", "count"])
    stats.columns = [f"{c}_{s}" for c, s in stats.columns]
    return stats.reset_index()
