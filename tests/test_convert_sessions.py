"""data.sessions: all on a demo cohort with a second tau visit for some subjects: every visit paired and
converted, the split by subject; data.sessions: first keeps the papers' one pair per subject."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import nibabel as nib
import pandas as pd
import pytest

from mri2tau.config import load_preset
from mri2tau.convert.metadata import write_bids_metadata
from mri2tau.convert.pairing import Candidate
from mri2tau.convert.select import Exclusions, select_series, session_rows
from mri2tau.convert.session import convert_session
from mri2tau.data.split import sessions_in_split
from mri2tau.io.adni import VISIT, SeriesFolder
from test_convert_demo import session_paths

DATA = load_preset("demo")["data"]
PATTERNS = dict(t1_patterns=DATA["t1_description_patterns"], pet_patterns=DATA["pet_description_patterns"],
                exclude_patterns=DATA["exclude_description_patterns"])


@pytest.fixture(scope="module")
def cohort(tmp_path_factory) -> Path:
    """3 subjects at 4 mm (the last without a pair), the first two with a second visit a year later."""
    from mri2tau.demo.cohort import generate_cohort

    root = tmp_path_factory.mktemp("two_visits")
    generate_cohort(root, subjects=3, seed=0, voxel_mm=4.0, processed_pet_steps=(2,), second_visits=2)
    return root


def _select(cohort: Path, out: Path, sessions: str) -> pd.DataFrame:
    return select_series(dicom_root=cohort / "ADNI", clinical_csv=cohort / "ADNIMERGE.csv",
                         pairs_tsv=out / "pairs.tsv", excluded_tsv=out / "excluded.tsv",
                         max_days=DATA["max_mri_pet_days"], sessions=sessions, **PATTERNS)


def test_all_sessions_every_visit_converted_and_split_by_subject(cohort, tmp_path):
    pairs = _select(cohort, tmp_path, "all")
    visits = pd.read_csv(cohort / "truth" / "visits.tsv", sep="\t", dtype=str)
    expected = visits[visits["expected_pair"] == "True"]
    assert sorted(zip(pairs["sub"], pairs["ses"], pairs["pet_date"])) == \
        sorted(zip(expected["sub"], expected["viscode"], expected["pet_date"]))
    assert (pairs.groupby("sub").size() == 2).all() and set(pairs["ses"]) == {"bl", "m12"}
    for row in pairs.itertuples():
        paths = session_paths(tmp_path / "bids", row.sub, row.ses)
        convert_session(sub=row.sub, ses=row.ses, t1_dir=row.t1_dir, pet_dir=row.pet_dir,
                        expected_frames=int(row.pet_frames), t1_uid=row.t1_series_uid, pet_uid=row.pet_series_uid,
                        pet_input=row.pet_input, pet_step=int(row.pet_step), **paths)
        assert nib.load(paths["pet"]).shape[3] == 6 and json.loads(paths["pet_json"].read_text())["PETInput"] == "raw"
    # the follow-up's own T1 (same day as the baseline's + 1 year), not the baseline's
    later = pairs[pairs["ses"] == "m12"]
    assert (pd.to_datetime(later["t1_date"]).dt.year > pd.to_datetime(pairs.loc[pairs["ses"] == "bl", "t1_date"])
            .dt.year.to_numpy()).all()
    bids = tmp_path / "bids"
    write_bids_metadata(pairs_tsv=tmp_path / "pairs.tsv", participants_tsv=bids / "participants.tsv",
                        participants_json=bids / "participants.json", description_json=bids / "d.json",
                        readme=bids / "README", changes=bids / "CHANGES", name="demo", max_days=100)
    participants = pd.read_csv(bids / "participants.tsv", sep="\t", dtype=str)
    assert sorted(participants["participant_id"]) == sorted("sub-" + pairs["sub"].unique())
    assert set(participants["session_id"]) == {"ses-bl"}
    sides = {}
    for split in ("train", "test"):
        for sub, ses in sessions_in_split(tmp_path / "pairs.tsv", split, test_fraction=0.5, seed=1,
                                          stratify_by=("dx",)):
            sides.setdefault(sub, set()).add(split)
    assert set(sides) == set(pairs["sub"]) and all(len(s) == 1 for s in sides.values())


def test_first_session_keeps_one_pair_and_names_the_later_visit(cohort, tmp_path):
    pairs = _select(cohort, tmp_path, "first")
    assert list(pairs["ses"]) == ["bl", "bl"]
    excluded = pd.read_csv(tmp_path / "excluded.tsv", sep="\t", dtype=str)
    later = excluded[excluded["category"] == "later_visit"]
    assert sorted(later["sub"]) == sorted(pairs["sub"]) and later["series_dir"].str.contains("Raw_Tau").all()


def _pet(day: str, image_id: str) -> Candidate:
    folder = SeriesFolder("002_S_0413", "ADNI_Brain_PET__Raw_Tau", "PET", Path(f"/x/{image_id}"), image_id, None)
    return Candidate(folder, dt.date.fromisoformat(day), "GE", uid=image_id, frames=6)


def test_two_visits_nearest_the_same_visit_code_do_not_collide_silently():
    t1 = Candidate(SeriesFolder("002_S_0413", "MPRAGE", "T1", Path("/x/t1"), "I1", None), dt.date(2019, 1, 5), "GE")
    visits = pd.DataFrame({"RID": ["413"], "PTID": ["002_S_0413"], "VISCODE": ["bl"], VISIT: ["bl"],
                           "EXAMDATE": [dt.date(2019, 1, 1)], "AGE": [70.0], "PTGENDER": ["Male"], "DX_bl": ["CN"]})
    excluded = Exclusions()
    rows = session_rows("002_S_0413", [(t1, _pet("2019-03-01", "I3")), (t1, _pet("2019-01-20", "I2"))], visits,
                        excluded)
    assert [(r["ses"], r["pet_image_id"]) for r in rows] == [("bl", "I2")]  # the PET nearer the bl EXAMDATE
    assert [(r["category"], r["series_dir"]) for r in excluded] == [("session_label", "/x/I3")]
    assert "ses-bl is taken by the tau PET of 2019-01-20" in excluded[0]["reason"]
