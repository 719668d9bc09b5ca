"""Tau PET: frame motion correction, frame average, PET->T1 rigid, one resampling into template space.

Spaces and units
* ``native PET``: the grid and world (mm, RAS+) of frame 1 of the 4D PET, activity in Bq/mL.
* ``T1 native``: the subject's T1 grid/world.
* ``template``: :func:`mri2tau.templates.template_grid` at ``resolution_mm``.

Transforms are ANTs files (``.mat`` affine, displacement-field ``.nii.gz``). An ANTs transform from
``ants.registration(fixed=F, moving=M)`` maps *points* of F to points of M (in ITK's LPS world), so
the list ``[t1->template warp, t1->template affine, pet->t1 rigid]`` maps a template point to a PET
point and ``ants.apply_transforms(fixed=template, moving=pet, transformlist=that)`` resamples the
PET once, straight into template space.

Motion parameters (TSV) describe frame k relative to frame 1 in world RAS axes: a head point at
``p`` in frame 1 sits at ``R (p - c) + c + t`` in frame k, ``c`` the centre of the PET field of
view; columns ``trans_{x,y,z}_mm`` = t, ``rot_{x,y,z}_deg`` = extrinsic x-y-z Euler angles of R
(``R = Rz @ Ry @ Rx``), plus framewise displacement (Power et al., 50 mm sphere).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

import ants
import nibabel as nib
import numpy as np
import pandas as pd
from scipy.spatial.transform import Rotation

from mri2tau.errors import PipelineInputError
from mri2tau.io.atomic import atomic_path, write_tsv_atomic
from mri2tau.io.bids import sidecar_frames
from mri2tau.io.derivatives import bids_uri, pet_sidecar_meta, write_sidecar
from mri2tau.io.nifti import read_nifti
from mri2tau.log import get_logger
from mri2tau.preprocess.registration import LPS, ants_seed, at_spacing, set_threads
from mri2tau.templates import load_template_mask, template_grid

log = get_logger("preprocess.pet")

MOTION_COLUMNS = ["frame", "trans_x_mm", "trans_y_mm", "trans_z_mm", "rot_x_deg", "rot_y_deg", "rot_z_deg"]
FD_RADIUS_MM = 50.0
REGISTRATION_SEED = 20160
# Frame-to-frame rigid schedule: the full-resolution level costs ~3x the rest and adds nothing
# measurable (error 0.02-0.03 mm / deg either way on the 2 mm demo PET), so it stops at shrink 2.
MOTION_SCHEDULE = {"aff_shrink_factors": (6, 4, 2), "aff_smoothing_sigmas": (3, 2, 1),
                   "aff_iterations": (2100, 1200, 1200)}


# ---------------------------------------------------------------- image / transform conversion
def to_ants(data: np.ndarray, affine: np.ndarray) -> ants.ANTsImage:
    """A 3D array on a NIfTI grid (voxel -> RAS mm ``affine``) as an ANTs image (LPS world)."""
    img = nib.Nifti1Image(np.asarray(data, dtype=np.float32), affine)
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
    """An ANTs affine transform equal to the 4x4 RAS point map ``matrix`` (world mm)."""
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


def fov_centre(shape: Sequence[int], affine: np.ndarray) -> np.ndarray:
    """World (RAS mm) position of the centre of a grid's field of view."""
    centre_vox = (np.asarray(shape[:3], dtype=float) - 1.0) / 2.0
    return affine[:3, :3] @ centre_vox + affine[:3, 3]


def rigid_registration(
    fixed: ants.ANTsImage, moving: ants.ANTsImage, **kwargs
) -> tuple[ants.ANTsImage, ants.ANTsTransform]:
    """``ants.registration(type_of_transform="Rigid")`` with its files kept in a private temp folder.

    Returns the moving image resampled onto ``fixed`` and the transform (fixed point -> moving point).
    """
    with tempfile.TemporaryDirectory(prefix="mri2tau_rigid_") as tmp, ants_seed(REGISTRATION_SEED):
        reg = ants.registration(
            fixed=fixed, moving=moving, type_of_transform="Rigid", outprefix=f"{tmp}/", **kwargs
        )
        return reg["warpedmovout"], ants.read_transform(reg["fwdtransforms"][0])


# ---------------------------------------------------------------- input checks
def load_pet_frames(
    pet_path: str | Path, *, subject: str, expected_frames: int
) -> tuple[list[np.ndarray], np.ndarray]:
    """Frames (3D float32 arrays, Bq/mL) and the voxel->RAS affine of a dynamic PET.

    Fails with :class:`PipelineInputError` (stage ``pet_motion``) on a wrong number of frames,
    non-finite voxels, an empty (all-zero) frame, or a file that cannot be read.
    """
    img, data = read_nifti(pet_path, what="dynamic PET", subject=subject, stage="pet_motion",
                           fix="reconvert the PET series (delete the BIDS session and rerun conversion); "
                               "or list the subject in data.exclude_subjects if the DICOM export is corrupt")
    if data.ndim == 3:
        data = data[..., None]
    n_frames = data.shape[3] if data.ndim == 4 else -1
    if n_frames != expected_frames:
        raise PipelineInputError(
            f"PET has {n_frames} frames (shape {data.shape}), expected {expected_frames}",
            subject=subject, stage="pet_motion", path=pet_path,
            fix="check the PET series selection, or set data.pet_n_frames to the frames your protocol has",
        )
    n_bad = int(np.size(data) - np.count_nonzero(np.isfinite(data)))
    if n_bad:
        raise PipelineInputError(
            f"PET has {n_bad} NaN/infinite voxels",
            subject=subject, stage="pet_motion", path=pet_path,
            fix="reconvert the PET series; list the subject in data.exclude_subjects if the scanner export is corrupt",
        )
    frames = [np.ascontiguousarray(data[..., k]) for k in range(n_frames)]
    totals = np.array([float(np.abs(f).sum()) for f in frames])
    empty = [k + 1 for k, total in enumerate(totals) if total <= 1e-3 * max(np.median(totals), 1e-30)]
    if empty:
        raise PipelineInputError(
            f"PET frame(s) {empty} carry no activity (total {totals.min():.3g} vs median {np.median(totals):.3g})",
            subject=subject, stage="pet_motion", path=pet_path,
            fix="reconvert the PET series or list the subject in data.exclude_subjects",
        )
    return frames, img.affine


def frame_weights(sidecar: str | Path | None, n_frames: int) -> np.ndarray:
    """Frame weights summing to 1: ``FrameDuration`` of the BIDS sidecar, or equal weights."""
    durations = None
    if sidecar and Path(sidecar).exists():
        durations = json.loads(Path(sidecar).read_text()).get("FrameDuration")
    if not durations or len(durations) != n_frames:
        durations = [1.0] * n_frames
    w = np.asarray(durations, dtype=float)
    return w / w.sum()


# ---------------------------------------------------------------- motion correction
def motion_parameters(motions: Sequence[np.ndarray], centre: np.ndarray) -> pd.DataFrame:
    """Table of motion parameters from per-frame 4x4 RAS head-motion matrices (frame 1 = identity).

    ``motions[k]`` maps a head point in frame 1 to its position in frame k+1 (world mm).
    """
    rows = []
    for k, m in enumerate(motions):
        t = m[:3, :3] @ centre + m[:3, 3] - centre
        angles = Rotation.from_matrix(m[:3, :3]).as_euler("xyz", degrees=True)
        rows.append([k + 1, *t, *angles])
    table = pd.DataFrame(rows, columns=MOTION_COLUMNS)
    table["framewise_displacement_mm"] = framewise_displacement(table)
    return table


def framewise_displacement(table: pd.DataFrame) -> np.ndarray:
    """Power framewise displacement (mm) between consecutive frames; 0 for frame 1."""
    trans = table[["trans_x_mm", "trans_y_mm", "trans_z_mm"]].to_numpy()
    rots = np.deg2rad(table[["rot_x_deg", "rot_y_deg", "rot_z_deg"]].to_numpy()) * FD_RADIUS_MM
    diffs = np.abs(np.diff(np.hstack([trans, rots]), axis=0)).sum(axis=1)
    return np.concatenate([[0.0], diffs])


def motion_correct_ants(frames: Sequence[np.ndarray], affine: np.ndarray) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Rigidly register every frame to frame 1 (antspyx, Mattes MI).

    Returns the frames resampled onto frame 1 (linear interpolation) and the head-motion
    matrices (4x4 RAS, frame 1 -> frame k, identity for frame 1).
    """
    fixed = to_ants(frames[0], affine)
    corrected, motions = [frames[0]], [np.eye(4)]
    for frame in frames[1:]:
        warped, transform = rigid_registration(
            fixed, to_ants(frame, affine), initial_transform="Identity", **MOTION_SCHEDULE
        )
        motions.append(ants_linear_to_ras(transform))
        corrected.append(warped.numpy())
    return corrected, motions


def mcflirt_available() -> bool:
    """True when FSL's ``mcflirt`` can run (``FSLDIR`` set and the binary on PATH)."""
    return bool(os.environ.get("FSLDIR")) and shutil.which("mcflirt") is not None


def mcflirt_interface(pet_path: str | Path, out_file: str | Path):  # -> nipype MCFLIRT
    """nipype MCFLIRT set up to register every frame to frame 1 and save the per-frame matrices."""
    from nipype.interfaces import fsl

    return fsl.MCFLIRT(
        in_file=str(pet_path), out_file=str(out_file), ref_vol=0,
        save_mats=True, save_plots=True, output_type="NIFTI_GZ",
    )


def flirt_to_motion(flirt_matrix: np.ndarray, frame_img: nib.Nifti1Image) -> np.ndarray:
    """Head-motion matrix (RAS, frame 1 -> frame k) from MCFLIRT's frame-k -> frame-1 FLIRT matrix."""
    from fsl.data.image import Image
    from fsl.transform.flirt import fromFlirt

    frame = Image(frame_img)
    world_k_to_1 = fromFlirt(flirt_matrix, frame, frame, from_="world", to="world")
    return np.linalg.inv(world_k_to_1)


def motion_correct_fsl(pet_path: str | Path, affine: np.ndarray) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """MCFLIRT (FSL) to frame 1: corrected frames and head-motion matrices, as :func:`motion_correct_ants`."""
    with tempfile.TemporaryDirectory() as tmp:
        result = mcflirt_interface(pet_path, Path(tmp) / "mc.nii.gz").run()
        corrected_img = nib.load(result.outputs.out_file)
        corrected = np.asarray(corrected_img.dataobj, dtype=np.float32)
        frame_img = nib.Nifti1Image(corrected[..., 0], affine)
        motions = [flirt_to_motion(np.loadtxt(m), frame_img) for m in result.outputs.mat_file]
    return [corrected[..., k] for k in range(corrected.shape[3])], motions


def choose_motion_method(method: str) -> str:
    """Resolve ``auto`` to ``fsl`` when MCFLIRT is installed, else ``ants``; check ``fsl`` is usable."""
    if method == "auto":
        return "fsl" if mcflirt_available() else "ants"
    if method == "fsl" and not mcflirt_available():
        raise RuntimeError(
            "pet.motion_correction is 'fsl' but FSL's mcflirt is not installed (FSLDIR/mcflirt). "
            "Fix: install FSL, or set pet.motion_correction: ants (or auto)."
        )
    if method not in ("fsl", "ants"):
        raise ValueError(f"pet.motion_correction: unknown method {method!r} (auto|fsl|ants)")
    return method


def correct_motion(
    pet: str | Path,
    pet_mean_out: str | Path,
    motion_out: str | Path,
    *,
    subject: str,
    expected_frames: int,
    method: str = "auto",
    sidecar: str | Path | None = None,
    mean_json: str | Path | None = None,
    threads: int = 1,
) -> pd.DataFrame:
    """Rule ``pet_motion``: motion-correct frames to frame 1, write the weighted frame mean and motion TSV.

    ``pet``: 4D PET (Bq/mL). Writes ``pet_mean_out`` (3D, native PET grid, Bq/mL) and
    ``motion_out`` (TSV, :data:`MOTION_COLUMNS` + ``framewise_displacement_mm``). ``sidecar``: the BIDS JSON
    (``FrameDuration`` weights the mean; ``PETInput`` averaged/uniform: 1 frame, no motion correction).
    ``mean_json``: the mean image's derivative sidecar (``MotionCorrection`` = the method used)."""
    set_threads(threads)
    frames, affine = load_pet_frames(pet, subject=subject, expected_frames=sidecar_frames(sidecar, expected_frames))
    method = choose_motion_method(method) if len(frames) > 1 else "none (one frame)"
    log.info("%s: motion correction of %d frame(s): %s", subject, len(frames), method)
    if method == "fsl":
        corrected, motions = motion_correct_fsl(pet, affine)
    else:  # one frame: no registration, motion = identity
        corrected, motions = motion_correct_ants(frames, affine)
    weights = frame_weights(sidecar, len(frames))
    mean = np.tensordot(weights, np.stack(corrected), axes=1).astype(np.float32)
    table = motion_parameters(motions, fov_centre(frames[0].shape, affine))
    log.info("%s: max |translation| %.2f mm, max |rotation| %.2f deg", subject,
             table.filter(like="trans_").abs().to_numpy().max(), table.filter(like="rot_").abs().to_numpy().max())
    with atomic_path(pet_mean_out) as tmp:
        out = nib.Nifti1Image(mean, affine)
        out.header.set_xyzt_units("mm", "sec")
        nib.save(out, tmp)
    write_tsv_atomic(motion_out, table.round(6))
    if mean_json is not None:
        write_sidecar(pet_mean_out, pet_sidecar_meta("mean", sources=[bids_uri(pet)], MotionCorrection=method),
                      mean_json)
    return table


# ---------------------------------------------------------------- PET -> T1 and -> template
def register_pet_to_t1(
    pet_mean: str | Path,
    t1: str | Path,
    xfm_out: str | Path,
    *,
    subject: str,
    brain_mask: str | Path | None = None,
    threads: int = 1,
) -> np.ndarray:
    """Rule ``pet_to_t1``: rigid PET->T1 registration (antspyx, Mattes mutual information).

    Writes the ANTs ``.mat`` (T1 point -> PET point, as ``ants.registration(fixed=T1,
    moving=PET)``) and returns it as a 4x4 RAS matrix. With ``brain_mask`` (T1 native grid) the
    T1 is brain-extracted first, so scalp and neck don't pull the PET (brain-only activity); the
    start is the centre-of-mass alignment, so PET and T1 headers from different sessions are fine.
    The fit runs at the PET's resolution (the T1 resampled to the PET's voxel size where finer).
    """
    set_threads(threads)
    fixed = ants.image_read(str(t1))
    if brain_mask:
        mask = ants.image_read(str(brain_mask))
        if float(mask.sum()) == 0:
            raise PipelineInputError(
                "native brain mask is empty (0 voxels)", subject=subject, stage="pet_to_t1",
                path=brain_mask, fix="check the MRI stage's brain mask / registration for this subject",
            )
        fixed = fixed * ants.resample_image_to_target(mask, fixed, interp_type="nearestNeighbor")
    moving = ants.image_read(str(pet_mean))  # a 1 mm T1 adds only time to a rigid fit of a ~6 mm FWHM PET:
    _, xfm = rigid_registration(at_spacing(fixed, min(moving.spacing)), moving, aff_metric="mattes")
    with atomic_path(xfm_out, suffix=".mat") as tmp:
        ants.write_transform(xfm, str(tmp))
    matrix = ants_linear_to_ras(xfm)
    log.info("%s: PET->T1 rigid, translation at origin %s mm", subject, np.round(matrix[:3, 3], 2))
    return matrix


def template_reference(resolution_mm: float) -> ants.ANTsImage:
    """An all-zero ANTs image on the template grid (the ``fixed`` of the final resampling)."""
    shape, affine = template_grid(resolution_mm)
    return to_ants(np.zeros(shape, dtype=np.float32), affine)


def brain_overlap(pet_template: np.ndarray, brain_mask: np.ndarray) -> float:
    """Fraction (0..1) of template brain voxels where the PET carries activity.

    A voxel counts when its value exceeds 10 % of the 99th percentile of the positive PET
    values anywhere in the image, so a PET whose field of view misses the brain scores ~0.
    """
    positive = pet_template[pet_template > 0]
    if positive.size == 0 or not brain_mask.any():
        return 0.0
    threshold = 0.1 * float(np.percentile(positive, 99))
    return float(np.mean(pet_template[brain_mask] > threshold))


def pet_to_template(
    pet_mean: str | Path,
    pet_to_t1: str | Path,
    t1_to_template: Sequence[str | Path],
    out: str | Path,
    *,
    subject: str,
    resolution_mm: float,
    min_brain_overlap: float = 0.5,
    template_mask: str | None = None,
    threads: int = 1,
) -> float:
    """Rule ``pet_to_template``: the frame mean in template space (Bq/mL), ONE linear resampling.

    ``t1_to_template``: the MRI stage's ANTs transforms in ``apply_transforms`` order for
    T1 -> template (``[warp, affine]``). Fails (stage ``pet_to_template``) when the PET covers
    less than ``min_brain_overlap`` of the template brain mask. Returns the overlap fraction.
    """
    set_threads(threads)
    moving = ants.image_read(str(pet_mean))
    transforms = [str(t) for t in t1_to_template] + [str(pet_to_t1)]
    warped = ants.apply_transforms(
        fixed=template_reference(resolution_mm), moving=moving, transformlist=transforms,
        interpolator="linear", defaultvalue=0,
    )
    img = ants.to_nibabel_nifti(warped)
    data = np.asarray(img.dataobj)
    mask = np.asarray(load_template_mask(resolution_mm, template_mask).dataobj) > 0
    overlap = brain_overlap(data, mask)
    log.info("%s: PET covers %.1f %% of the template brain", subject, 100 * overlap)
    if overlap < min_brain_overlap:
        raise PipelineInputError(
            f"PET covers {overlap:.3f} of the template brain mask (< pet.min_brain_overlap {min_brain_overlap}); "
            "its frames do not overlap the brain",
            subject=subject, stage="pet_to_template", path=pet_mean,
            fix="check the PET field of view, the PET->T1 registration and the T1->template transforms",
        )
    with atomic_path(out) as tmp:
        nib.save(img, tmp)
    return overlap


def process_session(
    *,
    pet: str | Path,
    t1_n4: str | Path,
    brain_mask_native: str | Path,
    t1_to_template: Sequence[str | Path],
    out_dir: str | Path,
    subject: str,
    session: str,
    resolution_mm: float,
    expected_frames: int,
    settings: dict,
    sidecar: str | Path | None = None,
) -> dict[str, Path]:
    """The PET stage for one session in-process (what rules pet_motion ... suvr do), outside Snakemake.

    ``settings``: the ``pet`` config section. Writes into ``out_dir`` and returns the paths
    (keys ``mean``, ``motion``, ``pet2t1``, ``pet_template``, ``reference``, ``suvr``, ``stats``).
    """
    from mri2tau.preprocess.suvr import compute_suvr, write_reference_mask

    stem = Path(out_dir) / f"sub-{subject}_ses-{session}_trc-18FAV1451"
    out = {"mean": f"{stem}_desc-mean_pet.nii.gz", "motion": f"{stem}_desc-motion_timeseries.tsv",
           "pet2t1": f"{stem}_from-pet_to-T1w_mode-image_xfm.mat", "pet_template": f"{stem}_space-template_pet.nii.gz",
           "reference": f"{out_dir}/reference_mask.nii.gz", "suvr": f"{stem}_space-template_desc-suvr_pet.nii.gz",
           "stats": f"{stem}_desc-reference_stats.tsv"}
    threads = settings.get("threads", 1)
    correct_motion(pet, out["mean"], out["motion"], subject=subject, expected_frames=expected_frames,
                   method=settings["motion_correction"], sidecar=sidecar, threads=threads)
    register_pet_to_t1(out["mean"], t1_n4, out["pet2t1"], subject=subject, brain_mask=brain_mask_native, threads=threads)
    pet_to_template(out["mean"], out["pet2t1"], t1_to_template, out["pet_template"], subject=subject,
                    resolution_mm=resolution_mm, min_brain_overlap=settings["min_brain_overlap"], threads=threads)
    write_reference_mask(out["reference"], reference_region=settings["reference_region"], resolution_mm=resolution_mm,
                         erosion_vox=settings["erosion_vox"])
    compute_suvr(out["pet_template"], out["reference"], out["suvr"], out["stats"], subject=subject,
                 reference_region=settings["reference_region"], erosion_vox=settings["erosion_vox"],
                 trimmed_mean_percent=settings["trimmed_mean_percent"], motion=out["motion"])
    return {key: Path(value) for key, value in out.items()}
