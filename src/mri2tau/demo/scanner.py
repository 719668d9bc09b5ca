"""Scanner image grids (field of view, slice orientation) in a subject's native world (RAS mm).

A grid is a NIfTI-style ``(shape, vox2world)`` laid out as :mod:`mri2tau.io.dicom_write`
expects: +i along the DICOM row direction, +j against the column direction, +k along the
slice normal, so ``det(vox2world) < 0`` (what dcm2niix writes for such a series).
"""

from __future__ import annotations

import numpy as np
from nibabel.orientations import apply_orientation, inv_ornt_aff, io_orientation

from mri2tau.demo.deform import euler_matrix
from mri2tau.io.nifti import LPS

# (row direction, column direction) as DICOM ImageOrientationPatient (LPS unit vectors)
ORIENTATIONS_LPS: dict[str, tuple[tuple[float, float, float], tuple[float, float, float]]] = {
    "sagittal": ((0.0, 1.0, 0.0), (0.0, 0.0, -1.0)),  # rows run posterior, columns inferior
    "axial": ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0)),  # rows run left, columns posterior
}
OBLIQUE_TILT_DEG = (0.0, 0.0, 15.0)  # the oblique T1: sagittal slices turned 15 deg about S-I

# Field of view (mm) along the scanner's L-R, A-P, S-I axes.
T1_FOV_MM = (192.0, 224.0, 224.0)
PET_FOV_MM = (220.0, 220.0, 180.0)


def orientation_vectors(orientation: str) -> tuple[np.ndarray, np.ndarray]:
    """(row, column) LPS unit vectors for ``sagittal``, ``axial`` or ``oblique``."""
    if orientation == "oblique":
        row, col = ORIENTATIONS_LPS["sagittal"]
        rot = euler_matrix(np.array(OBLIQUE_TILT_DEG))
        return rot @ np.array(row), rot @ np.array(col)
    row, col = ORIENTATIONS_LPS[orientation]
    return np.array(row), np.array(col)


def scanner_grid(orientation: str, fov_mm: tuple[float, float, float], voxel_mm: float,
                 centre_ras: np.ndarray) -> tuple[tuple[int, int, int], np.ndarray]:
    """Shape and vox2world (RAS mm) of an isotropic grid centred on ``centre_ras``.

    ``fov_mm`` is given along (L-R, A-P, S-I); each image axis takes the extent of the scanner
    axis it is closest to.
    """
    row, col = orientation_vectors(orientation)
    normal = np.cross(row, col)
    axes_ras = [LPS[:3, :3] @ row, -(LPS[:3, :3] @ col), LPS[:3, :3] @ normal]
    shape = tuple(int(round(fov_mm[int(np.argmax(np.abs(a)))] / voxel_mm)) for a in axes_ras)
    m = np.eye(4)
    for c, a in enumerate(axes_ras):
        m[:3, c] = a * voxel_mm
    m[:3, 3] = np.asarray(centre_ras, float) - m[:3, :3] @ ((np.array(shape) - 1) / 2.0)
    return shape, m  # type: ignore[return-value]


def dcm2niix_layout(volume: np.ndarray, vox2world: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The voxel layout dcm2niix writes for a 3D MR acquisition by default (``-x n``).

    dcm2niix turns 3D acquisitions (MRAcquisitionType 3D) to the closest RAS axes without
    resampling (axis permutation and flips only). ``volume`` is indexed ``[i, j, k, ...]`` as
    written by :mod:`mri2tau.io.dicom_write`; returns (reoriented volume, its vox2world).
    """
    ornt = io_orientation(vox2world)
    out = apply_orientation(volume, ornt) if volume.ndim == 3 else np.stack(
        [apply_orientation(volume[..., c], ornt) for c in range(volume.shape[-1])], axis=-1)
    return np.ascontiguousarray(out), vox2world @ inv_ornt_aff(ornt, volume.shape[:3])
