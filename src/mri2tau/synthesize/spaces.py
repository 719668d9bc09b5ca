"""Value scales and spaces of synthesis: T1 -> network input, network output -> SUVR, template -> native.

* :func:`t1_to_unit`: template-grid T1 -> [-1, 1] as in training
  (:func:`mri2tau.data.slices.scale_t1`: brain percentiles, -1 outside the brain when ``mask_brain``).
* :func:`unit_to_suvr`: network output in [-1, 1] -> standardized SUVR through the fixed SUVR
  window (:func:`mri2tau.data.slices.pet_from_unit`), 0 outside the brain when ``mask_brain``.
* :func:`destandardize`: the inverse of the by-manufacturer standardization
  (:func:`mri2tau.preprocess.harmonize.apply_map`) -> SUVR units.
* :func:`template_to_native`: template grid -> the subject's native T1 grid through the inverse
  registration transforms (:func:`mri2tau.preprocess.registration.inverse_transforms`).
* :func:`write_synthetic`: a synthetic SUVR volume as float32 NIfTI (mm), atomically.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np

from mri2tau.data.geometry import BACKGROUND, VolumeGeometry
from mri2tau.data.slices import pet_from_unit, scale_t1
from mri2tau.io.nifti import write_nifti

SYNTH_DESCRIPTION = "mri2tau synthetic tau PET, SUVR"


@dataclass(frozen=True)
class ModelScaling:
    """How a model's inputs/outputs map to T1 and SUVR (from the model file's ``data`` meta).

    pet_window: SUVR mapped to [-1, 1]. t1_percentiles: brain percentiles mapped to -1 / 1.
    mask_brain: -1 (T1) / 0 SUVR (PET) outside the brain. grid: side of the padded cube (2D).
    geometry: the volume box on the template grid (3D).
    """

    pet_window: tuple[float, float]
    t1_percentiles: tuple[float, float]
    mask_brain: bool
    grid: int | None = None
    geometry: VolumeGeometry | None = None


def t1_to_unit(t1: np.ndarray, brain: np.ndarray, scaling: ModelScaling) -> np.ndarray:
    """Template-grid T1 -> [-1, 1] as in training (-1 outside the brain when ``mask_brain``)."""
    unit = scale_t1(t1, brain, scaling.t1_percentiles)
    if scaling.mask_brain:
        unit[~brain] = BACKGROUND
    return unit


def unit_to_suvr(pet_unit: np.ndarray, brain: np.ndarray, scaling: ModelScaling) -> np.ndarray:
    """PET in [-1, 1] -> standardized SUVR (template grid); 0 outside the brain when ``mask_brain``."""
    suvr = pet_from_unit(pet_unit, scaling.pet_window)
    if scaling.mask_brain:
        suvr[~brain] = 0.0
    return suvr


def destandardize(suvr_std: np.ndarray, brain: np.ndarray, scale: float, offset: float) -> np.ndarray:
    """Undo the by-manufacturer map ``x' = scale * x + offset`` inside ``brain`` (SUVR units)."""
    from mri2tau.preprocess.harmonize import apply_map

    return apply_map(suvr_std, brain, 1.0 / scale, -offset / scale)


def subject_scale_offset(params: dict | None, manufacturer: str, subject: str, on_unknown: str) -> tuple[float, float]:
    """The subject's standardization map (scale, offset) from ``harmonization.json`` ``params``;
    identity (1, 0) without ``params``."""
    if params is None:
        return 1.0, 0.0
    from mri2tau.preprocess.harmonize import subject_map

    return subject_map(params, manufacturer, subject=subject, on_unknown=on_unknown)


def template_to_native(
    volume: np.ndarray, template_affine: np.ndarray, native: nib.Nifti1Image, xfm_affine: str | Path,
    xfm_invwarp: str | Path, interpolation: str = "linear",
) -> np.ndarray:
    """Resample a template-grid volume onto the native T1 grid through the inverse transforms."""
    import ants

    from mri2tau.preprocess.registration import inverse_transforms
    from mri2tau.preprocess.transforms import to_ants

    transforms, invert = inverse_transforms(xfm_affine, xfm_invwarp)
    moved = ants.apply_transforms(
        fixed=to_ants(np.asarray(native.dataobj, np.float32).squeeze(), native.affine),
        moving=to_ants(volume, template_affine),
        transformlist=transforms, whichtoinvert=invert, interpolator=interpolation,
    )
    return moved.numpy().astype(np.float32)


def write_synthetic(data: np.ndarray, affine: np.ndarray, path: str | Path) -> Path:
    """Write a synthetic SUVR volume (float32, mm units, described in the header) atomically."""
    return write_nifti(path, data, affine, description=SYNTH_DESCRIPTION)
