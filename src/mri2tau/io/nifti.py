"""NIfTI in and out: reading files that come from outside the current job, writing atomically.

nibabel reads lazily and reports a truncated or garbled file as a bare ``EOFError`` /
``zlib.error`` / ``ImageFileError`` without the path. :func:`read_nifti` loads header and voxels
at once and turns such failures into a :class:`~mri2tau.errors.PipelineInputError` that names
the subject, the stage, the file and what to do about it. :func:`write_nifti` is the one writer
of the package's images: complete or absent (:func:`mri2tau.io.atomic.atomic_path`).

Worlds: a NIfTI affine maps voxel indices to RAS+ mm; DICOM and ITK/ANTs use LPS mm, the same
axes with x and y negated (:data:`LPS`).
"""

from __future__ import annotations

import zlib
from pathlib import Path

import nibabel as nib
import numpy as np
from nibabel.filebasedimages import ImageFileError

from mri2tau.errors import PipelineInputError
from mri2tau.io.atomic import atomic_path

LPS = np.diag([-1.0, -1.0, 1.0, 1.0])  # RAS+ <-> LPS world, homogeneous (its own inverse)
READ_ERRORS = (EOFError, OSError, zlib.error, ImageFileError, ValueError)


def read_nifti(
    path: str | Path, *, what: str, subject: str | None, stage: str, fix: str, dtype: type = np.float32,
) -> tuple[nib.Nifti1Image, np.ndarray]:
    """The image (header, voxel->RAS affine in mm) and its voxels as ``dtype`` (units as stored).

    Raises :class:`PipelineInputError` when the file is missing, truncated or not a NIfTI.
    """
    path = Path(path)
    if not path.is_file():
        raise PipelineInputError(f"{what} is missing", subject=subject, stage=stage, path=path, fix=fix)
    try:
        img = nib.load(path)
        data = np.asarray(img.dataobj, dtype=dtype)
    except READ_ERRORS as exc:
        raise PipelineInputError(
            f"{what} cannot be read ({type(exc).__name__}: {exc}); the file is truncated or not a NIfTI",
            subject=subject, stage=stage, path=path, fix=fix,
        ) from exc
    return img, data


def write_nifti(
    path: str | Path, data: np.ndarray, affine: np.ndarray, *, dtype: type = np.float32,
    space_unit: str | None = "mm", time_unit: str | None = None,
) -> Path:
    """Write ``data`` (cast to ``dtype``) on the grid ``affine`` (voxel -> RAS+ mm) to ``path`` atomically.

    ``space_unit`` / ``time_unit``: the header's ``xyzt_units`` (e.g. ``"mm"``, ``"sec"``);
    ``None`` leaves that unit ``unknown`` (a fresh header's). No scaling: voxels are stored as given.
    """
    img = nib.Nifti1Image(np.asarray(data, dtype=dtype), affine)
    img.header.set_xyzt_units(space_unit, time_unit)
    with atomic_path(path) as tmp:
        nib.save(img, tmp)
    return Path(path)
