"""Tau PET: PET->T1 rigid, one resampling into template space (after :mod:`~mri2tau.preprocess.motion`).

Spaces and units
* ``native PET``: the grid and world (mm, RAS+) of frame 1 of the 4D PET, activity in Bq/mL.
* ``T1 native``: the subject's T1 grid/world.
* ``template``: :func:`mri2tau.templates.template_grid` at ``resolution_mm``.

Transforms are ANTs files (``.mat`` affine, displacement-field ``.nii.gz``). An ANTs transform from
``ants.registration(fixed=F, moving=M)`` maps *points* of F to points of M (in ITK's LPS world), so
the list ``[t1->template warp, t1->template affine, pet->t1 rigid]`` maps a template point to a PET
point and ``ants.apply_transforms(fixed=template, moving=pet, transformlist=that)`` resamples the
PET once, straight into template space. RAS/LPS conversions: :mod:`mri2tau.preprocess.transforms`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import ants
import numpy as np

from mri2tau.errors import PipelineInputError
from mri2tau.io.atomic import atomic_path
from mri2tau.io.nifti import write_nifti
from mri2tau.log import get_logger
from mri2tau.paths import TRACER_LABEL, bids_name
from mri2tau.preprocess.motion import correct_motion
from mri2tau.preprocess.registration import at_spacing, rigid_registration, set_threads
from mri2tau.preprocess.transforms import ants_linear_to_ras, to_ants
from mri2tau.templates import template_brain, template_grid

log = get_logger("preprocess.pet")


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
    mask = template_brain(resolution_mm, template_mask)
    overlap = brain_overlap(data, mask)
    log.info("%s: PET covers %.1f %% of the template brain", subject, 100 * overlap)
    if overlap < min_brain_overlap:
        raise PipelineInputError(
            f"PET covers {overlap:.3f} of the template brain mask (< pet.min_brain_overlap {min_brain_overlap}); "
            "its frames do not overlap the brain",
            subject=subject, stage="pet_to_template", path=pet_mean,
            fix="check the PET field of view, the PET->T1 registration and the T1->template transforms",
        )
    write_nifti(out, data, img.affine, time_unit="sec")
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

    def name(suffix: str, ext: str = ".nii.gz", **entities: str) -> str:  # BIDS names, mri2tau.paths
        return str(Path(out_dir) / bids_name(suffix, ext, sub=subject, ses=session, trc=TRACER_LABEL, **entities))

    out = {"mean": name("pet", desc="mean"), "motion": name("timeseries", ".tsv", desc="motion"),
           "pet2t1": name("xfm", ".mat", from_="pet", to="T1w", mode="image"),
           "pet_template": name("pet", space="template"), "reference": f"{out_dir}/reference_mask.nii.gz",
           "suvr": name("pet", space="template", desc="suvr"), "stats": name("stats", ".tsv", desc="reference")}
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
