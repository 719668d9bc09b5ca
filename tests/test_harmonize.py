"""By-manufacturer standardization: fitted on training subjects only, it must shrink the disagreement
between manufacturers for held-out subjects rendered under every manufacturer (issue 3 acceptance).

Vendor model = the demo cohort's (``mri2tau.demo.anatomy``: gain on SUVR - 1 and a 5-8 mm PSF per
vendor, renormalised to a reference mean of 1). Held out: the session demo cohort's own truth
(``truth/manufacturers/<Vendor>/``, 4 subjects). Training: 30 subjects per vendor with the same
diagnosis mix, rendered with the generator's ``subject_suvr`` + ``vendor_suvr`` (4 subjects are
too few to fit per-vendor statistics). Settings: the demo preset's ``harmonization`` section.
"""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from mri2tau.config import resolve_config
from mri2tau.demo import anatomy
from mri2tau.errors import PipelineInputError
from mri2tau.preprocess import harmonize as hz
from mri2tau.preprocess.suvr import write_reference_mask
from mri2tau.templates import load_template_mask, roi_masks, template_grid

RES = 4.0  # the session demo cohort's voxel size
VENDORS = list(anatomy.VENDORS)
N_PER_VENDOR = 30  # paper: 178 training subjects over three manufacturers
DX_CYCLE = ["CN", "SMC", "EMCI", "LMCI", "AD"]
SETTINGS = resolve_config({"preset": "demo"})["harmonization"]
MATCHING = SETTINGS["resolution_matching"]
BRAAK = [m for r, m in roi_masks(RES).items() if r.startswith("braak")]


def braak_means(suvr: np.ndarray) -> np.ndarray:
    return np.array([suvr[m].mean() for m in BRAAK])


def disagreement(per_vendor: dict[str, list[np.ndarray]]) -> float:
    """Mean over held-out subjects and Braak ROIs of the SD across manufacturers of ROI SUVR."""
    stacked = np.stack([np.stack(v) for v in per_vendor.values()])  # vendor, subject, roi
    return float(stacked.std(axis=0).mean())


@pytest.fixture(scope="module")
def cohort(tmp_path_factory, demo_cohort) -> dict:
    """Training files (one vendor each), the demo cohort's subjects as test rows (files x3), reference mask."""
    tmp = tmp_path_factory.mktemp("harmonize")
    assert json.loads((demo_cohort / "truth" / "generator.json").read_text())["voxel_mm"] == RES
    rng = np.random.default_rng(42)  # other subjects than the demo cohort's
    _, affine = template_grid(RES)
    rows = []
    for i in range(N_PER_VENDOR * len(VENDORS)):
        vendor, dx = VENDORS[i % len(VENDORS)], DX_CYCLE[(i // len(VENDORS)) % len(DX_CYCLE)]
        suvr, _ = anatomy.vendor_suvr(anatomy.subject_suvr(rng, dx, RES)[0], anatomy.VENDORS[vendor], RES)
        sub = f"TR{i:02d}"
        nib.save(nib.Nifti1Image(suvr, affine), tmp / f"sub-{sub}_ses-bl_suvr.nii.gz")
        rows.append({"sub": sub, "ses": "bl", "dx": dx, "manufacturer": vendor, "split": "train"})
    held_out = sorted(p.name[4:] for p in (demo_cohort / "truth").glob("sub-*"))
    manufacturers = demo_cohort / "truth" / "manufacturers"
    for sub in held_out:  # test rows under every vendor; their files (x3) must not influence the fit
        for vendor in VENDORS:
            truth = nib.load(manufacturers / vendor / f"sub-{sub}_suvr_template_blurred.nii.gz")
            label = f"{sub}{vendor}"
            nib.save(nib.Nifti1Image(np.asarray(truth.dataobj) * 3.0, affine), tmp / f"sub-{label}_ses-bl_suvr.nii.gz")
            rows.append({"sub": label, "ses": "bl", "dx": "n/a", "manufacturer": vendor, "split": "test"})
    splits = tmp / "splits.tsv"
    pd.DataFrame(rows).to_csv(splits, sep="\t", index=False)
    reference = tmp / "reference.nii.gz"  # the pet_reference rule's mask, demo preset (no erosion at 4 mm)
    write_reference_mask(reference, reference_region="cerebellar_gm", resolution_mm=RES, erosion_vox=0)
    return {"tmp": tmp, "splits": splits, "reference": reference, "held_out": held_out,
            "manufacturers": manufacturers, "pattern": str(tmp / "sub-{sub}_ses-{ses}_suvr.nii.gz"),
            "brain": np.asarray(load_template_mask(RES).dataobj) > 0}


def fit(cohort, method: str = "zscore", matching: dict | None = MATCHING) -> Path:
    name = f"params_{method}_{'matched' if matching and matching['enabled'] else 'plain'}.json"
    out = cohort["tmp"] / name
    if not out.exists():
        hz.fit_harmonization(cohort["splits"], cohort["pattern"], out, method=method, resolution_mm=RES,
                             resolution_matching_settings=matching, reference_mask=cohort["reference"])
    return out


def held_out_roi_means(cohort, params_json: Path | None, tmp_path: Path) -> dict[str, list[np.ndarray]]:
    """Braak-ROI SUVR of every held-out demo subject under every vendor, through ``harmonize_subject``."""
    out: dict[str, list[np.ndarray]] = {v: [] for v in VENDORS}
    for sub in cohort["held_out"]:
        for vendor in VENDORS:
            truth = cohort["manufacturers"] / vendor / f"sub-{sub}_suvr_template_blurred.nii.gz"
            if params_json is None:
                out[vendor].append(braak_means(np.asarray(nib.load(truth).dataobj)))
                continue
            std = tmp_path / f"{sub}{vendor}_{params_json.stem}.nii.gz"
            hz.harmonize_subject(truth, params_json, cohort["splits"], std, sub=f"{sub}{vendor}", ses="bl",
                                 resolution_mm=RES, reference_mask=cohort["reference"])
            out[vendor].append(braak_means(np.asarray(nib.load(std).dataobj)))
    return out


def test_demo_preset_states_the_demo_vendor_psfs():
    assert MATCHING["enabled"]
    assert MATCHING["scanner_fwhm_mm"] == {v.name: v.psf_fwhm_mm for v in anatomy.VENDORS.values()}
    assert MATCHING["target_fwhm_mm"] >= max(v.psf_fwhm_mm for v in anatomy.VENDORS.values())


def test_zscore_with_resolution_matching_cuts_disagreement_by_70_percent(cohort, tmp_path):
    before = disagreement(held_out_roi_means(cohort, None, tmp_path))
    matched = disagreement(held_out_roi_means(cohort, fit(cohort), tmp_path))
    plain = disagreement(held_out_roi_means(cohort, fit(cohort, matching=None), tmp_path))
    print(f"demo truth, {len(cohort['held_out'])} held-out subjects: Braak-ROI SD across manufacturers "
          f"{before:.4f} -> zscore {plain:.4f} ({1 - plain / before:.0%} less) -> resolution matching + zscore "
          f"{matched:.4f} ({1 - matched / before:.0%} less)")
    assert matched <= 0.3 * before
    assert matched < 0.6 * plain  # the PSF difference is what a linear map alone cannot undo


def test_matching_brings_each_vendor_to_the_target_psf(demo_cohort, cohort):
    """Smoothing a vendor's map by sqrt(8^2 - psf^2) equals rendering it with an 8 mm PSF (Gaussians compose)."""
    sub = cohort["held_out"][0]
    truth = np.asarray(nib.load(demo_cohort / "truth" / f"sub-{sub}" / "suvr_template.nii.gz").dataobj)
    matching = hz.resolution_matching(MATCHING, RES, cohort["reference"])
    target = MATCHING["target_fwhm_mm"]
    for vendor in ("GE", "Siemens"):
        gain = anatomy.VENDORS[vendor].gain
        rendered, _ = anatomy.vendor_suvr(truth, anatomy.VENDORS[vendor], RES)
        expected, _ = anatomy.vendor_suvr(truth, anatomy.Vendor(vendor, gain, target), RES)
        expected = expected / expected[matching.reference].mean()
        got = hz.matched_suvr(rendered, vendor, matching, subject=sub, stage="test", suvr_path="-")
        error = braak_means(got) / braak_means(expected) - 1
        raw = braak_means(rendered / rendered[matching.reference].mean()) / braak_means(expected) - 1
        assert np.abs(error).max() < 0.015, (vendor, error)  # 4 mm voxels: sampled kernels, ~1 %
        assert np.abs(raw).max() > 5 * np.abs(error).max()  # without matching the PSF difference shows


def test_matching_kernel_and_bad_settings():
    assert hz.matching_kernel_fwhm_mm(8.0, 6.0) == pytest.approx(np.sqrt(28.0))
    assert hz.matching_kernel_fwhm_mm(8.0, 8.0) == 0.0
    with pytest.raises(ValueError, match="target_fwhm_mm.*finer than a scanner's 9.0 mm"):
        hz.ResolutionMatching(8.0, {"GE": 9.0}, RES, np.ones((2, 2, 2), bool))
    assert hz.resolution_matching({**MATCHING, "enabled": False}, RES, None) is None
    with pytest.raises(ValueError, match="reference-region mask"):
        hz.resolution_matching(MATCHING, RES, None)


def test_params_record_matching_and_training_subjects_only(cohort):
    params = json.loads(fit(cohort).read_text())
    assert params["training_subjects"] == [f"sub-TR{i:02d}_ses-bl" for i in range(N_PER_VENDOR * len(VENDORS))]
    assert {m: v["n_subjects"] for m, v in params["manufacturers"].items()} == dict.fromkeys(VENDORS, N_PER_VENDOR)
    # the held-out files were written x3: had they been used, the pooled mean would be far above 1.1
    assert 0.8 < params["pooled"]["mean"] < 1.3
    record = params["resolution_matching"]
    assert record["kernel_fwhm_mm"] == pytest.approx({"Siemens": np.sqrt(28.0), "GE": np.sqrt(39.0), "Philips": 0.0})
    assert json.loads(fit(cohort, matching=None).read_text())["resolution_matching"] is None


def test_apply_writes_matched_then_standardized_suvr(cohort, tmp_path):
    params_json = fit(cohort)
    params = json.loads(params_json.read_text())
    src = cohort["pattern"].format(sub="TR01", ses="bl")  # a GE training subject
    out = tmp_path / "std.nii.gz"
    scale, offset = hz.harmonize_subject(src, params_json, cohort["splits"], out, sub="TR01", ses="bl",
                                         resolution_mm=RES, reference_mask=cohort["reference"])
    assert (scale, offset) == (params["manufacturers"]["GE"]["scale"], params["manufacturers"]["GE"]["offset"])
    matching = hz.resolution_matching(MATCHING, RES, cohort["reference"])
    matched = hz.matched_suvr(np.asarray(nib.load(src).dataobj, np.float32), "GE", matching, subject="TR01",
                              stage="test", suvr_path=src)
    assert matched[matching.reference].mean() == pytest.approx(1.0, abs=1e-5)
    after, brain = np.asarray(nib.load(out).dataobj), cohort["brain"]
    assert np.allclose(after[brain], scale * matched[brain] + offset, atol=1e-5)
    assert np.allclose(after[~brain], matched[~brain], atol=1e-6)
    assert scale < 1.0  # GE's gain 1.15 (and the sharpest PSF) gives the widest brain SUVR spread
    # the synthesis stage's inverse (mri2tau.synthesize.spaces.destandardize) returns the matched SUVR
    assert np.allclose(hz.apply_map(after, brain, 1 / scale, -offset / scale)[brain], matched[brain], atol=1e-4)


def test_minmax_and_none(cohort, tmp_path):
    before = disagreement(held_out_roi_means(cohort, None, tmp_path))
    assert disagreement(held_out_roi_means(cohort, fit(cohort, "minmax"), tmp_path)) < before
    none = fit(cohort, "none", matching=None)
    assert all(m["scale"] == 1.0 and m["offset"] == 0.0 for m in json.loads(none.read_text())["manufacturers"].values())
    assert disagreement(held_out_roi_means(cohort, none, tmp_path)) == pytest.approx(before, rel=1e-6)


def test_unknown_manufacturer_fails_or_falls_back(cohort, tmp_path):
    params = json.loads(fit(cohort).read_text())
    with pytest.raises(PipelineInputError, match=r"subject X1.*harmonize_apply.*'Canon' has no training subject"):
        hz.subject_map(params, "Canon", subject="X1")
    assert hz.subject_map(params, "Canon", subject="X1", on_unknown="identity") == (1.0, 0.0)
    matching = hz.resolution_matching(MATCHING, RES, cohort["reference"])
    suvr = np.ones(template_grid(RES)[0], np.float32)
    with pytest.raises(PipelineInputError, match=r"(?s)subject X1.*'Canon' has no scanner FWHM.*scanner_fwhm_mm\.Canon"):
        hz.matched_suvr(suvr, "Canon", matching, subject="X1", stage="harmonize_apply", suvr_path="x.nii.gz")
    assert hz.matched_suvr(suvr, "Canon", matching, subject="X1", stage="harmonize_apply", suvr_path="x.nii.gz",
                           on_unknown="identity") is suvr
    with pytest.raises(PipelineInputError, match="not in the splits table"):
        hz.harmonize_subject(cohort["pattern"].format(sub="TR00", ses="bl"), fit(cohort), cohort["splits"],
                             tmp_path / "o.nii.gz", sub="NOPE", ses="bl", resolution_mm=RES,
                             reference_mask=cohort["reference"])
    assert not (tmp_path / "o.nii.gz").exists()


def test_training_manufacturer_without_fwhm_fails_the_fit(cohort):
    matching = hz.resolution_matching({**MATCHING, "scanner_fwhm_mm": {"GE": 5.0}}, RES, cohort["reference"])
    path = cohort["pattern"].format(sub="TR00", ses="bl")  # a Siemens subject
    with pytest.raises(PipelineInputError, match=r"subject TR00.*harmonize_fit.*'Siemens' has no scanner FWHM"):
        hz.fit_harmonization_params([("TR00", "Siemens", path)], cohort["brain"], matching=matching)


def test_non_finite_training_suvr_fails_naming_subject(cohort, tmp_path):
    shape, affine = template_grid(RES)
    bad = np.ones(shape, np.float32)
    bad[cohort["brain"]] = np.nan
    path = tmp_path / "bad.nii.gz"
    nib.save(nib.Nifti1Image(bad, affine), path)
    n = int(cohort["brain"].sum())
    with pytest.raises(PipelineInputError, match=rf"subject BADX.*harmonize_fit.*{n} non-finite"):
        hz.fit_harmonization_params([("BADX", "GE", path)], cohort["brain"])


def test_unknown_method_is_rejected():
    with pytest.raises(ValueError, match="harmonization.method"):
        hz.linear_map("combat", {"sd": 1, "mean": 1}, {"sd": 1, "mean": 1})
