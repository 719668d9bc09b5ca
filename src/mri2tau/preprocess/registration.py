"""T1 -> template registration: affine (FSL FLIRT or antspyx) then SyN (antspyx); rigid fits for PET.

Spaces and conventions
* ``native``: the subject's T1 grid and world (mm, RAS+ as in the NIfTI header).
* ``template``: :func:`mri2tau.templates.template_grid` at ``resolution_mm`` (MNI152NLin6Asym).
* Transforms are ANTs/ITK files: ``*.mat`` (affine) and displacement fields ``*.nii.gz``. As in
  ANTs, the transforms that resample the native image *into* the template (``fixed=template,
  moving=native``) map template *points* to native points (ITK's LPS world, mm). Image and
  point transforms therefore run in opposite directions; :func:`template_to_native_points` and
  :func:`native_to_template_points` hide that (they take and return RAS mm). Conversions between
  NIfTI/RAS and ANTs/LPS images and matrices: :mod:`mri2tau.preprocess.transforms`.

How to apply them (the PET stage and synthesis use these)::

    # native image -> template grid
    ants.apply_transforms(fixed=template, moving=native, transformlist=forward_transforms(aff, warp))
    # template image -> native grid
    tl, inv = inverse_transforms(aff, invwarp)
    ants.apply_transforms(fixed=native, moving=template, transformlist=tl, whichtoinvert=inv)
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ants
import nibabel as nib
import numpy as np
import pandas as pd

from mri2tau.errors import PipelineInputError
from mri2tau.io.nifti import LPS
from mri2tau.log import get_logger
from mri2tau.preprocess.transforms import ras_to_ants_linear

log = get_logger("preprocess.registration")

AFFINE_BACKENDS = ("auto", "fsl", "ants")
SEARCH_SPACING_MM = 6.0  # grid of the rotation search (coarse is enough to pick a start)
RIGID_SEED = 20160  # antsRegistration --random-seed of :func:`rigid_registration` (the PET stage's fits)


@dataclass(frozen=True)
class RegistrationSettings:
    """The ``registration`` config section (see ``mri2tau/schemas/registration.schema.yaml``).

    ``n4_shrink_factor``: N4 fits the bias field on the native T1 shrunk by this factor (voxels;
    real T1s are ~1 mm whatever the template grid).

    Affine (antspyx; ``affine_metric``: ``GC`` global correlation, bit-identical run to run at any
    thread count, or ``mattes`` MI, which is not with more than one thread): ``affine_iterations``
    per level with ``affine_level_mm`` (the voxel size of each level, mm) and
    ``affine_smoothing_mm`` (Gaussian sigma, mm), coarse to fine: physical units, so the schedule
    is the same at every template grid. It is estimated on the pair resampled to the finest level
    (never finer than the template grid), using only the top ``fov_below_top_mm`` of the head (FSL
    robustfov's 170 mm), so a neck or a large field of view cannot pull it (0 = the whole T1).
    ``syn_iterations``: SyN iterations per level (antspyx's own schedule: shrink 2^k, sigma k
    voxels) on the template grid, or on the template resampled to ``syn_finest_mm`` where that
    is coarser (0: the template grid);
    ``syn_flow_sigma`` / ``syn_total_sigma``: Gaussian regularisation (voxels) of the update and
    the total displacement field. ``metric``: SyN similarity; ``CC`` (neighbourhood cross-correlation,
    radius ``syn_cc_radius`` voxels) is what ANTs recommends for T1 to T1 and follows thin
    structures (entorhinal cortex) that Mattes MI leaves ~1 mm off; Mattes uses 32 bins.
    ``min_similarity``: lowest accepted Pearson r between the registered T1 and the template
    inside the template brain mask (after the affine and after SyN). ``init_search_below``: when
    the centre-of-mass started affine reaches a lower r, a rotation search
    (``ants.affine_initializer``) is tried as well and the better affine kept.
    """

    n4_shrink_factor: int = 4
    affine: str = "auto"
    affine_metric: str = "GC"
    affine_iterations: tuple[int, ...] = (2100, 1200, 1200)
    affine_level_mm: tuple[float, ...] = (8.0, 4.0, 2.0)
    affine_smoothing_mm: tuple[float, ...] = (4.0, 2.0, 1.0)
    fov_below_top_mm: float = 170.0
    syn_iterations: tuple[int, ...] = (40, 20, 10)
    syn_finest_mm: float = 0.0
    syn_flow_sigma: float = 3.0
    syn_total_sigma: float = 2.0
    metric: str = "CC"
    syn_cc_radius: int = 1
    min_similarity: float = 0.4
    init_search_below: float = 0.5
    seed: int = 20160
    threads: int = 1

    def __post_init__(self) -> None:
        levels = {len(self.affine_iterations), len(self.affine_level_mm), len(self.affine_smoothing_mm)}
        if len(levels) != 1:
            raise ValueError(
                "config keys 'registration.affine_iterations', 'affine_level_mm' and "
                "'affine_smoothing_mm' must have one entry per level (same length)"
            )

    @classmethod
    def from_config(cls, section: dict[str, Any] | None) -> RegistrationSettings:
        """Build from the validated config section (keys for the rule's resources are ignored)."""
        known = {k: v for k, v in (section or {}).items() if k in cls.__dataclass_fields__}
        for key, value in known.items():
            if isinstance(value, list):
                known[key] = tuple(value)
        return cls(**known)


# ---------------------------------------------------------------- threads, seeds
def set_threads(n_threads: int) -> None:
    """Number of ITK threads for antspyx calls in this process (1 = bit-reproducible)."""
    os.environ["ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS"] = str(int(n_threads))


@contextlib.contextmanager
def ants_seed(seed: int) -> Iterator[None]:
    """Fix antsRegistration's random metric sampling (``--random-seed``) inside the block."""
    previous = ants.config._random_seed
    ants.config._random_seed = int(seed)
    try:
        yield
    finally:
        ants.config._random_seed = previous


# ---------------------------------------------------------------- backend choice (FSL or ANTs)
def fsl_available() -> bool:
    """True when FSL's ``flirt`` can run: on PATH or in ``$FSLDIR/bin``."""
    if shutil.which("flirt"):
        return True
    fsldir = os.environ.get("FSLDIR")
    return bool(fsldir) and (Path(fsldir) / "bin" / "flirt").is_file()


def resolve_affine_backend(choice: str) -> str:
    """``auto`` -> ``fsl`` when FLIRT is installed, else ``ants``; ``fsl`` without FSL is an error."""
    if choice not in AFFINE_BACKENDS:
        raise ValueError(f"config key 'registration.affine': {choice!r} is not one of {AFFINE_BACKENDS}")
    if choice == "auto":
        return "fsl" if fsl_available() else "ants"
    if choice == "fsl" and not fsl_available():
        raise PipelineInputError(
            "registration.affine is 'fsl' but FSL's flirt is not installed (no $FSLDIR/bin/flirt, not on PATH)",
            stage="mri_preprocess",
            fix="install FSL and set FSLDIR, or set registration.affine: auto (antspyx fallback) or ants",
        )
    return choice


# ---------------------------------------------------------------- FSL FLIRT path
def flirt_interface(
    moving: str | Path, fixed: str | Path, out_matrix: str | Path, out_image: str | Path, dof: int = 12
) -> Any:
    """nipype ``FLIRT`` head-to-head affine of ``moving`` (native T1) to ``fixed`` (template).

    Correlation ratio cost, full +-90 degree search (real T1s can be oddly oriented). Returns the
    interface (``.cmdline`` shows the command; ``.run()`` needs FSL).
    """
    from nipype.interfaces import fsl

    return fsl.FLIRT(
        in_file=str(moving), reference=str(fixed), out_matrix_file=str(out_matrix), out_file=str(out_image),
        dof=dof, cost="corratio", searchr_x=[-90, 90], searchr_y=[-90, 90], searchr_z=[-90, 90],
        interp="trilinear", output_type="NIFTI_GZ",
    )


def flirt_matrix_to_itk(flirt_mat: str | Path, moving: str | Path, fixed: str | Path, out_mat: str | Path) -> None:
    """Convert FLIRT's ``-omat`` (FSL scaled-voxel convention) into an ANTs/ITK ``.mat`` (fslpy)."""
    from fsl.data.image import Image
    from fsl.transform.flirt import fromFlirt, readFlirt

    world = fromFlirt(readFlirt(str(flirt_mat)), Image(str(moving)), Image(str(fixed)), from_="world", to="world")
    # ``world`` maps native -> template (RAS mm); the ANTs file maps template points -> native points
    ants.write_transform(ras_to_ants_linear(np.linalg.inv(world)), str(out_mat))


def affine_fsl(moving: str | Path, fixed: str | Path, out_mat: str | Path, workdir: str | Path) -> None:
    """Run FLIRT (12 dof) and write its result as an ANTs ``.mat`` to ``out_mat``."""
    workdir = Path(workdir)
    flirt = flirt_interface(moving, fixed, workdir / "flirt.mat", workdir / "flirt.nii.gz")
    log.info("FLIRT: %s", flirt.cmdline)
    flirt.run(cwd=str(workdir))
    flirt_matrix_to_itk(workdir / "flirt.mat", moving, fixed, out_mat)


# ---------------------------------------------------------------- antspyx path
def brain_correlation(image: ants.ANTsImage, template: ants.ANTsImage, mask: np.ndarray) -> float:
    """Pearson r of two images on the template grid inside ``mask`` (bool, template grid)."""
    a = image.numpy()[mask].astype(np.float64)
    b = template.numpy()[mask].astype(np.float64)
    if a.std() == 0 or b.std() == 0:
        return 0.0
    return float(np.corrcoef(a, b)[0, 1])


def head_top_crop(image: ants.ANTsImage, head_mask: ants.ANTsImage, below_top_mm: float) -> ants.ANTsImage:
    """FSL robustfov's idea: ``image`` without what lies more than ``below_top_mm`` under the head's top.

    The top is the highest point (world superior axis, mm) of ``head_mask`` (same grid). Voxels
    below the plane ``below_top_mm`` under it become 0 and the grid is cropped to the rest; world
    coordinates are unchanged, so a transform estimated on the result holds for ``image``. For
    the affine's estimation only: a neck or a long field of view (real ADNI T1s include the neck)
    moves the centre of mass the affine starts from and lures it. ``below_top_mm <= 0``: ``image``.
    """
    if below_top_mm <= 0:
        return image
    # world S (ANTs' LPS z, mm) of voxel (i, j, k) = origin_z + sum_d direction[2, d] * spacing[d] * index_d
    step = np.asarray(image.direction)[2] * np.asarray(image.spacing)
    top = float((np.argwhere(head_mask.numpy() > 0) @ step).max())
    axes = [np.arange(n, dtype=np.float32) * np.float32(c) for n, c in zip(image.shape, step)]
    keep = (axes[0][:, None, None] + axes[1][None, :, None] + axes[2][None, None, :]) >= top - below_top_mm
    if keep.all():
        return image
    cropped = image.new_image_like(np.where(keep, image.numpy(), 0).astype(np.float32))
    return ants.crop_image(cropped, image.new_image_like(keep.astype(np.float32)), 1)


def affine_grid_mm(resolution_mm: float, settings: RegistrationSettings) -> float:
    """Voxel size (mm) the affine is estimated at: its finest level, never finer than the template grid."""
    return max(float(resolution_mm), float(min(settings.affine_level_mm)))


def affine_schedule(grid_mm: float, settings: RegistrationSettings) -> tuple[tuple[int, ...], tuple[float, ...]]:
    """antsRegistration shrink factors (voxels of the ``grid_mm`` grid) and smoothing sigmas (mm) per level."""
    shrink = tuple(max(1, round(level / grid_mm)) for level in settings.affine_level_mm)
    return shrink, tuple(float(s) for s in settings.affine_smoothing_mm)


def at_spacing(image: ants.ANTsImage, spacing_mm: float) -> ants.ANTsImage:
    """``image`` resampled (linear) to isotropic ``spacing_mm`` when any of its voxels is finer."""
    if min(image.spacing) >= spacing_mm - 1e-6:
        return image
    return ants.resample_image(image, [spacing_mm] * image.dimension, use_voxels=False, interp_type=0)


def _search_start(fixed: ants.ANTsImage, moving: ants.ANTsImage, out_mat: str) -> str:
    """Multi-start rotation search (+-90 degrees, 30 degree steps) on coarse copies of both images."""
    coarse = [at_spacing(im, SEARCH_SPACING_MM) for im in (fixed, moving)]
    return ants.affine_initializer(coarse[0], coarse[1], search_factor=30, radian_fraction=0.5,
                                   local_search_iterations=10, txfn=out_mat)


def _affine_run(fixed: ants.ANTsImage, moving: ants.ANTsImage, settings: RegistrationSettings, prefix: str,
                start: str | None) -> str:
    """One antspyx Affine run (``settings.affine_metric``) on the working pair; returns its ``.mat``."""
    shrink, sigmas = affine_schedule(min(fixed.spacing), settings)
    with ants_seed(settings.seed):
        reg = ants.registration(
            fixed, moving, type_of_transform="Affine", outprefix=prefix,
            initial_transform=[start] if start else None, aff_metric=settings.affine_metric,
            aff_iterations=settings.affine_iterations, aff_shrink_factors=shrink,
            aff_smoothing_sigmas=sigmas, smoothing_in_mm=True,
        )
    return reg["fwdtransforms"][0]


def affine_ants(
    template: ants.ANTsImage,
    moving: ants.ANTsImage,
    score: Callable[[str], float],
    settings: RegistrationSettings,
    out_mat: str | Path,
    workdir: str | Path,
) -> float:
    """Head-to-head affine of ``moving`` (native T1, see :func:`head_top_crop`) to ``template``.

    Estimated on both images resampled to :func:`affine_grid_mm` with the physical schedule of
    :func:`affine_schedule`, from the centre-of-mass alignment; if ``score`` (brain correlation r
    on the template grid of the affine in a ``.mat``) is below ``settings.init_search_below``, a
    rotation-search start is tried too and the better kept. Writes the ANTs ``.mat`` (template
    point -> native point) to ``out_mat``; returns its r.
    """
    workdir = Path(workdir)
    grid = affine_grid_mm(min(template.spacing), settings)
    fixed, moving = at_spacing(template, grid), at_spacing(moving, grid)
    mat = _affine_run(fixed, moving, settings, str(workdir / "affine_"), None)
    r = score(mat)
    log.info("affine (centre-of-mass start, %g mm grid): brain correlation r = %.3f", grid, r)
    if r < settings.init_search_below:
        start = _search_start(fixed, moving, str(workdir / "search_start.mat"))
        mat_search = _affine_run(fixed, moving, settings, str(workdir / "search_"), start)
        r_search = score(mat_search)
        log.info("affine (rotation-search start): brain correlation r = %.3f", r_search)
        if r_search > r:
            r, mat = r_search, mat_search
    shutil.copyfile(mat, out_mat)
    return r


def syn_ants(
    template: ants.ANTsImage,
    moving: ants.ANTsImage,
    affine_mat: str | Path,
    settings: RegistrationSettings,
    workdir: str | Path,
) -> dict[str, Any]:
    """SyN of ``moving`` (native) to ``template``, started from ``affine_mat``.

    SyN runs on the template resampled to ``settings.syn_finest_mm`` where the template grid is
    finer (antsRegistrationSyNQuick's idea: no SyN iterations at the full 1 mm resolution), so
    the warp fields are on that grid; ANTs applies them at any grid. Returns ``warped`` (native
    image on the *template* grid, one linear resampling) and the paths ``affine``, ``warp``
    (template point -> affine-space point) and ``invwarp``, all in ``workdir``.
    """
    fixed = at_spacing(template, settings.syn_finest_mm) if settings.syn_finest_mm > 0 else template
    with ants_seed(settings.seed):
        reg = ants.registration(
            fixed, moving, type_of_transform="SyNOnly", initial_transform=[str(affine_mat)],
            outprefix=str(Path(workdir) / "syn_"), syn_metric=settings.metric,
            syn_sampling=settings.syn_cc_radius if settings.metric == "CC" else 32,
            reg_iterations=settings.syn_iterations,
            flow_sigma=settings.syn_flow_sigma, total_sigma=settings.syn_total_sigma,
        )
    warp, affine = reg["fwdtransforms"]
    _, invwarp = reg["invtransforms"]
    warped = reg["warpedmovout"] if fixed is template else ants.apply_transforms(template, moving, [warp, affine])
    return {"warped": warped, "affine": affine, "warp": warp, "invwarp": invwarp}


def rigid_registration(
    fixed: ants.ANTsImage, moving: ants.ANTsImage, **kwargs: Any
) -> tuple[ants.ANTsImage, ants.ANTsTransform]:
    """``ants.registration(type_of_transform="Rigid")`` with its files kept in a private temp folder.

    Returns the moving image resampled onto ``fixed`` and the transform (fixed point -> moving point).
    """
    with tempfile.TemporaryDirectory(prefix="mri2tau_rigid_") as tmp, ants_seed(RIGID_SEED):
        reg = ants.registration(
            fixed=fixed, moving=moving, type_of_transform="Rigid", outprefix=f"{tmp}/", **kwargs
        )
        return reg["warpedmovout"], ants.read_transform(reg["fwdtransforms"][0])


# ---------------------------------------------------------------- using the transforms
def forward_transforms(affine: str | Path, warp: str | Path) -> list[str]:
    """``transformlist`` for ``ants.apply_transforms(fixed=template, moving=native image)``."""
    return [str(warp), str(affine)]


def inverse_transforms(affine: str | Path, invwarp: str | Path) -> tuple[list[str], list[bool]]:
    """``(transformlist, whichtoinvert)`` for ``ants.apply_transforms(fixed=native, moving=template image)``."""
    return [str(affine), str(invwarp)], [True, False]


def _map_points(points_ras: np.ndarray, transforms: Sequence[str], invert: Sequence[bool]) -> np.ndarray:
    pts = np.asarray(points_ras, dtype=float).reshape(-1, 3) * LPS.diagonal()[:3]
    frame = pd.DataFrame(pts, columns=["x", "y", "z"])
    out = ants.apply_transforms_to_points(3, frame, list(transforms), whichtoinvert=list(invert))
    return out[["x", "y", "z"]].to_numpy() * LPS.diagonal()[:3]


def template_to_native_points(points_ras: np.ndarray, affine: str | Path, warp: str | Path) -> np.ndarray:
    """Template world points (N x 3, RAS mm) -> native world points (RAS mm).

    Points travel opposite to images, so this uses the *forward* (native->template image) list.
    """
    return _map_points(points_ras, forward_transforms(affine, warp), [False, False])


def native_to_template_points(points_ras: np.ndarray, affine: str | Path, invwarp: str | Path) -> np.ndarray:
    """Native world points (N x 3, RAS mm) -> template world points (RAS mm)."""
    transforms, invert = inverse_transforms(affine, invwarp)
    return _map_points(points_ras, transforms, invert)


def voxel_centres(mask: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """World coordinates (N x 3, mm) of the voxels where ``mask`` is true on a grid with ``affine``."""
    ijk = np.argwhere(mask)
    return ijk @ np.asarray(affine)[:3, :3].T + np.asarray(affine)[:3, 3]


def mapping_error_mm(
    template_to_native_truth: nib.Nifti1Image, brain_mask: np.ndarray, affine: str | Path, warp: str | Path
) -> np.ndarray:
    """Distance (mm) between recovered and true native positions of template brain voxel centres.

    ``template_to_native_truth``: 4D image on the template grid whose last axis holds the true
    native world position (RAS mm) of each voxel centre (the demo cohort's truth file).
    """
    truth = np.asarray(template_to_native_truth.dataobj, dtype=float)[brain_mask]
    recovered = template_to_native_points(voxel_centres(brain_mask, template_to_native_truth.affine), affine, warp)
    return np.linalg.norm(recovered - truth, axis=1)
