"""By-manufacturer standardization: fitted on training subjects only, it must shrink the disagreement
between manufacturers for held-out subjects rendered under every manufacturer.

The synthetic cohort uses the demo cohort's vendor model (docs/demo-cohort.md): SUVR_vendor =
1 + gain * (SUVR - 1) inside the head, then a Gaussian PSF, renormalised to a reference mean of 1.
Here the vendors differ in gain only (common 6 mm PSF): a per-manufacturer linear map can undo a
gain, but no intensity map can undo a PSF difference in small ROIs (see the PET stage notes).
"""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from scipy import ndimage

from mri2tau.errors import PipelineInputError
from mri2tau.preprocess import harmonize as hz
from mri2tau.preprocess.suvr import cerebellar_gm_reference
from mri2tau.templates import load_template_mask, load_template_t1, roi_masks, template_grid

RES = 4.0
VENDORS = {"Siemens": (1.00, 6.0), "GE": (1.30, 6.0), "Philips": (0.75, 6.0)}  # gain, PSF FWHM mm
N_TRAIN = 90  # 30 per manufacturer, same diagnosis mix (paper: 178 training subjects)
BRAAK_ELEVATION = {  # SUVR above cortex in Braak I..VI, as the demo cohort
    "CN": (0.20, 0.12, 0.04, 0.00, 0.00, 0.00),
    "EMCI": (0.50, 0.30, 0.30, 0.15, 0.03, 0.00),
    "LMCI": (0.75, 0.45, 0.55, 0.35, 0.10, 0.02),
    "AD": (1.20, 0.70, 1.10, 0.90, 0.60, 0.25),
}
BRAAK = [f"braak{i}" for i in range(1, 7)]


class Cohort:
    """True SUVR maps and their vendor renderings on the 4 mm template grid."""

    def __init__(self) -> None:
        self.brain = np.asarray(load_template_mask(RES).dataobj) > 0
        self.head = ndimage.binary_dilation(self.brain, iterations=3)
        t1 = np.asarray(load_template_t1(RES).dataobj)
        tissue = np.clip(t1 / np.percentile(t1[self.brain], 95), 0, 1.2)
        self.reference = cerebellar_gm_reference(RES, erosion_vox=0)
        self.rois = roi_masks(RES)
        base = np.where(self.brain, 0.5 + 0.5 * tissue, np.where(self.head, 0.6, 0.0))
        base[self.reference] = 1.0
        self.base = base.astype(np.float32)

    def truth(self, rng: np.random.Generator, dx: str) -> np.ndarray:
        suvr = self.base.copy()
        severity = rng.uniform(0.7, 1.3)
        for roi, elevation in zip(BRAAK, BRAAK_ELEVATION[dx], strict=True):
            suvr[self.rois[roi]] += elevation * severity
        return suvr

    def render(self, suvr: np.ndarray, vendor: str) -> np.ndarray:
        gain, fwhm = VENDORS[vendor]
        scaled = np.where(self.head, 1.0 + gain * (suvr - 1.0), 0.0)
        blurred = ndimage.gaussian_filter(scaled, fwhm / 2.3548 / RES, mode="constant")
        return (blurred / blurred[self.reference].mean()).astype(np.float32)

    def roi_means(self, suvr: np.ndarray) -> np.ndarray:
        return np.array([suvr[self.rois[r]].mean() for r in BRAAK])


def disagreement(per_vendor: dict[str, list[np.ndarray]]) -> float:
    """Mean over held-out subjects and Braak ROIs of the SD across manufacturers of ROI SUVR."""
    stacked = np.stack([np.stack(v) for v in per_vendor.values()])  # vendor, subject, roi
    return float(stacked.std(axis=0).mean())


@pytest.fixture(scope="module")
def cohort(tmp_path_factory) -> dict:
    """Training subjects (one vendor each, same diagnosis mix per vendor) written as files, 6 held out."""
    tmp = tmp_path_factory.mktemp("harmonize")
    c = Cohort()
    rng = np.random.default_rng(42)
    _, affine = template_grid(RES)
    rows = []
    dx_cycle = ["CN", "CN", "EMCI", "LMCI", "AD", "CN"]
    for i in range(N_TRAIN):
        dx, vendor = dx_cycle[(i // 3) % 6], list(VENDORS)[i % 3]
        sub = f"TR{i:02d}"
        nib.save(nib.Nifti1Image(c.render(c.truth(rng, dx), vendor), affine), tmp / f"sub-{sub}_ses-bl_suvr.nii.gz")
        rows.append({"sub": sub, "ses": "bl", "dx": dx, "manufacturer": vendor, "split": "train"})
    held_out = [c.truth(rng, dx) for dx in ["CN", "EMCI", "LMCI", "AD", "AD", "CN"]]
    for j, truth in enumerate(held_out):  # test rows: their files must not influence the fit
        sub = f"TE{j:02d}"
        nib.save(nib.Nifti1Image(c.render(truth, "GE") * 3.0, affine), tmp / f"sub-{sub}_ses-bl_suvr.nii.gz")
        rows.append({"sub": sub, "ses": "bl", "dx": "n/a", "manufacturer": "GE", "split": "test"})
    splits = tmp / "splits.tsv"
    pd.DataFrame(rows).to_csv(splits, sep="\t", index=False)
    return {"tmp": tmp, "c": c, "held_out": held_out, "splits": splits,
            "pattern": str(tmp / "sub-{sub}_ses-{ses}_suvr.nii.gz")}


def fit(cohort, method: str) -> dict:
    out = cohort["tmp"] / f"params_{method}.json"
    hz.fit_harmonization(cohort["splits"], cohort["pattern"], out, method=method, resolution_mm=RES)
    return json.loads(out.read_text())


def held_out_roi_means(cohort, params: dict | None) -> dict[str, list[np.ndarray]]:
    c = cohort["c"]
    out: dict[str, list[np.ndarray]] = {v: [] for v in VENDORS}
    for truth in cohort["held_out"]:
        for vendor in VENDORS:
            suvr = c.render(truth, vendor)
            if params is not None:
                scale, offset = hz.subject_map(params, vendor, subject="held-out")
                suvr = hz.apply_map(suvr, c.brain, scale, offset)
            out[vendor].append(c.roi_means(suvr))
    return out


def test_zscore_cuts_between_manufacturer_disagreement_by_70_percent(cohort):
    params = fit(cohort, "zscore")
    before = disagreement(held_out_roi_means(cohort, None))
    after = disagreement(held_out_roi_means(cohort, params))
    assert after <= 0.3 * before, f"disagreement {before:.4f} -> {after:.4f} ({1 - after / before:.0%} less)"
    print(f"zscore: Braak-ROI SD across manufacturers {before:.4f} -> {after:.4f} ({1 - after / before:.0%} less)")


def test_minmax_and_none(cohort):
    before = disagreement(held_out_roi_means(cohort, None))
    minmax = disagreement(held_out_roi_means(cohort, fit(cohort, "minmax")))
    none = fit(cohort, "none")
    assert minmax < before
    assert all(m["scale"] == 1.0 and m["offset"] == 0.0 for m in none["manufacturers"].values())
    assert disagreement(held_out_roi_means(cohort, none)) == pytest.approx(before)


def test_params_use_training_subjects_only(cohort):
    params = fit(cohort, "zscore")
    assert params["training_subjects"] == [f"sub-TR{i:02d}_ses-bl" for i in range(N_TRAIN)]
    assert {m: v["n_subjects"] for m, v in params["manufacturers"].items()} == {"GE": 30, "Philips": 30, "Siemens": 30}
    # the held-out files were written x3: had they been used, the pooled mean would be far above 1.1
    assert 0.8 < params["pooled"]["mean"] < 1.3
    assert params["pooled"]["n_subjects"] == N_TRAIN


def test_apply_writes_standardized_suvr_inside_brain_only(cohort, tmp_path):
    params_path = cohort["tmp"] / "params_zscore.json"
    hz.fit_harmonization(cohort["splits"], cohort["pattern"], params_path, method="zscore", resolution_mm=RES)
    params = json.loads(params_path.read_text())
    src = cohort["pattern"].format(sub="TR01", ses="bl")  # a GE training subject
    out = tmp_path / "std.nii.gz"
    scale, offset = hz.harmonize_subject(src, params_path, cohort["splits"], out, sub="TR01", ses="bl", resolution_mm=RES)
    assert (scale, offset) == (params["manufacturers"]["GE"]["scale"], params["manufacturers"]["GE"]["offset"])
    before, after = np.asarray(nib.load(src).dataobj), np.asarray(nib.load(out).dataobj)
    brain = cohort["c"].brain
    assert np.allclose(after[brain], scale * before[brain] + offset, atol=1e-5)
    assert np.array_equal(after[~brain], before[~brain])
    assert scale < 1.0  # GE's gain 1.3 is undone


def test_unknown_manufacturer_fails_or_falls_back(cohort, tmp_path):
    params = fit(cohort, "zscore")
    with pytest.raises(PipelineInputError, match=r"subject X1.*harmonize_apply.*'Canon' has no training subject"):
        hz.subject_map(params, "Canon", subject="X1")
    assert hz.subject_map(params, "Canon", subject="X1", on_unknown="identity") == (1.0, 0.0)
    with pytest.raises(PipelineInputError, match="not in the splits table"):
        hz.harmonize_subject(cohort["pattern"].format(sub="TR00", ses="bl"), cohort["tmp"] / "params_zscore.json",
                             cohort["splits"], tmp_path / "o.nii.gz", sub="NOPE", ses="bl", resolution_mm=RES)
    assert not (tmp_path / "o.nii.gz").exists()


def test_non_finite_training_suvr_fails_naming_subject(cohort, tmp_path):
    shape, affine = template_grid(RES)
    bad = np.ones(shape, np.float32)
    bad[load_template_mask(RES).get_fdata() > 0] = np.nan
    path = tmp_path / "bad.nii.gz"
    nib.save(nib.Nifti1Image(bad, affine), path)
    brain = cohort["c"].brain
    with pytest.raises(PipelineInputError, match=rf"subject BADX.*harmonize_fit.*{int(brain.sum())} non-finite"):
        hz.fit_harmonization_params([("BADX", "GE", path)], brain)


def test_unknown_method_is_rejected():
    with pytest.raises(ValueError, match="harmonization.method"):
        hz.linear_map("combat", {"sd": 1, "mean": 1}, {"sd": 1, "mean": 1})
