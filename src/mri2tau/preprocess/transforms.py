"""NIfTI (nibabel, RAS+ world) <-> ANTs (ITK, LPS world): images, linear transforms, dense warps.

A NIfTI affine maps voxel indices to RAS+ mm; ANTs images and transforms live in ITK's LPS
world (x and y negated, :data:`mri2tau.io.nifti.LPS`). An ANTs transform from
``ants.registration(fixed=F, moving=M)`` maps *points* of F to points of M, so it resamples
images the other way (M onto F's grid). The 4x4 matrices here are point maps in RAS mm.
"""

from __future__ import annotations

from pathlib import Path

import ants
import nibabel as nib
import numpy as np

from mri2tau.io.atomic import atomic_path
from mri2tau.io.nifti import LPS


def to_ants(image: nib.Nifti1Image | np.ndarray, affine: np.ndarray | None = None) -> ants.ANTsImage:
    """A 3D NIfTI image, or a 3D array on the grid ``affine`` (voxel -> RAS mm), as an ANTs image.

    Voxels become float32 (scaled as nibabel reads them); units are declared mm so antspyx does not warn.
    """
    if affine is None:
        image, affine = image.dataobj, image.affine
    img = nib.Nifti1Image(np.asarray(image, dtype=np.float32), affine)
    img.header.set_xyzt_units("mm", "sec")
    return ants.from_nibabel_nifti(img)


def ants_linear_to_ras(transform: ants.ANTsTransform) -> np.ndarray:
    """4x4 RAS matrix (world mm -> world mm) of a linear ANTs transform (LPS point map)."""
    basis = [(0.0, 0.0, 0.0), (1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0)]
    mapped = np.array([ants.apply_ants_transform_to_point(transform, p) for p in basis])
    lps = np.eye(4)
    lps[:3, :3] = (mapped[1:] - mapped[0]).T
    lps[:3, 3] = mapped[0]
    return LPS @ lps @ LPS


def ras_to_ants_linear(matrix: np.ndarray) -> ants.ANTsTransform:
    """An ANTs affine transform equal to the 4x4 RAS point map ``matrix`` (world mm).

    For a transform that resamples an image A onto B's grid (``fixed=B, moving=A``), pass the
    B -> A point map, i.e. the inverse of the A -> B world map.
    """
    lps = LPS @ np.asarray(matrix, dtype=float) @ LPS
    return ants.create_ants_transform(
        transform_type="AffineTransform", precision="double", dimension=3,
        matrix=lps[:3, :3], translation=lps[:3, 3], center=[0.0, 0.0, 0.0],
    )


def dense_map_to_ants_warp(point_map: nib.Nifti1Image, out: str | Path) -> Path:
    """Write a dense point map as an ANTs displacement field (``.nii.gz``) on the map's grid.

    ``point_map``: 4D (x, y, z, 3) on a fixed grid, the moving-world position (RAS mm) of each
    fixed voxel centre (e.g. the demo truth ``template_to_native_coords``). The field is usable
    in ``ants.apply_transforms(fixed=<that grid>, ...)`` like a registration's warp.
    """
    moving = np.asarray(point_map.dataobj, dtype=np.float64)
    grid = np.stack(np.meshgrid(*[np.arange(n) for n in moving.shape[:3]], indexing="ij"), -1)
    fixed = grid @ point_map.affine[:3, :3].T + point_map.affine[:3, 3]
    displacement = (moving - fixed) * np.diag(LPS)[:3]  # RAS -> LPS vectors
    ref = to_ants(np.zeros(moving.shape[:3], np.float32), point_map.affine)
    field = ants.from_numpy(displacement.astype(np.float32), origin=ref.origin, spacing=ref.spacing,
                            direction=ref.direction, has_components=True)
    with atomic_path(out) as tmp:
        ants.image_write(field, str(tmp))
    return Path(out)
