"""Template-space images of demo subjects straight from the generator (no DICOM, no registration).

For quick learning tests and benchmarks that skip conversion and preprocessing. A subject's
images here are what a registration would give that removed its head pose and random shape
variation but none of its disease atrophy (:mod:`mri2tau.demo.atrophy`): on the template grid,

* T1: the template T1 through the atrophy deformation alone, with the atrophy's CSF partial
  volume and Rician noise of a ``acquired_mm`` (default 2 mm, the demo's) acquisition averaged
  over template voxels (2.5 % of the 99th percentile x (acquired_mm / voxel_mm) ** 1.5: 0.9 %
  at 4 mm; the MRI stage's template-space T1s measure ~0.5 % above the template's own texture),
  no bias field (N4 removes it);
* SUVR: the subject's vendor-blurred true SUVR (``suvr_template_blurred`` of the full
  generator: reference mean 1.0) through the same deformation, i.e. what a perfect PET pipeline
  measures for that anatomy (no PET noise or motion);
* brain mask: the template brain mask (as the MRI stage writes it).

The subject (diagnosis, vendor, age, tau, atrophy) is the same as subject ``index`` of the full
generator with the same seed. The real MRI stage (SyN) recovers part of the macro-scale atrophy
that these images keep, so they are an upper bound on what the MRI shows after registration.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd

from mri2tau.demo import anatomy
from mri2tau.demo.atrophy import STREAM_ATROPHY, csf_intensity, subject_atrophy
from mri2tau.demo.clinical import STREAM_SUVR, STREAM_T1, SubjectPlan, plan_subject, subject_rng
from mri2tau.demo.deform import SubjectDeformation, invert_displacement, sample_template, template_lattice
from mri2tau.demo.t1 import NOISE_FRACTION, add_rician_noise, t1_signal
from mri2tau.templates import load_template_mask, load_template_t1, template_grid

#: path patterns (``{sub}``, ``{ses}``) below the output folder of :func:`write_template_cohort`
PATTERNS = {"t1": "sub-{sub}/ses-{ses}/t1_template.nii.gz", "suvr": "sub-{sub}/ses-{ses}/suvr_template.nii.gz",
            "mask": "sub-{sub}/ses-{ses}/brain_mask_template.nii.gz"}
SESSION = "bl"


@dataclass
class TemplateSubject:
    """One subject's template-space T1 (float32), SUVR (float32) and its regional atrophy table."""

    plan: SubjectPlan
    t1: np.ndarray
    suvr: np.ndarray
    atrophy: pd.DataFrame


def template_space_subject(seed: int, index: int, n_subjects: int, voxel_mm: float,
                           acquired_mm: float = 2.0) -> TemplateSubject:
    """Subject ``index`` of the ``seed`` cohort on the template grid at ``voxel_mm`` (see module doc)."""
    plan = plan_subject(seed, index, n_subjects)
    suvr, params = anatomy.subject_suvr(subject_rng(seed, index, STREAM_SUVR), plan.dx_bl, voxel_mm)
    blurred, _ = anatomy.vendor_suvr(suvr, anatomy.VENDORS[plan.manufacturer], voxel_mm)
    atrophy = subject_atrophy(subject_rng(seed, index, STREAM_ATROPHY), params["braak_elevation"], plan.age,
                              template_lattice())
    lattice = atrophy.lattice
    deformation = SubjectDeformation(rigid=np.eye(4), lattice=lattice, u=atrophy.u,
                                     w=invert_displacement(lattice, atrophy.u))
    shape, affine = template_grid(voxel_mm)
    signal, tpl_world = t1_signal(deformation, shape, affine, voxel_mm, atrophy.pv_fraction(voxel_mm),
                                  csf_intensity(voxel_mm))
    p99 = float(np.percentile(np.asarray(load_template_t1(voxel_mm).dataobj), 99))
    sigma = NOISE_FRACTION * p99 * min(acquired_mm / voxel_mm, 1.0) ** 1.5
    t1 = add_rician_noise(signal, sigma, subject_rng(seed, index, STREAM_T1))
    suvr_subject = sample_template(blurred, affine, tpl_world)
    return TemplateSubject(plan=plan, t1=t1, suvr=suvr_subject, atrophy=atrophy.table)


def _save(data: np.ndarray, affine: np.ndarray, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(np.asarray(data), affine), path)


def write_template_cohort(out_dir: str | Path, subjects: int, seed: int = 0, voxel_mm: float = 4.0,
                          indices: list[int] | None = None) -> pd.DataFrame:
    """Write subjects ``indices`` (default ``range(subjects)``) of the cohort into ``out_dir``
    (:data:`PATTERNS`, session ``bl``); return their pairs table (``sub, ses, ptid, dx,
    dx_group, manufacturer``: what the split stage reads)."""
    out = Path(out_dir)
    _, affine = template_grid(voxel_mm)
    mask = np.asarray(load_template_mask(voxel_mm).dataobj).astype(np.uint8)
    rows = []
    for index in range(subjects) if indices is None else indices:
        subject = template_space_subject(seed, index, subjects, voxel_mm)
        plan = subject.plan
        fmt = {"sub": plan.sub, "ses": SESSION}
        _save(subject.t1, affine, out / PATTERNS["t1"].format(**fmt))
        _save(subject.suvr, affine, out / PATTERNS["suvr"].format(**fmt))
        _save(mask, affine, out / PATTERNS["mask"].format(**fmt))
        rows.append({"sub": plan.sub, "ses": SESSION, "ptid": plan.ptid, "dx": plan.dx_bl, "dx_group": plan.dx_group,
                     "manufacturer": plan.manufacturer, "age": plan.age})
    return pd.DataFrame(rows)
