"""Reading NIfTI files that come from outside the current job (BIDS conversion, earlier stages).

nibabel reads lazily and reports a truncated or garbled file as a bare ``EOFError`` /
``zlib.error`` / ``ImageFileError`` without the path. :func:`read_nifti` loads header and voxels
at once and turns such failures into a :class:`~mri2tau.errors.PipelineInputError` that names
the subject, the stage, the file and what to do about it.
"""

from __future__ import annotations

import zlib
from pathlib import Path

import nibabel as nib
import numpy as np
from nibabel.filebasedimages import ImageFileError

from mri2tau.errors import PipelineInputError

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
