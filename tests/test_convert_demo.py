"""Demo round trip: the conversion stage recovers the generator's truth (docs/demo-cohort.md)."""

from __future__ import annotations

import datetime as dt
import gzip
import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from nibabel.orientations import io_orientation, ornt_transform

from mri2tau.config import load_preset
from mri2tau.convert.metadata import write_bids_metadata
from mri2tau.convert.select import select_series
from mri2tau.convert.session import convert_session
from mri2tau.io.bids import nifti_header_bytes
from mri2tau.paths import RunPaths
from mri2tau.templates import TEMPLATE_NAME

from bids_check import bids_errors, validate_bids


def session_paths(bids: Path, sub: str, ses: str) -> dict[str, Path]:
    """The raw BIDS files of a session under ``bids`` (rule convert_session's outputs, mri2tau.paths)."""
    paths = RunPaths(str(bids.parent), TEMPLATE_NAME)
    assert paths.bids == str(bids), "the raw BIDS tree is <results>/bids"
    return {key: Path(getattr(paths, key).format(sub=sub, ses=ses)) for key in ("t1w", "t1w_json", "pet", "pet_json")}


@pytest.fixture(scope="module")
def converted(demo_cohort, tmp_path_factory):
    """Select, convert and describe the demo cohort in-process; returns (results, pairs, truth)."""
    results = tmp_path_factory.mktemp("results")
    data = load_preset("demo")["data"]
    pairs = select_series(
        dicom_root=demo_cohort / "ADNI", clinical_csv=demo_cohort / "ADNIMERGE.csv",
        pairs_tsv=results / "convert" / "pairs.tsv", excluded_tsv=results / "convert" / "excluded.tsv",
        t1_patterns=data["t1_description_patterns"], pet_patterns=data["pet_description_patterns"],
        exclude_patterns=data["exclude_description_patterns"], max_days=data["max_mri_pet_days"])
    for row in pairs.itertuples():
        convert_session(sub=row.sub, ses=row.ses, t1_dir=row.t1_dir, pet_dir=row.pet_dir,
                        expected_frames=data["pet_n_frames"], **session_paths(results / "bids", row.sub, row.ses))
    bids = results / "bids"
    write_bids_metadata(pairs_tsv=results / "convert" / "pairs.tsv", participants_tsv=bids / "participants.tsv",
                        participants_json=bids / "participants.json",
                        description_json=bids / "dataset_description.json", readme=bids / "README",
                        changes=bids / "CHANGES", name="demo", max_days=data["max_mri_pet_days"])
    truth = pd.read_csv(demo_cohort / "truth" / "cohort.tsv", sep="\t", dtype=str)
    return results, pairs, truth


def test_pairs_and_exclusions_match_truth(converted):
    results, pairs, truth = converted
    expected = truth[truth["expected_pair"] == "True"]
    assert sorted(pairs["sub"]) == sorted(expected["sub"])
    merged = pairs.merge(truth, on="sub", suffixes=("", "_truth"))
    assert (merged["ses"] == merged["viscode_truth"]).all()
    assert (merged["dx"] == merged["dx_bl"]).all()
    assert (merged["dx_group"] == merged["dx_group_truth"]).all()
    assert (merged["manufacturer"] == merged["manufacturer_truth"]).all()
    assert (merged["gap_days"].astype(int) == merged["gap_days_truth"].astype(int)).all()
    assert (merged["pet_date"] == merged["pet_date_truth"]).all()
    assert (merged["t1_image_id"] == "I" + merged["t1_image_uid"]).all()
    excluded = pd.read_csv(results / "convert" / "excluded.tsv", sep="\t", dtype=str)
    for row in truth[truth["expected_pair"] == "False"].itertuples():
        reason = excluded.loc[excluded["ptid"] == row.ptid, "reason"].str.cat()
        assert f"closest gap {int(row.gap_days)} days" in reason


def test_t1_voxel_to_world_matches_truth(converted, demo_cohort):
    results, pairs, truth = converted
    orientations = set()
    for row in pairs.itertuples():
        folder = demo_cohort / "truth" / f"sub-{row.sub}"
        vox2world = np.loadtxt(folder / "t1_vox2world.txt")
        ours = nib.load(session_paths(results / "bids", row.sub, row.ses)["t1w"])
        # dcm2niix stores 3D acquisitions in the nearest canonical axis order: undo that relabelling
        # of voxel axes (a signed permutation, no resampling) before comparing the mapping
        ours = ours.as_reoriented(ornt_transform(io_orientation(ours.affine), io_orientation(vox2world)))
        np.testing.assert_allclose(ours.affine, vox2world, atol=1e-3)
        native = nib.load(folder / "t1_native.nii.gz").get_fdata()
        assert ours.shape == native.shape
        assert np.corrcoef(ours.get_fdata().ravel(), native.ravel())[0, 1] > 0.999
        orientations.add(truth.set_index("sub").loc[row.sub, "t1_orientation"])
    assert "oblique" in orientations


def test_pet_frames_timing_units(converted, demo_cohort):
    results, pairs, _ = converted
    for row in pairs.itertuples():
        paths = session_paths(results / "bids", row.sub, row.ses)
        folder = demo_cohort / "truth" / f"sub-{row.sub}"
        truth = json.loads((folder / "pet.json").read_text())
        image = nib.load(paths["pet"])
        assert image.ndim == 4 and image.shape[3] == 6
        np.testing.assert_allclose(image.affine, np.loadtxt(folder / "pet_vox2world.txt"), atol=1e-3)
        meta = json.loads(paths["pet_json"].read_text())
        assert meta["Units"] == "Bq/mL"
        np.testing.assert_allclose(meta["FrameTimesStart"], truth["frame_times_start_s"], atol=0.5)
        np.testing.assert_allclose(meta["FrameDuration"], truth["frame_durations_s"], atol=1e-3)
        injection = dt.datetime.fromisoformat(truth["injection_time"])
        assert meta["TimeZero"] == injection.strftime("%H:%M:%S") and meta["InjectionStart"] == 0
        assert meta["ScanStart"] == pytest.approx(truth["frame_times_start_s"][0], abs=0.5)
        assert meta["InjectedRadioactivity"] == pytest.approx(truth["injected_activity_bq"] / 1e6, rel=1e-3)
        assert meta["InjectedRadioactivityUnits"] == "MBq" and meta["TracerRadionuclide"] == "F18"
        assert meta["Manufacturer"] == row.manufacturer
        if truth["decay_correction"] == "START":
            start = dt.datetime.fromisoformat(truth["series_start_time"])
            assert meta["ImageDecayCorrectionTime"] == pytest.approx((start - injection).total_seconds())


def test_planted_phi_never_in_outputs(converted):
    results, _, truth = converted
    planted = set()
    for row in truth.itertuples():
        planted |= {row.planted_patient_name, row.planted_patient_id, row.planted_birth_date}
        planted |= set(row.planted_patient_name.split("^"))
    needles = {v.lower().encode() for v in planted if len(v) >= 4}
    files = [p for p in results.rglob("*") if p.is_file()]
    assert len(files) >= 4 * len(truth[truth["expected_pair"] == "True"]) + 6
    for path in files:
        blobs = [path.read_bytes()]
        if path.name.endswith(".nii.gz"):
            blobs.append(nifti_header_bytes(path))
        elif path.suffix == ".gz":
            blobs.append(gzip.decompress(blobs[0]))
        for blob in blobs:
            found = [n for n in needles if n in blob.lower()]
            assert not found, f"{path} contains planted PHI {found}"


def test_bids_dataset_files(converted):
    results, pairs, truth = converted
    bids = results / "bids"
    participants = pd.read_csv(bids / "participants.tsv", sep="\t", dtype=str)
    assert sorted(participants["participant_id"]) == sorted("sub-" + pairs["sub"])
    by_sub = truth.set_index("sub")
    for row in participants.itertuples():
        sub = row.participant_id.removeprefix("sub-")
        assert row.dx_group == by_sub.loc[sub, "dx_group"] and row.manufacturer == by_sub.loc[sub, "manufacturer"]
        assert row.sex in {"M", "F"} and 50 < float(row.age) < 100
    assert set(json.loads((bids / "participants.json").read_text())) >= set(participants.columns) - {"participant_id"}
    description = json.loads((bids / "dataset_description.json").read_text())
    assert description["BIDSVersion"] and description["DatasetType"] == "raw"
    assert [g["Name"] for g in description["GeneratedBy"]][:2] == ["mri2tau", "dcm2niix"]
    assert (bids / "README").read_text().strip() and (bids / "CHANGES").read_text().strip()


def test_bids_validator_finds_no_errors(converted, bids_validator):
    """The official validator (npm bids-validator 1.15, installed by `make test`) on the raw tree."""
    results, _, _ = converted
    report = validate_bids(bids_validator, results / "bids")
    assert bids_errors(report) == []
    assert report["summary"]["subjects"] and "PET" in report["summary"]["modalities"]
