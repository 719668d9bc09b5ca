"""Partial-volume correction of regional PET values: the geometric transfer matrix (GTM).

Rousset, Ma & Evans 1998 (J Nucl Med 39:904). The image is modelled as piecewise constant on a
partition of the field of view into regions ``R_1..R_N`` (an integer label map, 0 = no region,
assumed to hold no activity), blurred by the scanner's point-spread function (isotropic Gaussian,
FWHM in mm). With ``t_i`` the observed mean of region ``i`` and ``G_ij`` the mean over ``R_i`` of
the blurred indicator of ``R_j`` (the fraction of region ``j``'s activity seen in ``i``),
``t = G c``: solving gives the true region values ``c`` in the image's units (Bq/mL or SUVR).

Only voxels marked ``valid`` (inside the PET field of view) enter the region means; a region
without valid voxels cannot be observed and is left out (treated as holding no activity).
Each indicator is blurred on its bounding box padded by the Gaussian's support (scipy's
``truncate = 4`` sigma), which equals blurring the whole volume, so a 1 mm grid with ~130
regions costs seconds, not minutes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from mri2tau.preprocess.harmonize import FWHM_TO_SIGMA, smooth_fwhm

_TRUNCATE = 4.0  # scipy's default Gaussian support (sigmas), used by smooth_fwhm
METHODS = ("none", "gtm")


@dataclass(frozen=True)
class GTMResult:
    """Per region 1..N (index 0 unused): valid voxel counts, observed and corrected means, the matrix."""

    counts: np.ndarray  # (N+1,) int
    observed: np.ndarray  # (N+1,) mean image value over the valid voxels (nan without any)
    corrected: np.ndarray  # (N+1,) GTM estimate (nan for regions left out)
    matrix: np.ndarray  # (N+1, N+1) G[i, j]; row/column 0 unused


def gaussian_sigma_vox(fwhm_mm: float, voxel_mm: float) -> float:
    """Gaussian sigma in voxels for a FWHM in mm."""
    return float(fwhm_mm) * FWHM_TO_SIGMA / float(voxel_mm)


def _padded(box: tuple[slice, ...], pad: int, shape: tuple[int, ...]) -> tuple[slice, ...]:
    return tuple(slice(max(s.start - pad, 0), min(s.stop + pad, n)) for s, n in zip(box, shape))


def transfer_matrix(labels: np.ndarray, fwhm_mm: float, voxel_mm: float, valid: np.ndarray) -> np.ndarray:
    """``G[i, j]`` = mean over the valid voxels of region ``i`` of the blurred indicator of region ``j``.

    ``labels``: int label map (0 = none), ``valid``: bool, same shape. Returns (N+1, N+1) with
    N = ``labels.max()``; rows of regions without valid voxels are 0.
    """
    n = int(labels.max())
    counts = np.bincount(labels[valid], minlength=n + 1).astype(np.float64)
    pad = int(_TRUNCATE * gaussian_sigma_vox(fwhm_mm, voxel_mm) + 0.5) + 1
    matrix = np.zeros((n + 1, n + 1))
    for j, box in enumerate(ndimage.find_objects(labels), start=1):
        if box is None:
            continue
        crop = _padded(box, pad, labels.shape)
        spread = smooth_fwhm(labels[crop] == j, fwhm_mm, voxel_mm)
        inside = valid[crop]
        matrix[:, j] = np.bincount(labels[crop][inside], weights=spread[inside], minlength=n + 1)
    return np.divide(matrix, counts[:, None], out=np.zeros_like(matrix), where=counts[:, None] > 0)


def gtm(image: np.ndarray, labels: np.ndarray, fwhm_mm: float, voxel_mm: float,
        valid: np.ndarray | None = None) -> GTMResult:
    """Geometric transfer matrix correction of ``image`` on the partition ``labels`` (same grid).

    ``fwhm_mm``: the image's effective resolution (Gaussian FWHM, mm) on this grid; ``voxel_mm``:
    isotropic voxel size. ``valid`` defaults to finite voxels. Corrected values are in the units
    of ``image``.
    """
    if image.shape != labels.shape:
        raise ValueError(f"image {image.shape} and label map {labels.shape} differ in shape")
    labels = labels.astype(np.int64)
    valid = np.isfinite(image) if valid is None else valid & np.isfinite(image)
    n = int(labels.max())
    counts = np.bincount(labels[valid], minlength=n + 1)
    sums = np.bincount(labels[valid], weights=image[valid].astype(np.float64), minlength=n + 1)
    observed = np.divide(sums, counts, out=np.full(n + 1, np.nan), where=counts > 0)
    matrix = transfer_matrix(labels, fwhm_mm, voxel_mm, valid)
    seen = np.flatnonzero(counts > 0)
    seen = seen[seen > 0]
    corrected = np.full(n + 1, np.nan)
    corrected[seen] = np.linalg.solve(matrix[np.ix_(seen, seen)], observed[seen])
    return GTMResult(counts=counts, observed=observed, corrected=corrected, matrix=matrix)


# ---------------------------------------------------------------- the PSF in template space
RESAMPLING_STEPS = 2  # linear resamplings of the PET grid: motion correction, then PET -> template


def resampling_fwhm_mm(pet_voxel_mm: float, steps: int = RESAMPLING_STEPS) -> float:
    """FWHM (mm) of the blur that ``steps`` linear resamplings of a ``pet_voxel_mm`` grid add.

    Linear interpolation at a sub-voxel offset u spreads a point with variance u(1-u) d^2 per
    axis, d^2/6 on average over u; ``steps`` resamplings add their variances.
    """
    return float(np.sqrt(8 * np.log(2)) * pet_voxel_mm * np.sqrt(steps / 6.0))


def template_psf_fwhm_mm(scanner_fwhm_mm: float, resampling_mm: float) -> float:
    """The PET's Gaussian FWHM (mm) in template space: scanner PSF and resampling blur in quadrature."""
    return float(np.hypot(scanner_fwhm_mm, resampling_mm))
