"""The ADNI download tree and the ADNIMERGE-shaped clinical CSV.

Tree: ``<root>/<PTID>/<series description>/<YYYY-MM-DD_HH_MM_SS.0>/I<ImageUID>/*.dcm``
(LONI "advanced download"; spaces in descriptions are underscores). Only folder names are read
here; DICOM headers are read by :mod:`mri2tau.io.dicom`.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from mri2tau.errors import PipelineInputError

DX_GROUPS = {"CN": "CN", "SMC": "MCI", "EMCI": "MCI", "LMCI": "MCI", "MCI": "MCI",
             "AD": "AD", "Dementia": "AD"}
SEX_CODES = {"male": "M", "female": "F", "m": "M", "f": "F"}
CSV_COLUMNS = ("RID", "PTID", "VISCODE", "EXAMDATE", "AGE", "PTGENDER")


@dataclass(frozen=True)
class SeriesFolder:
    """One series in the download tree (``series_dir`` holds its DICOM files)."""

    ptid: str
    description: str
    kind: str  # "T1" or "PET"
    series_dir: Path
    image_id: str
    folder_datetime: dt.datetime | None


def parse_date_folder(name: str) -> dt.datetime | None:
    """``2015-02-13_09_52_18.0`` -> datetime (``None`` if the name is not a scan date)."""
    try:
        return dt.datetime.strptime(name.split(".")[0], "%Y-%m-%d_%H_%M_%S")
    except ValueError:
        return None


def classify_description(description: str, t1_patterns: Sequence[str], pet_patterns: Sequence[str],
                         exclude_patterns: Sequence[str] = ()) -> str | None:
    """"T1", "PET" or None for a series-description folder (case-sensitive fnmatch)."""
    if any(fnmatch.fnmatchcase(description, p) for p in exclude_patterns):
        return None
    if any(fnmatch.fnmatchcase(description, p) for p in t1_patterns):
        return "T1"
    if any(fnmatch.fnmatchcase(description, p) for p in pet_patterns):
        return "PET"
    return None


def discover_series(dicom_root: str | Path, t1_patterns: Sequence[str], pet_patterns: Sequence[str],
                    exclude_patterns: Sequence[str] = ()) -> tuple[list[str], list[SeriesFolder]]:
    """All subject folders (PTIDs) and the T1 / PET series folders that match the patterns."""
    root = Path(dicom_root)
    if not root.is_dir():
        raise PipelineInputError("DICOM root folder does not exist", stage="convert", path=root,
                                 fix="set data.dicom_root to your ADNI download folder")
    ptids = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    found = []
    for ptid in ptids:
        for desc_dir in sorted(p for p in (root / ptid).iterdir() if p.is_dir()):
            kind = classify_description(desc_dir.name, t1_patterns, pet_patterns, exclude_patterns)
            if kind is None:
                continue
            for date_dir in sorted(p for p in desc_dir.iterdir() if p.is_dir()):
                for image_dir in sorted(p for p in date_dir.iterdir() if p.is_dir()):
                    found.append(SeriesFolder(ptid, desc_dir.name, kind, image_dir, image_dir.name,
                                              parse_date_folder(date_dir.name)))
    return ptids, found


def read_clinical_csv(path: str | Path) -> pd.DataFrame:
    """ADNIMERGE-shaped CSV with EXAMDATE parsed to dates; raises if key columns are missing."""
    path = Path(path)
    try:
        table = pd.read_csv(path, dtype={"PTID": str, "VISCODE": str}, low_memory=False)
    except (OSError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise PipelineInputError(f"cannot read the clinical CSV ({exc})", stage="convert", path=path,
                                 fix="set data.clinical_csv to ADNIMERGE.csv") from exc
    missing = [c for c in CSV_COLUMNS if c not in table.columns]
    if missing or not ({"DX_bl", "DX"} & set(table.columns)):
        raise PipelineInputError(f"clinical CSV lacks columns {missing or ['DX_bl or DX']}",
                                 stage="convert", path=path,
                                 fix="use ADNIMERGE.csv (RID, PTID, VISCODE, EXAMDATE, DX_bl/DX, AGE, PTGENDER)")
    table["EXAMDATE"] = pd.to_datetime(table["EXAMDATE"], errors="coerce").dt.date
    return table


def nearest_visit(rows: pd.DataFrame, when: dt.date) -> pd.Series:
    """The CSV row (of one subject) whose EXAMDATE is nearest ``when``."""
    dated = rows.dropna(subset=["EXAMDATE"])
    if dated.empty:
        return rows.iloc[0]
    gaps = dated["EXAMDATE"].map(lambda d: abs((d - when).days))
    return dated.loc[gaps.idxmin()]


def diagnosis(row: pd.Series) -> str | None:
    """The finest diagnosis: DX_bl (CN/SMC/EMCI/LMCI/AD, the papers' groups), else DX."""
    for key in ("DX_bl", "DX"):
        value = row.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return None


def age_at(rows: pd.DataFrame, when: dt.date) -> float | None:
    """Age (years) on ``when``: ADNIMERGE AGE is the age at baseline (VISCODE bl)."""
    base = rows[rows["VISCODE"] == "bl"]
    base = base if not base.empty else rows.sort_values("EXAMDATE")
    age, base_date = base["AGE"].iloc[0], base["EXAMDATE"].iloc[0]
    if pd.isna(age):
        return None
    years = (when - base_date).days / 365.25 if isinstance(base_date, dt.date) else 0.0
    return round(float(age) + years, 1)


def sex_code(value: object) -> str | None:
    """PTGENDER Male/Female -> BIDS M/F."""
    return SEX_CODES.get(str(value).strip().lower()) if isinstance(value, str) else None
