"""Selection on an ADNI-shaped download tree with real LONI folder names (raw tau under each naming,
ADNI's processed steps 1-4 on the same day, amyloid and FDG series, _ND / REPEAT / processed T1s, a
mixed T1 folder), built with the demo's DICOM writers at tiny sizes."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pydicom
import pytest

from mri2tau.config import load_preset
from mri2tau.convert.select import select_series
from mri2tau.convert.session import convert_session
from mri2tau.demo.clinical import SubjectPlan, adnimerge_table, plan_subject
from mri2tau.demo.dicom_series import write_pet_series, write_t1_series
from mri2tau.demo.pet import frame_timing
from mri2tau.demo.processed_pet import STEP_DESCRIPTIONS, write_processed_pet
from mri2tau.io.adni import description_folder
from mri2tau.io.bids import pet_input_label, sidecar_frames
from test_convert_demo import session_paths

SEED = 7
DATA = load_preset("demo")["data"]
PATTERNS = dict(t1_patterns=DATA["t1_description_patterns"], pet_patterns=DATA["pet_description_patterns"],
                exclude_patterns=DATA["exclude_description_patterns"])
T1_SHAPE, STRAY_SHAPE, PET_SHAPE = (8, 8, 24), (8, 8, 20), (6, 6, 4)
UNIFORM_6MM = "AV1451 Coreg, Avg, Std Img and Vox Siz, Uniform 6mm Res"
STD_SHORT = "AV1451 Coreg, Avg, Std Img and Vox Siz"


def _grid(shape: tuple[int, int, int], voxel: float) -> np.ndarray:
    """An axial-style vox2world (det < 0, as the writers expect) centred near the origin."""
    m = np.diag([-voxel, voxel, voxel, 1.0])
    m[:3, 3] = [voxel * shape[0] / 2, -voxel * shape[1] / 2, -voxel * shape[2] / 2]
    return m


def _t1(root: Path, plan: SubjectPlan, description: str, image_uid: int, when: dt.datetime | None = None,
        shape: tuple[int, int, int] = T1_SHAPE) -> Path:
    plan = dataclasses.replace(plan, t1_series_description=description, t1_image_uid=image_uid,
                               mri_datetime=when or plan.mri_datetime)
    stored = (np.arange(np.prod(shape)).reshape(shape) % 900 + 100).astype(np.uint16)
    return write_t1_series(root, plan, SEED + image_uid, stored, "1", "0", _grid(shape, 8.0))


def _raw_pet(root: Path, plan: SubjectPlan, description: str, image_uid: int, tracer: str | None = None) -> Path:
    plan = dataclasses.replace(plan, pet_series_description=description, pet_image_uid=image_uid)
    starts, durations = frame_timing()
    stored = np.stack([(np.arange(np.prod(PET_SHAPE)).reshape(PET_SHAPE) % 300 + 10 * f) for f in range(6)])
    slopes = [["0.5"] * PET_SHAPE[2] for _ in range(6)]
    folder = write_pet_series(root, plan, SEED + image_uid, stored.astype(np.int16), slopes, _grid(PET_SHAPE, 40.0),
                              starts, durations, 370e6)
    if tracer:  # an amyloid / FDG series: another radiopharmaceutical in the header
        for path in folder.glob("*.dcm"):
            ds = pydicom.dcmread(path)
            item = ds.RadiopharmaceuticalInformationSequence[0]
            item.Radiopharmaceutical = tracer
            item.RadiopharmaceuticalCodeSequence[0].CodeMeaning = tracer
            ds.save_as(path, enforce_file_format=True)
    return folder


def _mixed_t1(root: Path, plan: SubjectPlan, image_uid: int) -> tuple[Path, Path]:
    """A T1 folder plus 20 stray slices of another scanner's series from 2009 (their names sort first)."""
    folder = _t1(root, plan, "Accelerated Sagittal MPRAGE", image_uid)
    stray_plan = dataclasses.replace(plan, manufacturer="GE")
    stray = _t1(root / "stray", stray_plan, "3-plane localizer", image_uid + 1, dt.datetime(2009, 5, 4, 9, 0),
                STRAY_SHAPE)
    for path in sorted(stray.glob("*.dcm")):
        shutil.move(path, folder / path.name)
    shutil.rmtree(root / "stray")
    return folder, stray


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> dict:
    """Five subjects; returns the root, the CSV and, per PTID, the series folders by role."""
    root = tmp_path_factory.mktemp("adni_tree")
    adni = root / "ADNI"
    plans = [plan_subject(SEED, i, 8) for i in range(5)]
    a, b, c, d, e = plans
    uid = iter(range(5_000_000, 6_000_000, 1000))
    series: dict[str, dict[str, Path]] = {p.ptid: {} for p in plans}

    def raw_and_steps(plan, name, steps, descriptions=None) -> None:
        raw_uid = next(uid)
        series[plan.ptid]["raw"] = _raw_pet(adni, plan, name, raw_uid)
        raw_plan = dataclasses.replace(plan, pet_series_description=name, pet_image_uid=raw_uid)
        for step, folder in zip(sorted(steps), write_processed_pet(adni, raw_plan, SEED + raw_uid, steps,
                                                                   descriptions=descriptions), strict=True):
            series[plan.ptid][f"step{step}"] = folder

    raw_and_steps(a, "ADNI Brain PET: Raw Tau", [1, 2, 3, 4])
    series[a.ptid]["amyloid"] = _raw_pet(adni, a, "ADNI Brain PET: Raw AV45", next(uid), tracer="Florbetapir")
    for role, name in (("t1", "Accelerated Sagittal MPRAGE"), ("t1_nd", "Accelerated Sagittal MPRAGE_ND"),
                       ("t1_repeat", "Accelerated Sagittal MPRAGE_REPEAT"),
                       ("t1_processed", "MPR; GradWarp; B1 Correction; N3; Scaled")):
        series[a.ptid][role] = _t1(adni, a, name, next(uid))

    raw_and_steps(b, "ADNI3_av-1451 (AC)", [2, 4], {4: UNIFORM_6MM})
    series[b.ptid]["fdg"] = _raw_pet(adni, b, "ADNI Brain PET: Raw FDG", next(uid), tracer="Fludeoxyglucose F^18^")
    series[b.ptid]["t1"], series[b.ptid]["stray"] = _mixed_t1(adni, b, next(uid))

    raw_and_steps(c, "ADNI3-TAU-2 (AC)", [3], {3: STD_SHORT})
    series[c.ptid]["t1_nd"] = _t1(adni, c, "Accelerated Sagittal MPRAGE_ND", next(uid))
    series[c.ptid]["t1_repeat"] = _t1(adni, c, "Accelerated Sagittal MPRAGE_REPEAT", next(uid))

    raw_and_steps(d, "ADNI3_AV-1451_6X5", [1, 2])
    series[d.ptid]["t1"] = _t1(adni, d, "Accelerated Sagittal MPRAGE", next(uid))
    series[d.ptid]["t1_duplicate"] = _t1(adni, d, "Accelerated Sagittal MPRAGE", next(uid))  # same date, higher ID
    series[d.ptid]["t1_earlier"] = _t1(adni, d, "Accelerated Sagittal MPRAGE", next(uid),
                                       d.injection_datetime - dt.timedelta(days=95))

    raw_and_steps(e, "ADNI Brain PET: Raw Tau", [2, 4])  # then the raw series is removed: processed only
    shutil.rmtree(series[e.ptid].pop("raw").parent.parent)
    series[e.ptid]["t1"] = _t1(adni, e, "Accelerated Sagittal MPRAGE", next(uid))

    adnimerge_table(plans).to_csv(root / "ADNIMERGE.csv", index=False)
    return {"root": root, "series": series, "plans": plans}


def _select(tree: dict, out: Path, **kwargs) -> tuple[pd.DataFrame, pd.DataFrame]:
    root = tree["root"]
    pairs = select_series(dicom_root=root / "ADNI", clinical_csv=root / "ADNIMERGE.csv", pairs_tsv=out / "pairs.tsv",
                          excluded_tsv=out / "excluded.tsv", max_days=100, **PATTERNS, **kwargs)
    return pairs.set_index("ptid"), pd.read_csv(out / "excluded.tsv", sep="\t", dtype=str)


# What each mode uses per subject (role in the tree; None: the subject is excluded).
EXPECTED_PET = {
    "auto": ["raw", "raw", "raw", "raw", "step2"],
    "raw": ["raw", "raw", "raw", "raw", None],
    "averaged": ["step2", "step2", None, "step2", "step2"],
    "uniform": ["step4", "step4", "step3", None, "step4"],
}
EXPECTED_T1 = ["t1", "t1", "t1_repeat", "t1", "t1"]


@pytest.mark.parametrize("pet_input", list(EXPECTED_PET))
def test_each_pet_input_picks_its_series_and_names_every_other(tree, tmp_path, pet_input):
    pairs, excluded = _select(tree, tmp_path, pet_input=pet_input)
    series, used = tree["series"], set()
    for plan, role, t1_role in zip(tree["plans"], EXPECTED_PET[pet_input], EXPECTED_T1, strict=True):
        if role is None:
            assert plan.ptid not in pairs.index
            assert "no_pair" in set(excluded.loc[excluded["ptid"] == plan.ptid, "category"])
            continue
        row = pairs.loc[plan.ptid]
        assert row["pet_dir"] == str(series[plan.ptid][role]), (plan.ptid, pet_input)
        assert row["t1_dir"] == str(series[plan.ptid][t1_role]), plan.ptid
        assert (row["pet_input"], row["pet_step"]) == ({"raw": "raw", "step2": "averaged"}.get(role, "uniform"),
                                                       0 if role == "raw" else int(role[-1]))
        assert row["pet_frames"] == (6 if role == "raw" else 1) and row["gap_days"] <= 100
        used |= {row["pet_dir"], row["t1_dir"]}
    # every other candidate series has a row (a mixed folder's stray group as well), with its reason
    listed = set(excluded["series_dir"])
    every = {str(p) for folders in series.values() for role, p in folders.items() if role != "stray"}
    assert every - used <= listed, sorted(every - used - listed)
    assert not used & set(excluded.loc[excluded["category"] != "mixed_folder", "series_dir"])


def test_excluded_reasons_on_the_default_input(tree, tmp_path):
    pairs, excluded = _select(tree, tmp_path)
    by_dir = excluded.groupby("series_dir")["category"].agg(set)
    s = tree["series"]
    a, b, c, d, e = (p.ptid for p in tree["plans"])
    expected = {
        s[a]["step1"]: "processed_step1", s[a]["step2"]: "processed_step2", s[a]["step3"]: "processed_step3",
        s[a]["step4"]: "processed_step4", s[a]["amyloid"]: "not_tau", s[a]["t1_nd"]: "t1_nd",
        s[a]["t1_repeat"]: "t1_repeat", s[a]["t1_processed"]: "t1_processed",
        s[b]["step2"]: "processed_step2", s[b]["step4"]: "processed_step4", s[b]["fdg"]: "not_tau",
        s[b]["t1"]: "mixed_folder", s[c]["step3"]: "processed_step3", s[c]["t1_nd"]: "t1_nd",
        s[d]["step1"]: "processed_step1", s[d]["step2"]: "processed_step2", s[d]["t1_duplicate"]: "duplicate",
        s[d]["t1_earlier"]: "not_closest_t1", s[e]["step4"]: "processed_step4",
    }
    for folder, category in expected.items():
        assert by_dir.get(str(folder)) == {category}, (folder, by_dir.get(str(folder)))
    reason = excluded.set_index("series_dir")["reason"]
    assert "Florbetapir" in reason[str(s[a]["amyloid"])] and "Fludeoxyglucose" in reason[str(s[b]["fdg"])]
    assert f"_ND (not distortion-corrected) T1, ranked below original: the T1 used with the tau PET of " \
        f"{pairs.loc[a, 'pet_date']} is {pairs.loc[a, 't1_image_id']}" in reason[str(s[a]["t1_nd"])]
    stray = excluded[excluded["category"] == "mixed_folder"].iloc[0]
    assert "20 stray file(s)" in stray["reason"] and "3-plane localizer" in stray["reason"]
    assert stray["series_uid"] == str(pydicom.dcmread(next(s[b]["t1"].glob("*3-plane*"))).SeriesInstanceUID)
    # the mixed folder is dated by its own series (not by the 2009 stray slices that sort first)
    assert pairs.loc[b, "t1_date"] == tree["plans"][1].mri_datetime.date().isoformat()
    assert pairs.loc[e, "pet_input"] == "averaged"  # no raw series: auto falls back to ADNI step 2


def test_mixed_folder_converts_only_its_series_and_averaged_pet_is_one_frame(tree, tmp_path):
    pairs, _ = _select(tree, tmp_path)
    b, e = tree["plans"][1].ptid, tree["plans"][4].ptid
    for ptid in (b, e):
        row = pairs.loc[ptid]
        paths = session_paths(tmp_path / "bids", row["sub"], row["ses"])
        convert_session(sub=row["sub"], ses=row["ses"], t1_dir=row["t1_dir"], pet_dir=row["pet_dir"],
                        expected_frames=int(row["pet_frames"]), t1_uid=row["t1_series_uid"],
                        pet_uid=row["pet_series_uid"], pet_input=row["pet_input"], pet_step=int(row["pet_step"]),
                        **paths)
        meta = json.loads(paths["pet_json"].read_text())
        if ptid == b:
            assert sorted(nib.load(paths["t1w"]).shape) == sorted(T1_SHAPE)  # 24 slices, not 44
            assert meta["PETInput"] == "raw" and len(meta["FrameDuration"]) == 6
        else:
            assert nib.load(paths["pet"]).ndim == 3
            assert (meta["PETInput"], meta["ADNIProcessingStep"], meta["FrameDuration"]) == ("averaged", 2, [1800.0])
            assert meta["FrameTimesStart"] == [4500.0]
            assert pet_input_label(paths["pet_json"]) == "ADNI averaged (step 2)"  # the PET QC title
            assert sidecar_frames(paths["pet_json"], 6) == 1  # what pet_motion expects


def test_series_folder_names_are_the_real_ones(tree):
    names = {p.parent.parent.name for folders in tree["series"].values() for p in folders.values()}
    assert {"ADNI_Brain_PET__Raw_Tau", "ADNI3_av-1451__AC_", "ADNI3-TAU-2__AC_", "ADNI3_AV-1451_6X5",
            "AV1451_Co-registered_Dynamic", "AV1451_Co-registered__Averaged",
            "AV1451_Coreg__Avg__Standardized_Image_and_Voxel_Size", "AV1451_Coreg__Avg__Std_Img_and_Vox_Siz",
            "AV1451_Coreg__Avg__Std_Img_and_Vox_Siz__Uniform_Resolution",
            "AV1451_Coreg__Avg__Std_Img_and_Vox_Siz__Uniform_6mm_Res",
            "Accelerated_Sagittal_MPRAGE_ND", "Accelerated_Sagittal_MPRAGE_REPEAT",
            "MPR__GradWarp__B1_Correction__N3__Scaled"} <= names
    assert {description_folder(d) for d in STEP_DESCRIPTIONS.values()} <= names
