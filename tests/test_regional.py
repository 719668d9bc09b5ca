"""Regional SUVR tables, named reference regions and GTM partial-volume correction.

* table values = ROI means computed here independently (atlas label values, brain mask, PET FOV);
* GTM recovers known region values of a blurred piecewise-constant image (toy and atlas partition);
* named reference regions: documented voxel counts at 4 mm and anatomy (inferior vs whole cerebellum, pons);
* the demo truth: GTM-corrected Braak SUVR at least halves the error of the uncorrected values.
"""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from mri2tau.errors import PipelineInputError
from mri2tau.preprocess import pvc
from mri2tau.preprocess.harmonize import smooth_fwhm
from mri2tau.preprocess.regional import gtm_partition, region_atlas, regional_values
from mri2tau.preprocess.regional_tables import session_psf, session_regional, write_group_tables
from mri2tau.preprocess.suvr import reference_region_mask, write_reference_mask
from mri2tau.templates import PONS_Z_MM, load_atlas, load_template_mask, template_grid

RES = 4.0
BRAAK_ROIS = ["braak1", "braak34"]


def dk_mask(names: list[str]) -> np.ndarray:
    """Desikan-Killiany labels by FreeSurfer name, read straight from the atlas table, ∩ brain mask."""
    img, labels = load_atlas("desikan_killiany", RES)
    values = labels.loc[labels["name"].isin(names), "index"].astype(int)
    return np.isin(np.asarray(img.dataobj), values) & (np.asarray(load_template_mask(RES).dataobj) > 0)


def both(*regions: str) -> list[str]:
    return [f"ctx-{h}-{r}" for r in regions for h in ("lh", "rh")]


@pytest.fixture(scope="module")
def atlas():
    return region_atlas(RES, 0)


@pytest.fixture(scope="module")
def volume() -> np.ndarray:
    """Random positive SUVR on the template grid with a slab outside the PET field of view (0)."""
    shape, _ = template_grid(RES)
    data = np.random.default_rng(3).uniform(0.5, 3.0, shape).astype(np.float32)
    data[:, :, :6] = 0.0  # below the field of view: must not count
    return data


def test_table_values_equal_independent_roi_means(atlas, volume):
    table, _ = regional_values(volume, atlas, atlas.references["cerebellar_gm"])
    table = table.set_index("region")
    fov = volume > 0
    expected = {
        "braak1": dk_mask(both("entorhinal")),
        "braak34": dk_mask(both("parahippocampal", "fusiform", "lingual", "insula", "inferiortemporal",
                                "middletemporal", "temporalpole", "caudalanteriorcingulate",
                                "rostralanteriorcingulate", "posteriorcingulate", "isthmuscingulate")
                           + ["Left-Amygdala", "Right-Amygdala"]),
        "ctx-lh-entorhinal": dk_mask(["ctx-lh-entorhinal"]),
        "Right-Hippocampus": dk_mask(["Right-Hippocampus"]),
        "Brain-Stem": dk_mask(["Brain-Stem"]),
    }
    for region, mask in expected.items():
        assert table.loc[region, "n_voxels"] == (mask & fov).sum()
        assert table.loc[region, "suvr"] == pytest.approx(volume[mask & fov].mean(), rel=1e-6)
    assert (mask & ~fov).any()  # the brain stem reaches below the field of view: those voxels were left out
    # every DK label of the atlas is a row, plus 9 composites and the 4 reference candidates
    _, labels = load_atlas("desikan_killiany", RES)
    assert set(labels["name"]) - {"Unknown"} <= set(table.index)
    assert len(table) == len(labels) - 1 + 9 + 4
    assert "suvr_pvc" not in table


def test_gtm_recovers_piecewise_constant_regions():
    labels = np.zeros((48, 48, 48), np.int32)
    labels[4:44, 4:44, 4:44] = 1
    labels[10:22, 10:22, 10:22] = 2
    labels[24:27, 8:40, 8:40] = 3  # a thin sheet, like cortex
    labels[30:33, 30:33, 12:16] = 4  # a small nucleus
    truth = np.array([0.0, 1.0, 2.5, 1.8, 4.0])
    image = smooth_fwhm(truth[labels], 7.0, 2.0)
    valid = np.ones(labels.shape, bool)
    valid[:, :, 40:] = False  # outside the field of view
    result = pvc.gtm(image, labels, 7.0, 2.0, valid=valid)
    np.testing.assert_allclose(result.corrected[1:], truth[1:], rtol=1e-5)
    assert np.abs(result.observed[1:] - truth[1:]).max() > 0.5  # blurred means were far off
    # the wrong PSF does not recover them
    assert np.abs(pvc.gtm(image, labels, 3.0, 2.0).corrected[1:] - truth[1:]).max() > 0.2


def test_gtm_on_the_atlas_partition_recovers_region_suvr(atlas):
    """A head piecewise constant on the GTM partition, blurred with 6 mm: corrected table = truth."""
    reference = atlas.references["inferior_cerebellar_gm"]
    part, names = gtm_partition(atlas, reference)
    rng = np.random.default_rng(1)
    values = np.r_[0.0, rng.uniform(0.4, 2.5, len(names))]
    values[len(names)] = 1.0  # the reference region
    truth = values[part].astype(np.float32)
    blurred = smooth_fwhm(truth, 6.0, RES)
    table, ref_value = regional_values(blurred, atlas, reference, pvc_fwhm_mm=6.0)
    table = table.set_index("region")
    exact, _ = regional_values(truth, atlas, reference)
    exact = exact.set_index("region")
    assert ref_value == pytest.approx(1.0, abs=1e-4)
    for region in ["braak1", "braak34", "braak56", "meta_temporal", "ctx-lh-entorhinal", "Left-Amygdala"]:
        assert table.loc[region, "suvr_pvc"] == pytest.approx(exact.loc[region, "suvr"], abs=2e-3), region
        assert abs(table.loc[region, "suvr"] - exact.loc[region, "suvr"]) > 0.02, region


def test_named_reference_regions_have_the_documented_size_and_anatomy():
    shape, affine = template_grid(RES)
    counts = {name: int(reference_region_mask(name, RES, 0).sum())
              for name in ("cerebellar_gm", "inferior_cerebellar_gm", "whole_cerebellum", "pons")}
    assert counts == {"cerebellar_gm": 1675, "inferior_cerebellar_gm": 1204, "whole_cerebellum": 3186, "pons": 273}
    z = affine[2, 2] * np.arange(shape[2]) + affine[2, 3]
    masks = {name: reference_region_mask(name, RES, 0) for name in counts}
    centre_z = {name: z[np.nonzero(m)[2]].mean() for name, m in masks.items()}
    assert not (masks["inferior_cerebellar_gm"] & ~masks["cerebellar_gm"]).any()
    assert not (masks["cerebellar_gm"] & ~masks["whole_cerebellum"]).any()
    assert centre_z["inferior_cerebellar_gm"] < centre_z["cerebellar_gm"] - 3.0  # lobules III-VI left out
    pons_z = z[np.nonzero(masks["pons"])[2]]
    assert PONS_Z_MM[0] <= pons_z.min() and pons_z.max() <= PONS_Z_MM[1]
    assert not (masks["pons"] & ~dk_mask(["Brain-Stem"])).any()
    assert reference_region_mask("inferior_cerebellar_gm", RES, 1).sum() < counts["inferior_cerebellar_gm"]


def test_unknown_reference_name_fails_listing_the_names(tmp_path):
    with pytest.raises(PipelineInputError, match="inferior_cerebellar_gm"):
        write_reference_mask(tmp_path / "ref.nii.gz", reference_region="inferior_cerebelum", resolution_mm=RES)


def test_psf_needs_the_manufacturer_fwhm():
    psf = session_psf(manufacturer="GE", scanner_fwhm_mm={"GE": 5.0}, resampling="auto", pet_voxel=2.0,
                      subject="sub-X", path="pet.json")
    assert psf["ResamplingFwhmMm"] == pytest.approx(2.3548 * 2.0 / np.sqrt(3), rel=1e-3)
    assert psf["FwhmMm"] == pytest.approx(np.hypot(5.0, psf["ResamplingFwhmMm"]), rel=1e-3)
    with pytest.raises(PipelineInputError, match="scanner_fwhm_mm.Philips"):
        session_psf(manufacturer="Philips", scanner_fwhm_mm={"GE": 5.0}, resampling=1.0, pet_voxel=2.0,
                    subject="sub-X", path="pet.json")


def write_session(tmp: Path, sub: str, data: np.ndarray, reference: Path) -> dict:
    """A session's SUVR, stats, raw PET sidecar and native PET, as the rules leave them."""
    _, affine = template_grid(RES)
    folder = tmp / f"sub-{sub}" / "ses-bl" / "pet"
    folder.mkdir(parents=True)
    nib.save(nib.Nifti1Image(data, affine), folder / "suvr.nii.gz")
    nib.save(nib.Nifti1Image(np.ones((4, 4, 4), np.float32), np.diag([2.0, 2.0, 2.0, 1.0])), folder / "mean.nii.gz")
    pd.DataFrame([{"reference_region": "cerebellar_gm", "reference_mean_bqml": 9000.0,
                   "reference_n_voxels": 1675}]).to_csv(folder / "stats.tsv", sep="\t", index=False)
    (folder / "pet.json").write_text(json.dumps({"Manufacturer": "Siemens"}))
    out = {"tsv": folder / "regional.tsv", "json": folder / "regional.json"}
    session_regional(suvr=folder / "suvr.nii.gz", stats=folder / "stats.tsv", reference_mask=reference,
                     pet_sidecar=folder / "pet.json", pet_native=folder / "mean.nii.gz", out_tsv=out["tsv"],
                     out_json=out["json"], subject=sub, session="bl", resolution_mm=RES, erosion_vox=0,
                     pvc="gtm", scanner_fwhm_mm={"Siemens": 6.0})
    return out


def test_session_and_cohort_tables(tmp_path, volume):
    reference = tmp_path / "ref.nii.gz"
    write_reference_mask(reference, reference_region="cerebellar_gm", resolution_mm=RES, erosion_vox=0)
    rows = []
    for i, (sub, dx_group) in enumerate([("A1", "CN"), ("B2", "AD")]):
        out = write_session(tmp_path, sub, volume * (1 + i), reference)
        rows.append({"sub": sub, "ses": "bl", "ptid": sub, "dx": dx_group, "dx_group": dx_group,
                     "manufacturer": "Siemens", "split": "train", "regional_tsv": out["tsv"],
                     "regional_json": out["json"]})
    meta = json.loads(out["json"].read_text())
    assert meta["PartialVolumeCorrection"]["Method"] == "GTM" and meta["ReferenceMeanBqml"] == 9000.0
    assert meta["PartialVolumeCorrection"]["FwhmMm"] == pytest.approx(np.hypot(6.0, 2.3548 * 2 / np.sqrt(3)), rel=1e-3)
    index = tmp_path / "index.tsv"
    pd.DataFrame(rows).to_csv(index, sep="\t", index=False)
    wide = write_group_tables(indexes=[index], out_wide=tmp_path / "g" / "wide.tsv", out_long=tmp_path / "g" / "long.tsv",
                              resolution_mm=RES, erosion_vox=0)
    assert list(wide["participant_id"]) == ["sub-A1", "sub-B2"]
    for column in ["BRAAK1_SUVR", "BRAAK34_SUVR", "BRAAK56_SUVR", "META_TEMPORAL_SUVR", "CTX_LH_ENTORHINAL_SUVR",
                   "LEFT_HIPPOCAMPUS_NVOX", "INFERIOR_CEREBELLAR_GM_SUVR", "BRAAK1_SUVR_PVC", "REFERENCE_BQML"]:
        assert column in wide, column
    session = pd.read_csv(rows[1]["regional_tsv"], sep="\t").set_index("region")
    assert wide.loc[1, "CTX_LH_ENTORHINAL_SUVR"] == pytest.approx(session.loc["ctx-lh-entorhinal", "suvr"])
    assert wide.loc[1, "BRAAK1_SUVR"] == pytest.approx(2 * wide.loc[0, "BRAAK1_SUVR"], rel=1e-4)
    dictionary = json.loads((tmp_path / "g" / "wide.json").read_text())
    assert set(dictionary) == set(wide.columns)
    assert "entorhinal" in dictionary["BRAAK1_SUVR"]["Description"]
    long = pd.read_csv(tmp_path / "g" / "long.tsv", sep="\t")
    assert len(long) == 2 * len(session) and set(json.loads((tmp_path / "g" / "long.json").read_text())) == set(long)


def test_synthetic_tables_cover_the_test_sessions(tmp_path, volume, atlas):
    from mri2tau.evaluate.regional_synth import synthetic_regional_tables
    from mri2tau.synthesize import synth_name

    _, affine = template_grid(RES)
    pd.DataFrame([{"sub": s, "ses": "bl", "ptid": s, "dx": dx, "dx_group": dx, "manufacturer": "GE", "split": split}
                  for s, dx, split in [("T1", "CN", "train"), ("S1", "CN", "test"), ("S2", "AD", "test")]]).to_csv(
        tmp_path / "splits.tsv", sep="\t", index=False)
    for i, sub in enumerate(["S1", "S2"]):
        nib.save(nib.Nifti1Image(volume * (i + 1), affine), tmp_path / synth_name(sub, "bl", "MNI152NLin6Asym"))
    wide = synthetic_regional_tables(synth_dir=tmp_path, splits=tmp_path / "splits.tsv", model="unet3d",
                                     reference_region="pons", out_wide=tmp_path / "w.tsv", out_long=tmp_path / "l.tsv",
                                     resolution_mm=RES, erosion_vox=0)
    expected = regional_values(volume, atlas)[0].set_index("region")["suvr"]
    assert list(wide["participant_id"]) == ["sub-S1", "sub-S2"] and set(wide["source"]) == {"unet3d"}
    assert wide["BRAAK56_SUVR"].tolist() == pytest.approx([expected["braak56"], 2 * expected["braak56"]], rel=1e-5)
    assert set(wide["REFERENCE_REGION"]) == {"pons"} and "BRAAK1_SUVR_PVC" not in wide


def test_regional_figure_draws_boxes_per_diagnosis(tmp_path):
    from mri2tau.evaluate.regional_figure import ROIS, regional_by_diagnosis

    rng = np.random.default_rng(0)
    table = pd.DataFrame({"dx_group": ["CN", "CN", "MCI", "AD", "AD"], "REFERENCE_REGION": "cerebellar_gm"})
    for roi in ROIS:
        table[f"{roi}_SUVR"] = rng.uniform(1, 2, len(table))
    table.to_csv(tmp_path / "wide.tsv", sep="\t", index=False)
    regional_by_diagnosis(tmp_path / "wide.tsv", tmp_path / "fig.png")
    image = plt_image(tmp_path / "fig.png")
    assert image.shape[1] > 500 and image.std() > 0.05


def plt_image(path: Path) -> np.ndarray:
    import matplotlib.pyplot as plt

    return plt.imread(path)


# ---------------------------------------------------------------- the demo truth
@pytest.fixture(scope="module")
def demo_processed(demo_cohort, tmp_path_factory) -> list[dict]:
    """Every demo pair through conversion, the PET stage (true T1<->template mapping) and the regional table."""
    from test_preprocess_pet import process_demo_cohort

    from mri2tau.config import load_preset

    preset = load_preset("demo")
    sessions = process_demo_cohort(demo_cohort, tmp_path_factory.mktemp("regional_demo"), RES)
    for session in sessions:
        paths, folder = session["paths"], session["paths"]["suvr"].parent
        session["table"] = session_regional(
            suvr=paths["suvr"], stats=paths["stats"], reference_mask=paths["reference"],
            pet_sidecar=session["bids"]["pet_json"], pet_native=paths["mean"], out_tsv=folder / "regional.tsv",
            out_json=folder / "regional.json", subject=session["row"].sub, session=session["row"].ses,
            resolution_mm=RES, erosion_vox=preset["pet"]["erosion_vox"], pvc="gtm",
            scanner_fwhm_mm=preset["harmonization"]["resolution_matching"]["scanner_fwhm_mm"])
    return sessions


@pytest.mark.slow
def test_gtm_halves_the_braak_error_against_the_demo_truth(demo_processed):
    """Truth = suvr_template (before the vendor gain and PSF); errors averaged over the demo sessions."""
    atlas = region_atlas(RES, 0)
    errors = []
    for session in demo_processed:
        truth = np.asarray(nib.load(session["truth"] / "suvr_template.nii.gz").dataobj, np.float32)
        expected, _ = regional_values(truth, atlas, atlas.references["cerebellar_gm"])
        table = session["table"].set_index("region")
        for roi in BRAAK_ROIS:
            t = expected.set_index("region").loc[roi, "suvr"]
            errors.append({"roi": roi, "raw": abs(table.loc[roi, "suvr"] - t), "pvc": abs(table.loc[roi, "suvr_pvc"] - t)})
    mean = pd.DataFrame(errors).groupby("roi")[["raw", "pvc"]].mean()
    assert len(demo_processed) >= 3 and {s["row"].manufacturer for s in demo_processed} >= {"Siemens", "GE"}
    for roi in BRAAK_ROIS:
        assert mean.loc[roi, "pvc"] < 0.5 * mean.loc[roi, "raw"], mean


# ---------------------------------------------------------------- the workflow's derivatives tree
@pytest.fixture(scope="module")
def done(tmp_path_factory) -> Path:
    from slurm.runner import reference_run

    return reference_run(tmp_path_factory.getbasetemp())


def resolve_uri(uri: str, raw: Path, deriv: Path) -> Path:
    """A BIDS URI of a sidecar's Sources as a path (``bids:raw:`` -> raw tree, ``bids::`` -> derivatives)."""
    dataset, rest = uri.removeprefix("bids:").split(":", 1)
    return (raw if dataset == "raw" else deriv) / rest


@pytest.mark.dag
@pytest.mark.slow
def test_workflow_derivatives_describe_themselves(done):
    from slurm.runner import workdir_paths

    from mri2tau import __version__

    paths = workdir_paths(done)
    raw, deriv = Path(paths.bids), Path(paths.deriv)
    description = json.loads((deriv / "dataset_description.json").read_text())
    assert description["DatasetType"] == "derivative"
    assert description["GeneratedBy"][0] == {**description["GeneratedBy"][0], "Name": "mri2tau", "Version": __version__}
    assert description["SourceDatasets"] == [{"URL": "bids:raw:"}]
    assert (deriv / description["DatasetLinks"]["raw"]).resolve() == raw.resolve()
    images = sorted(p for p in deriv.rglob("*.nii.gz") if not p.name.endswith("_xfm.nii.gz"))  # not transforms
    assert len(images) >= 2 * 8 + 1
    for image in images:
        meta = json.loads(image.with_name(image.name.removesuffix(".nii.gz") + ".json").read_text())
        assert meta["Description"] and all(resolve_uri(u, raw, deriv).is_file() for u in meta["Sources"]), image
        if "_space-" in image.name:
            assert meta["SpatialReference"] == "MNI152NLin6Asym" and meta["ResolutionMm"] == RES, image
        if image.name.endswith("_pet.nii.gz"):
            assert meta["Units"] in ("Bq/mL", "unitless") and meta["TracerName"] == "AV1451", image
        if "desc-suvr_pet" in image.name:
            assert meta["ReferenceRegion"] == "cerebellar_gm" and meta["PartialVolumeCorrection"] == "none"
    # the cohort table: one row per session, the values of the sessions' own tables
    pairs = pd.read_csv(paths.pairs, sep="\t", dtype=str)
    wide = pd.read_csv(paths.regional_wide, sep="\t")
    assert sorted(wide["participant_id"]) == sorted("sub-" + pairs["sub"]) and set(wide["PVC"]) == {"GTM"}
    for row in wide.itertuples():
        sub, ses = row.participant_id.removeprefix("sub-"), row.session_id.removeprefix("ses-")
        session = pd.read_csv(paths.regional_tsv.format(sub=sub, ses=ses), sep="\t").set_index("region")
        assert row.BRAAK34_SUVR == pytest.approx(session.loc["braak34", "suvr"])
        assert row.META_TEMPORAL_SUVR_PVC == pytest.approx(session.loc["meta_temporal", "suvr_pvc"])


@pytest.mark.dag
@pytest.mark.slow
def test_bids_validator_passes_raw_and_derivatives(done, bids_validator, tmp_path):
    """0 errors on both trees (derivatives: the 1.x validator has no rules for derivative file
    names, bids_check.DERIVATIVES_CONFIG; it still checks dataset_description.json, as shown)."""
    import shutil

    from bids_check import DERIVATIVES_CONFIG, bids_errors, validate_bids

    from slurm.runner import workdir_paths

    paths = workdir_paths(done)
    deriv = Path(paths.deriv)
    assert bids_errors(validate_bids(bids_validator, Path(paths.bids))) == []
    assert bids_errors(validate_bids(bids_validator, deriv, DERIVATIVES_CONFIG)) == []
    broken = shutil.copytree(deriv, tmp_path / "mri2tau")
    description = json.loads((broken / "dataset_description.json").read_text())
    (broken / "dataset_description.json").write_text(json.dumps(description | {"SourceDatasets": [{"URL": "../../bids"}]}))
    assert [key for key, _ in bids_errors(validate_bids(bids_validator, broken, DERIVATIVES_CONFIG))] == [
        "JSON_SCHEMA_VALIDATION_ERROR"]
