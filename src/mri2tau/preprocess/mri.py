"""MRI stage: N4 -> affine (head to head) -> SyN to the full-head template -> brain mask.

Spaces and units
* input ``t1``: the subject's raw BIDS T1w NIfTI (native grid, world mm RAS+, skull on).
* ``T1_N4``: N4-corrected T1, native grid, not masked (scanner units / bias field).
* ``BRAIN_MASK_NATIVE``: the template brain mask pulled back to the native grid (uint8 0/1,
  nearest neighbour through the inverse transforms).
* ``T1_TEMPLATE``: the N4-corrected T1 resampled (linear, one resampling) onto the template
  grid and multiplied by the binary template brain mask (as the paper applies); float32.
* ``BRAIN_MASK_TEMPLATE``: the template brain mask itself (uint8 0/1).
* transforms: see :mod:`mri2tau.preprocess.registration` (``forward_transforms`` /
  ``inverse_transforms`` say how to apply them).

The affine is estimated on the head only (the T1 cut ``registration.fov_below_top_mm`` below
the top of the head, :func:`~mri2tau.preprocess.registration.head_top_crop`), so a neck in the
field of view cannot lure it; every transform holds for the whole native T1.

The registration is checked: Pearson r between the registered T1 and the template inside
the template brain mask, after the affine and after SyN, must reach
``registration.min_similarity``; otherwise the subject fails with :class:`PipelineInputError`.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import ants
import nibabel as nib
import numpy as np
import pandas as pd

from mri2tau.errors import PipelineInputError
from mri2tau.io.atomic import copy_atomic, write_json_atomic, write_tsv_atomic
from mri2tau.io.derivatives import bids_uri
from mri2tau.io.nifti import read_nifti, write_nifti
from mri2tau.log import get_logger, timed_step
from mri2tau.preprocess import qc
from mri2tau.preprocess.registration import (
    RegistrationSettings,
    affine_ants,
    affine_fsl,
    brain_correlation,
    head_top_crop,
    inverse_transforms,
    resolve_affine_backend,
    set_threads,
    syn_ants,
)
from mri2tau.preprocess.transforms import to_ants
from mri2tau.templates import TEMPLATE_NAME, load_template_t1, template_brain

log = get_logger("preprocess.mri")

STAGE = "mri_preprocess"
# The native brain mask must hold at least this fraction of the template brain volume (mL);
# less means the brain is mostly outside the T1 field of view or the registration collapsed.
MIN_MASK_VOLUME_FRACTION = 0.25
QC_COLUMNS = [
    "participant_id", "session_id", "affine_backend", "r_affine", "r_syn", "mattes_mi_syn",
    "brain_volume_native_ml", "brain_volume_template_ml", "min_similarity",
]


# ---------------------------------------------------------------- input checks
def load_t1(path: str | Path, subject: str) -> nib.Nifti1Image:
    """Read the T1 (float32, 3D); fail on a missing file, non-3D data, NaN/inf or a flat image."""
    path = Path(path)
    img, data = read_nifti(path, what="T1w image", subject=subject, stage=STAGE,
                           fix="run the conversion stage for this subject or check results/bids "
                               "(delete a truncated file there and rerun)")
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        raise PipelineInputError(f"T1w image has shape {data.shape}; expected a 3D volume", subject=subject,
                                 stage=STAGE, path=path, fix="select a single 3D T1w series for this session")
    n_bad = int(np.count_nonzero(~np.isfinite(data)))
    if n_bad:
        raise PipelineInputError(
            f"T1w image has {n_bad} NaN/inf voxels of {data.size}", subject=subject, stage=STAGE, path=path,
            fix="re-export/re-convert the T1 series (corrupt or incompletely reconstructed volume)",
        )
    if float(data.max()) <= float(data.min()):
        raise PipelineInputError(f"T1w image is constant ({float(data.min())})", subject=subject, stage=STAGE,
                                 path=path, fix="check the T1 series (empty or blank volume)")
    return nib.Nifti1Image(data, img.affine)


def n4_bias_correct(t1: ants.ANTsImage, shrink_factor: int = 4) -> tuple[ants.ANTsImage, ants.ANTsImage]:
    """N4 bias-field correction inside a head mask (``ants.get_mask``: threshold at the mean,
    largest component, closed), fitted on the T1 shrunk by ``shrink_factor`` (voxels; N4's cost
    grows with the shrunk image's voxel count). Returns (corrected T1, head mask), native grid."""
    head = ants.get_mask(t1)
    return ants.n4_bias_field_correction(t1, mask=head, shrink_factor=shrink_factor), head


def template_images(resolution_mm: float, template_path: str | None, mask_path: str | None,
                    subject: str) -> tuple[nib.Nifti1Image, np.ndarray]:
    """Full-head template T1 and its brain mask (bool) on the template grid; fail on an empty mask."""
    template = load_template_t1(resolution_mm, template_path)
    mask = template_brain(resolution_mm, mask_path)
    if not mask.any():
        raise PipelineInputError("template brain mask is empty (0 voxels)", subject=subject, stage=STAGE,
                                 path=mask_path or "shipped MNI152NLin6Asym brain mask",
                                 fix="check template.mask_path (it must overlap template.path)")
    return template, mask


# ---------------------------------------------------------------- checks on the result
def check_similarity(r_affine: float, r_syn: float, minimum: float, subject: str, t1: str | Path) -> None:
    """Fail when the affine or SyN result correlates with the template below ``minimum``."""
    for step, r in (("affine", r_affine), ("SyN", r_syn)):
        if not np.isfinite(r) or r < minimum:
            raise PipelineInputError(
                f"registration similarity after {step}: Pearson r = {r:.3f} between the registered T1 and the "
                f"template inside the template brain mask, below registration.min_similarity = {minimum}",
                subject=subject, stage=STAGE, path=t1,
                fix="open the T1 (is it a T1w head? header orientation right? heavy artefact?); if it is fine, "
                    "try registration.affine: ants with a larger registration.init_search_below, or lower "
                    "registration.min_similarity",
            )


def check_native_mask(mask_native: np.ndarray, native_affine: np.ndarray, template_volume_ml: float,
                      subject: str, t1: str | Path) -> float:
    """Fail on an empty (or nearly empty) native brain mask; return its volume in mL."""
    volume_ml = float(mask_native.sum()) * abs(np.linalg.det(native_affine[:3, :3])) / 1000.0
    if volume_ml < MIN_MASK_VOLUME_FRACTION * template_volume_ml:
        raise PipelineInputError(
            f"native brain mask is {'empty' if volume_ml == 0 else 'nearly empty'}: {volume_ml:.1f} mL "
            f"({int(mask_native.sum())} voxels) vs {template_volume_ml:.1f} mL in the template",
            subject=subject, stage=STAGE, path=t1,
            fix="check that the T1 field of view covers the whole brain and that the registration QC is sane",
        )
    return volume_ml


# ---------------------------------------------------------------- the stage
def preprocess_t1(
    *,
    t1: str | Path,
    subject: str,
    session: str,
    resolution_mm: float,
    registration: dict[str, Any],
    t1_n4: str | Path,
    t1_template: str | Path,
    t1_template_json: str | Path,
    brain_mask_template: str | Path,
    brain_mask_native: str | Path,
    xfm_affine: str | Path,
    xfm_warp: str | Path,
    xfm_invwarp: str | Path,
    qc_tsv: str | Path,
    qc_png: str | Path,
    template_path: str | None = None,
    template_mask_path: str | None = None,
) -> dict[str, Any]:
    """Rule ``mri_preprocess``: N4, affine + SyN to the template, brain masks, QC; returns the QC row.

    ``subject`` / ``session``: BIDS labels without prefixes. ``registration``: the config
    section. Every output is written only after all checks passed (no partial outputs).
    """
    settings = RegistrationSettings.from_config(registration)
    set_threads(settings.threads)
    label = f"sub-{subject}_ses-{session}"
    native = load_t1(t1, label)
    template_nib, mask = template_images(resolution_mm, template_path, template_mask_path, label)
    template = to_ants(template_nib)
    with timed_step(log, "n4", label):
        n4, head = n4_bias_correct(to_ants(native), settings.n4_shrink_factor)

    def score(affine: str | Path) -> float:
        """Brain correlation r of the N4 T1 on the template grid through an affine ``.mat``."""
        return brain_correlation(ants.apply_transforms(template, n4, [str(affine)]), template, mask)

    with tempfile.TemporaryDirectory(prefix="mri2tau_mri_") as wd:
        backend = resolve_affine_backend(settings.affine)
        affine_mat = Path(wd) / "affine.mat"
        with timed_step(log, "affine", label):
            head_only = head_top_crop(n4, head, settings.fov_below_top_mm)
            if backend == "fsl":
                ants.image_write(head_only, str(Path(wd) / "n4.nii.gz"))
                nib.save(template_nib, Path(wd) / "template.nii.gz")
                affine_fsl(Path(wd) / "n4.nii.gz", Path(wd) / "template.nii.gz", affine_mat, wd)
                r_affine = score(affine_mat)
            else:
                r_affine = affine_ants(template, head_only, score, settings, affine_mat, wd)
        with timed_step(log, "syn", label):
            syn = syn_ants(template, n4, affine_mat, settings, wd)
        r_syn = brain_correlation(syn["warped"], template, mask)
        log.info("%s: %s affine r = %.3f, SyN r = %.3f", label, backend, r_affine, r_syn)
        check_similarity(r_affine, r_syn, settings.min_similarity, label, t1)

        mask_img = to_ants(mask, template_nib.affine)
        transforms, invert = inverse_transforms(syn["affine"], syn["invwarp"])
        mask_native = ants.apply_transforms(n4, mask_img, transforms, whichtoinvert=invert,
                                            interpolator="nearestNeighbor").numpy() > 0.5
        template_volume_ml = float(mask.sum()) * resolution_mm**3 / 1000.0
        native_volume_ml = check_native_mask(mask_native, native.affine, template_volume_ml, label, t1)
        mattes = float(ants.image_similarity(template, syn["warped"], "MattesMutualInformation",
                                             fixed_mask=mask_img))
        warped = syn["warped"].numpy()

        write_nifti(t1_n4, n4.numpy(), native.affine)
        write_nifti(brain_mask_native, mask_native, native.affine, dtype=np.uint8)
        write_nifti(t1_template, warped * mask, template_nib.affine)
        write_nifti(brain_mask_template, mask, template_nib.affine, dtype=np.uint8)
        for src, dst in ((syn["affine"], xfm_affine), (syn["warp"], xfm_warp), (syn["invwarp"], xfm_invwarp)):
            copy_atomic(src, dst)

    row = {
        "participant_id": f"sub-{subject}", "session_id": f"ses-{session}", "affine_backend": backend,
        "r_affine": round(r_affine, 4), "r_syn": round(r_syn, 4), "mattes_mi_syn": round(mattes, 4),
        "brain_volume_native_ml": round(native_volume_ml, 1),
        "brain_volume_template_ml": round(template_volume_ml, 1), "min_similarity": settings.min_similarity,
    }
    write_json_atomic(t1_template_json, {
        "Description": "N4-corrected T1w, affine + SyN registered to the template (one linear resampling), "
                       "multiplied by the binary template brain mask",
        "Sources": [bids_uri(t1)],
        "SpatialReference": TEMPLATE_NAME, "ResolutionMm": resolution_mm, "SkullStripped": True,
        "AffineBackend": backend, "RegistrationSimilarity": {"r_affine": row["r_affine"], "r_syn": row["r_syn"]},
    })
    qc.three_view_png(warped, qc_png, edges_of=template.numpy(),
                      title=f"{label}: T1 (N4, affine+SyN) with template edges; r = {r_syn:.3f}")
    write_tsv_atomic(qc_tsv, pd.DataFrame([row], columns=QC_COLUMNS))
    log.info("%s: outputs written", label)
    return row


def registration_summary(qc_tsvs: list[str | Path], out: str | Path) -> pd.DataFrame:
    """Rule ``qc_registration``: one row per session from the per-subject QC TSVs, sorted."""
    table = pd.concat([pd.read_csv(p, sep="\t") for p in qc_tsvs], ignore_index=True) if qc_tsvs \
        else pd.DataFrame(columns=QC_COLUMNS)
    table = table.sort_values(["participant_id", "session_id"]).reset_index(drop=True)
    write_tsv_atomic(out, table)
    return table
