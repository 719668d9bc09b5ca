"""A second visit (tau PET + T1 + ADNIMERGE row) for some demo subjects, for ``data.sessions: all``.

The follow-up repeats the subject's baseline images :data:`FOLLOWUP_DAYS` later: every series of
the subject (T1, raw and processed PET) is copied with all dates moved, new UIDs, image IDs
(+ :data:`IMAGE_ID_OFFSET`) and file names, and the same pixels and geometry, so the subject's
truth folder holds for both visits.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pandas as pd
import pydicom
from pydicom.dataset import Dataset

from mri2tau.demo.clinical import SubjectPlan, followup_rows, visits_table
from mri2tau.demo.dicom_series import demo_uid
from mri2tau.errors import PipelineInputError
from mri2tau.io.adni import parse_date_folder
from mri2tau.io.dicom import parse_da, parse_dt

FOLLOWUP_DAYS = 365
FOLLOWUP_VISCODE = "m12"
IMAGE_ID_OFFSET = 50_000
_DATE_TAGS = ("StudyDate", "SeriesDate", "AcquisitionDate", "ContentDate")
_UID_TAGS = ("StudyInstanceUID", "SeriesInstanceUID", "FrameOfReferenceUID", "SOPInstanceUID")
_FILE_NAME = re.compile(r"_br_raw_(\d{14})(\d{3})_(\d+_S\d+)_I\d+\.dcm$")


def _shift_header(ds: Dataset, days: dt.timedelta, seed: int, ptid: str) -> None:
    """Move every date of ``ds`` by ``days`` and derive new UIDs from the old ones."""
    for tag in _DATE_TAGS:
        if parse_da(ds.get(tag)):
            setattr(ds, tag, (parse_da(ds.get(tag)) + days).strftime("%Y%m%d"))
    for item in ds.get("RadiopharmaceuticalInformationSequence") or []:
        start = parse_dt(item.get("RadiopharmaceuticalStartDateTime"))
        if start:
            item.RadiopharmaceuticalStartDateTime = (start + days).strftime("%Y%m%d%H%M%S.%f")
    for tag in _UID_TAGS:
        setattr(ds, tag, demo_uid(seed, ptid, "followup", ds.get(tag)))
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID


def write_followup(root: Path, plan: SubjectPlan, seed: int, days: int = FOLLOWUP_DAYS) -> list[Path]:
    """Copy every series of ``plan``'s subject under ``root`` as a visit ``days`` later; returns the
    new series folders (``<PTID>/<description>/<date + days>/I<ID + IMAGE_ID_OFFSET>``)."""
    shift = dt.timedelta(days=days)
    out = []
    for folder in sorted((root / plan.ptid).glob("*/*/I*")):
        when = parse_date_folder(folder.parent.name)
        if when is None:
            continue
        target = (folder.parent.parent / (when + shift).strftime("%Y-%m-%d_%H_%M_%S.0")
                  / f"I{int(folder.name[1:]) + IMAGE_ID_OFFSET}")
        target.mkdir(parents=True)
        for path in sorted(folder.glob("*.dcm")):
            ds = pydicom.dcmread(path)
            _shift_header(ds, shift, seed, plan.ptid)
            match = _FILE_NAME.search(path.name)
            stamp = (dt.datetime.strptime(match.group(1), "%Y%m%d%H%M%S") + shift).strftime("%Y%m%d%H%M%S")
            name = path.name[:match.start()] + f"_br_raw_{stamp}{match.group(2)}_{match.group(3)}_{target.name}.dcm"
            ds.save_as(target / name, enforce_file_format=True)
        out.append(target)
    return out


def add_followups(plans: list[SubjectPlan], n: int, seed: int, tmp_path: Path) -> list[SubjectPlan]:
    """A second visit for the first ``n`` subjects that pair, in a cohort being written to ``tmp_path``
    (``ADNI/``, ``ADNIMERGE.csv``, ``truth/``): images, ADNIMERGE rows and ``truth/visits.tsv``
    (every visit, also when ``n`` is 0). Returns the plans that got one."""
    chosen = [p for p in plans if p.expected_pair][:n]
    if len(chosen) < n:
        raise PipelineInputError(f"demo.second_visits is {n} but only {len(chosen)} subjects pair", stage="demo",
                                 fix="lower demo.second_visits or raise demo.subjects")
    for plan in chosen:
        write_followup(tmp_path / "ADNI", plan, seed)
    if chosen:
        rows = followup_rows(chosen, FOLLOWUP_DAYS, FOLLOWUP_VISCODE, IMAGE_ID_OFFSET)
        csv = pd.concat([pd.read_csv(tmp_path / "ADNIMERGE.csv"), rows], ignore_index=True)
        csv.sort_values(["RID", "EXAMDATE"], kind="stable").to_csv(tmp_path / "ADNIMERGE.csv", index=False)
    visits_table(plans, chosen, FOLLOWUP_DAYS, FOLLOWUP_VISCODE).to_csv(tmp_path / "truth" / "visits.tsv", sep="\t",
                                                                         index=False)
    return chosen
