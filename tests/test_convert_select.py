"""Series selection and MRI-PET pairing (mri2tau.convert.select / pairing, mri2tau.io.adni)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import pytest

from mri2tau.config import load_preset
from mri2tau.convert.pairing import Candidate, pair_series
from mri2tau.convert.select import select_series, session_dicom_dirs
from mri2tau.errors import PipelineInputError
from mri2tau.io import adni
from test_dicom import make_mr_series, make_pet_series

DATA = load_preset("demo")["data"]
PATTERNS = dict(t1_patterns=DATA["t1_description_patterns"], pet_patterns=DATA["pet_description_patterns"],
                exclude_patterns=DATA["exclude_description_patterns"])


@pytest.mark.parametrize("description, kind", [
    ("Accelerated_Sagittal_MPRAGE", "T1"), ("Accelerated_Sag_IR-FSPGR", "T1"), ("ADNI_Sag3D_MPRAGE", "T1"),
    ("Accelerated_SAG_IR-SPGR", "T1"), ("MPR__GradWarp__B1_Correction__N3__Scaled", "T1"),
    ("Accelerated_Sagittal_MPRAGE_ND", "T1"), ("3-plane_localizer", None), ("Axial_DTI", None),
    # the raw tau folder names of real LONI downloads, and ADNI's processed AV1451 series (the header decides)
    ("ADNI_Brain_PET__Raw_Tau", "PET"), ("ADNI3_av-1451__AC_", "PET"), ("ADNI3-TAU-2__AC_", "PET"),
    ("ADNI3_AV-1451_6X5", "PET"), ("AV1451_Co-registered__Averaged", "PET"),
    ("AV1451_Coreg__Avg__Std_Img_and_Vox_Siz__Uniform_6mm_Res", "PET"), ("ADNI_Brain_PET__Raw_AV45", "PET"),
])
def test_classify_description(description, kind):
    assert adni.classify_description(description, PATTERNS["t1_patterns"], PATTERNS["pet_patterns"],
                                     PATTERNS["exclude_patterns"]) == kind


def _cand(kind: str, day: str, name: str = "x") -> Candidate:
    folder = adni.SeriesFolder("002_S_0413", name, kind, Path(f"/{kind}/{day}/{name}"), name, None)
    return Candidate(folder, dt.date.fromisoformat(day), "Siemens")


def test_pairing_rule():
    t1s = [_cand("T1", "2019-01-01"), _cand("T1", "2019-06-20"), _cand("T1", "2019-07-10")]
    pets = [_cand("PET", "2018-01-01"), _cand("PET", "2019-07-01"), _cand("PET", "2020-01-01")]
    t1, pet = pair_series(t1s, pets, max_days=100)
    # the 2018 PET has no T1 within 100 days; the 2019-07-01 PET takes the closest T1 (9 days after it,
    # not the one 11 days before)
    assert (pet.date, t1.date) == (dt.date(2019, 7, 1), dt.date(2019, 7, 10))
    tie = pair_series([_cand("T1", "2019-06-21"), _cand("T1", "2019-07-11")], pets[1:2], max_days=100)
    assert tie[0].date == dt.date(2019, 6, 21)  # equal gaps: the earlier T1
    assert pair_series(t1s[:1], pets[:1], max_days=100) is None


def test_clinical_helpers():
    rows = pd.DataFrame({"RID": [413, 413], "PTID": ["002_S_0413"] * 2, "VISCODE": ["bl", "m12"],
                         "EXAMDATE": [dt.date(2018, 1, 1), dt.date(2019, 1, 1)], "AGE": [70.0, 70.0],
                         "PTGENDER": ["Female"] * 2, "DX_bl": ["EMCI"] * 2, "DX": ["MCI", "Dementia"]})
    rows[adni.VISIT] = rows["VISCODE"]
    visit = adni.nearest_visit(rows, dt.date(2018, 11, 1))
    assert visit["VISCODE"] == "m12" and adni.diagnosis(visit) == ("EMCI", "MCI")
    assert adni.DX_GROUPS["Dementia"] == "AD"
    assert adni.age_at(rows, dt.date(2020, 1, 1)) == pytest.approx(72.0, abs=0.05)
    assert adni.sex_code("Female") == "F" and adni.sex_code(float("nan")) is None
    assert adni.parse_date_folder("2015-02-13_09_52_18.0") == dt.datetime(2015, 2, 13, 9, 52, 18)


def _tree(root: Path) -> Path:
    """Subject A: T1 + its _ND copy, tau PET + amyloid PET; B: not in the CSV; C: no PET."""
    day = "2020-03-04_10_15_00.0"
    make_mr_series(root / "ADNI/002_S_0001/Accelerated_Sagittal_MPRAGE" / day / "I1")
    make_mr_series(root / "ADNI/002_S_0001/Accelerated_Sagittal_MPRAGE_ND" / day / "I2")
    make_pet_series(root / "ADNI/002_S_0001/ADNI_Brain_PET__Raw_Tau" / day / "I3", n_frames=1)
    make_pet_series(root / "ADNI/002_S_0001/ADNI_Brain_PET__Raw_AV45" / day / "I4", n_frames=1, tracer="Florbetapir")
    make_mr_series(root / "ADNI/002_S_0002/Accelerated_Sagittal_MPRAGE" / day / "I5")
    make_mr_series(root / "ADNI/002_S_0003/Accelerated_Sagittal_MPRAGE" / day / "I6")
    pd.DataFrame({"RID": [1, 3], "PTID": ["002_S_0001", "002_S_0003"], "VISCODE": ["bl", "bl"],
                  "EXAMDATE": ["2020-02-20", "2020-02-20"], "AGE": [71.5, 80.0], "PTGENDER": ["Male", "Female"],
                  "DX_bl": ["LMCI", "CN"], "DX": ["MCI", "CN"]}).to_csv(root / "ADNIMERGE.csv", index=False)
    return root


def test_select_series_on_small_tree(tmp_path):
    root = _tree(tmp_path)
    pairs = select_series(dicom_root=root / "ADNI", clinical_csv=root / "ADNIMERGE.csv",
                          pairs_tsv=tmp_path / "pairs.tsv", excluded_tsv=tmp_path / "excluded.tsv",
                          max_days=100, pet_n_frames=1, **PATTERNS)
    assert list(pairs["sub"]) == ["002S0001"]
    row = pairs.iloc[0]
    assert (row["ses"], row["dx"], row["dx_group"], row["sex"], row["gap_days"]) == ("bl", "LMCI", "MCI", "M", 0)
    assert row["t1_image_id"] == "I1" and row["pet_image_id"] == "I3" and row["manufacturer"] == "Siemens"
    assert session_dicom_dirs(tmp_path / "pairs.tsv", "002S0001", "bl")["pet_dir"].endswith("I3")
    excluded = pd.read_csv(tmp_path / "excluded.tsv", sep="\t").groupby("ptid")["reason"].agg(" | ".join)
    assert "Florbetapir" in excluded["002_S_0001"] and "_ND (not distortion-corrected) T1, ranked below original" in excluded["002_S_0001"]
    assert "not in the clinical CSV" in excluded["002_S_0002"]
    assert "no usable tau PET" in excluded["002_S_0003"]


def test_no_pair_at_all_is_an_error(tmp_path):
    root = _tree(tmp_path)
    with pytest.raises(PipelineInputError, match="no MRI-PET pair"):
        select_series(dicom_root=root / "ADNI", clinical_csv=root / "ADNIMERGE.csv", pairs_tsv=tmp_path / "p.tsv",
                      excluded_tsv=tmp_path / "e.tsv", max_days=100, t1_patterns=["*NOTHING*"],
                      pet_patterns=PATTERNS["pet_patterns"], exclude_patterns=[])
    assert not (tmp_path / "p.tsv").exists() and not (tmp_path / "e.tsv").exists()


def test_session_dicom_dirs_follows_a_rewritten_pairs_table(tmp_path):
    """The per-session look-up caches the table per file version: a new table is read again."""
    pairs = tmp_path / "pairs.tsv"
    pd.DataFrame({"sub": ["A1"], "ses": ["bl"], "t1_dir": ["t1/a"], "pet_dir": ["pet/a"]}).to_csv(pairs, sep="\t", index=False)
    assert session_dicom_dirs(pairs, "A1", "bl") == {"t1_dir": "t1/a", "pet_dir": "pet/a"}
    pd.DataFrame({"sub": ["A1", "B2"], "ses": ["bl", "m12"], "t1_dir": ["t1/a2", "t1/b"],
                  "pet_dir": ["pet/a2", "pet/b"]}).to_csv(pairs, sep="\t", index=False)
    assert session_dicom_dirs(pairs, "A1", "bl") == {"t1_dir": "t1/a2", "pet_dir": "pet/a2"}
    assert session_dicom_dirs(pairs, "B2", "m12")["pet_dir"] == "pet/b"
    with pytest.raises(ValueError, match="sub-C3 ses-bl is not among the selected pairs"):
        session_dicom_dirs(pairs, "C3", "bl")


def test_excluded_subjects_by_ptid_or_label_are_left_out_with_a_reason(tmp_path):
    root = _tree(tmp_path)
    kwargs = dict(dicom_root=root / "ADNI", clinical_csv=root / "ADNIMERGE.csv", excluded_tsv=tmp_path / "excluded.tsv",
                  max_days=100, pet_n_frames=1, **PATTERNS)
    for listed in (["002_S_0001"], ["002S0001"]):
        with pytest.raises(PipelineInputError, match="no MRI-PET pair"):  # the only pairable subject is gone
            select_series(pairs_tsv=tmp_path / "pairs.tsv", exclude_subjects=listed, **kwargs)
    select_series(pairs_tsv=tmp_path / "pairs.tsv", exclude_subjects=["002_S_0003"], **kwargs)
    excluded = pd.read_csv(tmp_path / "excluded.tsv", sep="\t").set_index("ptid")["reason"]
    assert excluded["002_S_0003"] == "listed in config data.exclude_subjects"  # one row for the subject
    assert list(pd.read_csv(tmp_path / "pairs.tsv", sep="\t", dtype=str)["sub"]) == ["002S0001"]


@pytest.mark.parametrize("preset", ["demo", "paper"])
def test_pet_input_and_sessions_config(preset):
    """Both presets validate with the new keys; pet_input uniform needs resolution matching off."""
    from mri2tau.config import deep_merge, validate_config

    config = load_preset(preset) | {"preset": preset}
    validate_config(config)
    assert (config["data"]["pet_input"], config["data"]["sessions"]) == ("auto", "first")
    uniform = deep_merge(config, {"data": {"pet_input": "uniform"}})
    if config["harmonization"]["resolution_matching"]["enabled"]:
        with pytest.raises(ValueError, match="resolution_matching"):
            validate_config(uniform)
    validate_config(deep_merge(uniform, {"harmonization": {"resolution_matching": {"enabled": False}}}))
    with pytest.raises(ValueError, match="data.sessions"):
        validate_config(deep_merge(config, {"data": {"sessions": "some"}}))
