"""The synthetic ADNI-like demo cohort: DICOM download tree, ADNIMERGE.csv and ground truth.

Layout and truth semantics: ``docs/demo-cohort.md``. The whole cohort is generated in a hidden
temporary folder and moved into place at the end, so a failed run leaves nothing behind.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd

from mri2tau.demo import anatomy, dicom_series
from mri2tau.demo.clinical import (
    STREAM_GEOMETRY,
    STREAM_PET,
    STREAM_SUVR,
    STREAM_T1,
    SubjectPlan,
    adnimerge_table,
    cohort_table,
    plan_subject,
    subject_rng,
)
from mri2tau.demo.atrophy import STREAM_ATROPHY, SubjectAtrophy, csf_intensity, subject_atrophy, volume_table
from mri2tau.demo.deform import SubjectDeformation, apply_affine, random_deformation, random_rigid, template_lattice
from mri2tau.demo.followup import add_followups
from mri2tau.demo.pet import frame_timing, motion_matrices, quantise_per_slice, random_motion, render_frames
from mri2tau.demo.processed_pet import write_processed_pet
from mri2tau.demo.scanner import PET_FOV_MM, T1_FOV_MM, dcm2niix_layout, scanner_grid
from mri2tau.demo.t1 import T1Image, render_t1
from mri2tau.errors import PipelineInputError
from mri2tau.log import get_logger
from mri2tau.templates import template_grid

log = get_logger("demo")

HEAD_CENTRE_TEMPLATE_MM = np.array([0.0, -18.0, 10.0])  # centre of the FOVs (template world)
COORD_STEP_MM = 1.0 / 128.0  # storage step (mm) of the coordinate truth fields, exact in float32
PROCESSED_PET_STEPS = (2, 4)  # ADNI processed PET look-alikes beside the raw series (demo/processed_pet.py)
MOTION_COLUMNS = ["frame", "trans_x_mm", "trans_y_mm", "trans_z_mm", "rot_x_deg", "rot_y_deg", "rot_z_deg"]


def _save_nifti(path: Path, data: np.ndarray, affine: np.ndarray, slope: float | None = None) -> None:
    img = nib.Nifti1Image(data, affine)
    img.header.set_xyzt_units("mm", "sec")
    img.set_qform(affine, code=1)
    img.set_sform(affine, code=1)
    if slope is not None:
        img.header.set_slope_inter(slope, 0.0)
    nib.save(img, path)


def _save_coords(path: Path, coords: np.ndarray, affine: np.ndarray) -> None:
    """World-coordinate field (mm) as int16 with scl_slope COORD_STEP_MM (decodes to float)."""
    if np.abs(coords).max() > 32000 * COORD_STEP_MM:
        raise ValueError(f"coordinates beyond the int16 range of {path.name}")
    _save_nifti(path, np.rint(coords / COORD_STEP_MM).astype(np.int16), affine, COORD_STEP_MM)


def _savetxt(path: Path, matrix: np.ndarray) -> None:
    np.savetxt(path, matrix, fmt="%.10f")


def _write_geometry_truth(folder: Path, deformation: SubjectDeformation, t1: T1Image,
                          voxel_mm: float) -> None:
    tpl_shape, tpl_affine = template_grid(voxel_mm)
    stored, vox2world = dcm2niix_layout(t1.stored, t1.vox2world)
    coords, _ = dcm2niix_layout(t1.native_to_template, t1.vox2world)
    _savetxt(folder / "t1_vox2world.txt", vox2world)
    _savetxt(folder / "t1_dicom_vox2world.txt", t1.vox2world)
    _savetxt(folder / "rigid_template_to_native.txt", deformation.rigid)
    slope = float(t1.slope) if t1.slope != "1" else None
    _save_nifti(folder / "t1_native.nii.gz", stored, vox2world, slope)
    _save_coords(folder / "native_to_template_coords.nii.gz", coords, vox2world)
    to_native = deformation.template_to_native_grid(tpl_shape, tpl_affine, exact=True)
    _save_coords(folder / "template_to_native_coords.nii.gz", np.moveaxis(to_native, 0, -1), tpl_affine)


def _write_suvr_truth(folder: Path, suvr: np.ndarray, blurred: np.ndarray, vendor: anatomy.Vendor,
                      divisor: float, voxel_mm: float) -> None:
    _, tpl_affine = template_grid(voxel_mm)
    _save_nifti(folder / "suvr_template.nii.gz", suvr, tpl_affine)
    _save_nifti(folder / "suvr_template_blurred.nii.gz", blurred, tpl_affine)
    effect = {"manufacturer": vendor.name, "gain": vendor.gain, "psf_fwhm_mm": vendor.psf_fwhm_mm,
              "reference_divisor": divisor,
              "reference_region": "AAL 9001-9082 AND Desikan-Killiany Cerebellum-Cortex (8, 47)"}
    (folder / "manufacturer_effect.json").write_text(json.dumps(effect, indent=2) + "\n")


def _t1_part(plan: SubjectPlan, seed: int, voxel_mm: float, dicom_root: Path, folder: Path,
             atrophy: SubjectAtrophy) -> tuple[SubjectDeformation, np.ndarray, dict]:
    """Deformation (atrophy, then random warp) + T1 DICOM + geometry and regional volume truth;
    returns (deformation, head centre native mm, info)."""
    rng_geo = subject_rng(seed, plan.index, STREAM_GEOMETRY)
    deformation, deform_params = random_deformation(rng_geo, before=atrophy.u)
    head_native = apply_affine(deformation.rigid, HEAD_CENTRE_TEMPLATE_MM.reshape(3, 1))[:, 0]
    t1_centre = head_native + rng_geo.uniform(-5.0, 5.0, 3)
    t1_shape, t1_vox2world = scanner_grid(plan.t1_orientation, T1_FOV_MM, voxel_mm, t1_centre)
    t1 = render_t1(deformation, t1_shape, t1_vox2world, plan.manufacturer, voxel_mm,
                   subject_rng(seed, plan.index, STREAM_T1), atrophy.pv_fraction(voxel_mm), csf_intensity(voxel_mm))
    dicom_series.write_t1_series(dicom_root, plan, seed, t1.stored, t1.slope, t1.intercept, t1_vox2world)
    _write_geometry_truth(folder, deformation, t1, voxel_mm)
    volume_table(atrophy, deformation.u, voxel_mm).to_csv(folder / "atrophy.tsv", sep="\t", index=False,
                                                           float_format="%.6f")
    return deformation, head_native, {"deformation": deform_params, "t1": t1.params, "t1_shape": list(t1_shape)}


def _suvr_part(plan: SubjectPlan, seed: int, voxel_mm: float, truth_root: Path,
               all_manufacturers: bool) -> tuple[np.ndarray, dict]:
    """True and vendor-blurred SUVR truth; returns (blurred SUVR, template grid; parameters)."""
    folder = truth_root / f"sub-{plan.sub}"
    suvr, suvr_params = anatomy.subject_suvr(subject_rng(seed, plan.index, STREAM_SUVR), plan.dx_bl, voxel_mm)
    vendor = anatomy.VENDORS[plan.manufacturer]
    blurred, divisor = anatomy.vendor_suvr(suvr, vendor, voxel_mm)
    _write_suvr_truth(folder, suvr, blurred, vendor, divisor, voxel_mm)
    if all_manufacturers:
        for other in anatomy.VENDORS.values():
            out = truth_root / "manufacturers" / other.name
            out.mkdir(parents=True, exist_ok=True)
            other_map, _ = anatomy.vendor_suvr(suvr, other, voxel_mm)
            _save_nifti(out / f"sub-{plan.sub}_suvr_template_blurred.nii.gz", other_map,
                        template_grid(voxel_mm)[1])
    return blurred, suvr_params


def _pet_part(plan: SubjectPlan, seed: int, voxel_mm: float, dicom_root: Path, folder: Path,
              deformation: SubjectDeformation, head_native: np.ndarray, suvr_blurred: np.ndarray) -> None:
    """Session pose, frames with motion, PET DICOM and the PET truth files."""
    rng_pet = subject_rng(seed, plan.index, STREAM_PET)
    t1_to_pet, _, _ = random_rigid(rng_pet, 8.0, 15.0, head_native)  # session-to-session head pose
    pet_to_t1 = np.linalg.inv(t1_to_pet)
    pet_centre = apply_affine(t1_to_pet, head_native.reshape(3, 1))[:, 0] + rng_pet.uniform(-5.0, 5.0, 3)
    pet_voxel = max(voxel_mm, 2.0)
    pet_shape, pet_vox2world = scanner_grid("axial", PET_FOV_MM, pet_voxel, pet_centre)
    starts, durations = frame_timing()
    motion = random_motion(rng_pet, len(starts))
    motions = motion_matrices(motion, pet_centre)
    reference_bqml = float(rng_pet.uniform(8000.0, 12000.0))
    dose_bq = float(rng_pet.uniform(333e6, 407e6))
    frames = render_frames(deformation, pet_to_t1, suvr_blurred, template_grid(voxel_mm)[1], pet_shape,
                           pet_vox2world, motions, reference_bqml, rng_pet)
    stored, slopes = quantise_per_slice(frames)
    dicom_series.write_pet_series(dicom_root, plan, seed, stored, slopes, pet_vox2world, starts,
                                  durations, dose_bq)
    _savetxt(folder / "pet_vox2world.txt", pet_vox2world)
    _savetxt(folder / "pet_to_t1.txt", pet_to_t1)
    table = pd.DataFrame(motion, columns=MOTION_COLUMNS[1:])
    table.insert(0, "frame", np.arange(1, len(starts) + 1))
    table.to_csv(folder / "motion.tsv", sep="\t", index=False, float_format="%.6f")
    pet_info = {
        "reference_activity_bqml": reference_bqml,
        "injected_activity_bq": round(dose_bq),
        "injection_time": plan.injection_datetime.isoformat(),
        "series_start_time": plan.pet_series_datetime.isoformat(),
        "decay_correction": "START",
        "frame_times_start_s": starts.tolist(),
        "frame_durations_s": durations.tolist(),
        "motion_centre_mm": pet_centre.tolist(),
        "motion_frame1_to_framek": [m.tolist() for m in motions],
        "voxel_mm": pet_voxel,
        "shape": list(pet_shape),
    }
    (folder / "pet.json").write_text(json.dumps(pet_info, indent=2) + "\n")


def generate_subject(plan: SubjectPlan, seed: int, voxel_mm: float, dicom_root: Path,
                     truth_root: Path, all_manufacturers: bool,
                     processed_pet_steps: Sequence[int] = PROCESSED_PET_STEPS) -> None:
    """Render one subject's T1 + PET DICOM series (+ ADNI's processed PET ``processed_pet_steps``)
    and its truth folder ``truth_root/sub-<label>``."""
    folder = truth_root / f"sub-{plan.sub}"
    folder.mkdir(parents=True)
    blurred, suvr_params = _suvr_part(plan, seed, voxel_mm, truth_root, all_manufacturers)
    atrophy = subject_atrophy(subject_rng(seed, plan.index, STREAM_ATROPHY), suvr_params["braak_elevation"],
                              plan.age, template_lattice())
    deformation, head_native, info = _t1_part(plan, seed, voxel_mm, dicom_root, folder, atrophy)
    _pet_part(plan, seed, voxel_mm, dicom_root, folder, deformation, head_native, blurred)
    info.update(suvr=suvr_params, manufacturer=plan.manufacturer, dx_bl=plan.dx_bl, dx_group=plan.dx_group)
    (folder / "subject.json").write_text(json.dumps(info, indent=2) + "\n")
    _processed_pet_part(plan, seed, dicom_root, folder, processed_pet_steps)


def _processed_pet_part(plan: SubjectPlan, seed: int, dicom_root: Path, folder: Path, steps: Sequence[int]) -> None:
    """ADNI's processed PET look-alikes beside the raw series, from the true motion and vendor PSF."""
    if steps:
        motions = [np.array(m) for m in json.loads((folder / "pet.json").read_text())["motion_frame1_to_framek"]]
        write_processed_pet(dicom_root, plan, seed, steps, motions, anatomy.VENDORS[plan.manufacturer].psf_fwhm_mm)


def _check_args(subjects: int, voxel_mm: float) -> None:
    if subjects < 1:
        raise PipelineInputError(f"demo cohort needs at least 1 subject, got {subjects}", stage="demo",
                                 fix="set demo.subjects >= 1 (4+ gives every diagnosis and vendor)")
    if not 0.5 <= voxel_mm <= 8.0:
        raise PipelineInputError(f"demo voxel size {voxel_mm} mm is outside 0.5-8 mm", stage="demo",
                                 fix="set demo.voxel_mm to e.g. 1, 2 or 4")


def _replace(src: Path, dst: Path) -> None:
    """Move ``src`` onto ``dst``, removing an older ``dst`` first."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    if dst.is_dir() and not dst.is_symlink():
        shutil.rmtree(dst)
    elif dst.exists():
        dst.unlink()
    os.replace(src, dst)


def _generate_all(plans: Sequence[SubjectPlan], seed: int, voxel_mm: float, root: Path, all_manufacturers: bool,
                  processed_pet_steps: Sequence[int], workers: int) -> None:
    """Every subject of ``plans`` into ``root/ADNI`` + ``root/truth``, ``workers`` processes at a time.

    Each subject draws only from its own seeded streams and writes only its own folders, so the
    files do not depend on ``workers``.
    """
    args = (seed, voxel_mm, root / "ADNI", root / "truth", all_manufacturers, tuple(processed_pet_steps))
    if workers <= 1 or len(plans) <= 1:
        for plan in plans:
            _log_plan(plan)
            generate_subject(plan, *args)
        return
    with ProcessPoolExecutor(max_workers=min(workers, len(plans))) as pool:
        futures = [(plan, pool.submit(generate_subject, plan, *args)) for plan in plans]
        for plan, future in futures:
            future.result()
            _log_plan(plan)


def _log_plan(plan: SubjectPlan) -> None:
    log.info("demo subject %s (%s, %s, %s T1)", plan.ptid, plan.dx_bl, plan.manufacturer, plan.t1_orientation)


def write_demo_cohort(dicom_root: str | Path, clinical_csv: str | Path, truth_dir: str | Path,
                      subjects: int = 12, seed: int = 0, voxel_mm: float = 2.0,
                      all_manufacturers: bool = False, processed_pet_steps: Sequence[int] = PROCESSED_PET_STEPS,
                      second_visits: int = 0, workers: int = 1) -> pd.DataFrame:
    """Generate the cohort into the three given paths (the Snakemake rule's outputs).

    ``dicom_root``: folder of ``<PTID>/...`` series; ``clinical_csv``: ADNIMERGE-shaped CSV;
    ``truth_dir``: ``cohort.tsv`` + ``visits.tsv`` + ``sub-<label>/``. ``processed_pet_steps``: ADNI
    processed PET look-alikes per subject; ``second_visits``: subjects with a follow-up visit;
    ``workers``: subjects generated in parallel (processes; the files are the same for any value).
    Returns the cohort table.
    """
    _check_args(subjects, voxel_mm)
    dicom_root, clinical_csv, truth_dir = Path(dicom_root), Path(clinical_csv), Path(truth_dir)
    clinical_csv.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix=".demo-cohort-", dir=clinical_csv.parent) as tmp:
        tmp_path = Path(tmp)
        plans = [plan_subject(seed, i, subjects) for i in range(subjects)]
        _generate_all(plans, seed, voxel_mm, tmp_path, all_manufacturers, processed_pet_steps, workers)
        adnimerge_table(plans).to_csv(tmp_path / "ADNIMERGE.csv", index=False)
        table = cohort_table(plans)
        table.to_csv(tmp_path / "truth" / "cohort.tsv", sep="\t", index=False)
        add_followups(plans, second_visits, seed, tmp_path)
        params = {"subjects": subjects, "seed": seed, "voxel_mm": voxel_mm,
                  "all_manufacturers": all_manufacturers, "processed_pet_steps": list(processed_pet_steps),
                  "second_visits": second_visits}
        (tmp_path / "truth" / "generator.json").write_text(json.dumps(params, indent=2) + "\n")
        _replace(tmp_path / "ADNI", dicom_root)
        _replace(tmp_path / "truth", truth_dir)
        _replace(tmp_path / "ADNIMERGE.csv", clinical_csv)
    log.info("demo cohort: %d subjects at %.1f mm in %.1f s", subjects, voxel_mm,
             time.perf_counter() - started)
    return table


def generate_cohort(out_dir: str | Path, subjects: int = 12, seed: int = 0, voxel_mm: float = 2.0,
                    all_manufacturers: bool = False, processed_pet_steps: Sequence[int] = PROCESSED_PET_STEPS,
                    second_visits: int = 0, workers: int = 1) -> pd.DataFrame:
    """``out_dir/ADNI``, ``out_dir/ADNIMERGE.csv`` and ``out_dir/truth`` (see docs/demo-cohort.md)."""
    out = Path(out_dir)
    return write_demo_cohort(out / "ADNI", out / "ADNIMERGE.csv", out / "truth", subjects=subjects,
                             seed=seed, voxel_mm=voxel_mm, all_manufacturers=all_manufacturers,
                             processed_pet_steps=processed_pet_steps, second_visits=second_visits,
                             workers=workers)
