"""The ADNI download tree and the ADNIMERGE-shaped clinical CSV.

Tree: ``<root>/<PTID>/<series description>/<YYYY-MM-DD_HH_MM_SS.0>/I<ImageUID>/*.dcm``
(LONI "advanced download"; every character of the description other than ``A-Za-z0-9-`` becomes
``_``). Only folder names are read here; DICOM headers are read by :mod:`mri2tau.io.dicom`.

Clinical table: ADNIMERGE.csv or a dated export (``ADNIMERGE_<date>.csv``; ``data.clinical_csv``
may name the file, its folder or a glob pattern, and the newest export is taken). Column names
are matched case-insensitively; ``VISCODE2`` (harmonised visit code) is used where a row has one,
else ``VISCODE``; EXAMDATE may be ISO (``2019-07-01``, optionally with a time), US ``7/1/2019``,
``2019/07/01``, ``01-Jul-2019`` or ``20190701``.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import glob
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from mri2tau.errors import PipelineInputError

# ADNIMERGE DX_bl (baseline: the papers' five groups) and DX (at each visit) -> analysis group.
DX_BL_GROUPS = {"CN": "CN", "SMC": "MCI", "EMCI": "MCI", "LMCI": "MCI", "AD": "AD"}
DX_VISIT_GROUPS = {"CN": "CN", "MCI": "MCI", "Dementia": "AD"}
DX_GROUPS = {**DX_BL_GROUPS, **DX_VISIT_GROUPS}
SEX_CODES = {"male": "M", "female": "F", "m": "M", "f": "F"}
CSV_COLUMNS = ("RID", "PTID", "VISCODE", "EXAMDATE", "AGE", "PTGENDER")
_OPTIONAL_COLUMNS = ("VISCODE2", "DX_bl", "DX")
VISIT = "VISIT"  # column added by read_clinical_csv: VISCODE2 where present, else VISCODE
_DATE_FORMATS = ("%Y-%m-%d", "%m/%d/%Y", "%Y/%m/%d", "%d-%b-%Y", "%Y%m%d", "%m/%d/%y", "%d-%b-%y")


@dataclass(frozen=True)
class SeriesFolder:
    """One series in the download tree (``series_dir`` holds its DICOM files)."""

    ptid: str
    description: str
    kind: str  # "T1" or "PET"
    series_dir: Path
    image_id: str
    folder_datetime: dt.datetime | None


def description_folder(description: str) -> str:
    """LONI's folder name for a series description (``AV1451 Co-registered, Averaged`` ->
    ``AV1451_Co-registered__Averaged``)."""
    return re.sub(r"[^A-Za-z0-9\-]", "_", description)


def parse_date_folder(name: str) -> dt.datetime | None:
    """``2015-02-13_09_52_18.0`` -> datetime (``None`` if the name is not a scan date)."""
    try:
        return dt.datetime.strptime(name.split(".")[0], "%Y-%m-%d_%H_%M_%S")
    except ValueError:
        return None


def matches(name: str, patterns: Sequence[str]) -> bool:
    """Whether ``name`` matches any fnmatch pattern, ignoring case."""
    return any(fnmatch.fnmatchcase(name.lower(), p.lower()) for p in patterns)


def classify_description(description: str, t1_patterns: Sequence[str], pet_patterns: Sequence[str],
                         exclude_patterns: Sequence[str] = ()) -> str | None:
    """"T1", "PET" or None for a series-description folder (case-insensitive fnmatch).

    Only a first sieve: the DICOM header then decides what the series is
    (:mod:`mri2tau.convert.classify`).
    """
    if matches(description, exclude_patterns):
        return None
    if matches(description, t1_patterns):
        return "T1"
    if matches(description, pet_patterns):
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


# ------------------------------------------------------------------ the clinical table
def _name_date(path: Path) -> dt.date | None:
    """The export date in a file name (``ADNIMERGE_20Apr2024.csv``, ``ADNIMERGE_2024-04-20.csv``)."""
    stem = path.stem
    for pattern, fmt in ((r"\d{4}-\d{2}-\d{2}", "%Y-%m-%d"), (r"\d{8}", "%Y%m%d"),
                         (r"\d{1,2}[A-Za-z]{3}\d{4}", "%d%b%Y"), (r"[A-Za-z]{3}\d{1,2}\d{4}", "%b%d%Y")):
        for text in re.findall(pattern, stem):
            try:
                return dt.datetime.strptime(text, fmt).date()
            except ValueError:
                continue
    return None


def clinical_csv_path(path: str | Path) -> Path:
    """The clinical CSV that ``data.clinical_csv`` names: a file, a folder holding ``ADNIMERGE*.csv``
    or a glob pattern. Several matches: the newest export (date in the name, else modification time).
    A plain file name comes back unchanged, existing or not (the demo writes it later)."""
    given = Path(path)
    if not given.is_dir() and not glob.has_magic(str(given)):
        return given
    pattern = str(given / "ADNIMERGE*.csv") if given.is_dir() else str(given)
    found = [Path(p) for p in glob.glob(pattern) if Path(p).is_file()]
    if not found:
        raise PipelineInputError("clinical CSV not found", stage="convert", path=path,
                                 fix="set data.clinical_csv to ADNIMERGE.csv (or ADNIMERGE_<date>.csv, its folder, "
                                     "or a pattern such as ADNIMERGE*.csv)")
    return max(found, key=lambda p: (_name_date(p) or dt.date.min, p.stat().st_mtime, p.name))


def parse_exam_dates(values: pd.Series) -> pd.Series:
    """Dates (``datetime.date`` or ``None``) from EXAMDATE text in any of :data:`_DATE_FORMATS`.

    A time after the date is ignored. Formats are tried in the order of how many values each
    parses (so a column of ``7/1/2019`` is read month-first, as ADNI writes it).
    """
    text = values.astype("string").str.strip().str.replace(r"[ T]\d{1,2}:\d{2}.*$", "", regex=True)

    def parse(value: object, fmt: str) -> dt.date | None:
        try:
            return dt.datetime.strptime(str(value), fmt).date()
        except ValueError:
            return None

    present = text.dropna()
    ranked = sorted(_DATE_FORMATS, key=lambda f: -sum(parse(v, f) is not None for v in present.head(200)))
    out = []
    for value in text:
        parsed = None if pd.isna(value) else next((d for d in (parse(value, f) for f in ranked) if d), None)
        out.append(parsed)
    return pd.Series(out, index=values.index, dtype=object)


def read_clinical_csv(path: str | Path) -> pd.DataFrame:
    """ADNIMERGE-shaped table: canonical column names, EXAMDATE as dates, visit label in ``VISIT``.

    Raises :class:`PipelineInputError` if the file cannot be read or key columns are missing.
    """
    path = clinical_csv_path(path)
    try:
        table = pd.read_csv(path, dtype=str, low_memory=False, keep_default_na=True)
    except (OSError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise PipelineInputError(f"cannot read the clinical CSV ({exc})", stage="convert", path=path,
                                 fix="set data.clinical_csv to ADNIMERGE.csv") from exc
    by_lower = {str(c).strip().lower(): c for c in table.columns}
    table = table.rename(columns={by_lower[c.lower()]: c for c in CSV_COLUMNS + _OPTIONAL_COLUMNS
                                  if c.lower() in by_lower})
    missing = [c for c in CSV_COLUMNS if c not in table.columns]
    if missing or not ({"DX_bl", "DX"} & set(table.columns)):
        raise PipelineInputError(f"clinical CSV lacks columns {missing or ['DX_bl or DX']}",
                                 stage="convert", path=path,
                                 fix="use ADNIMERGE.csv (RID, PTID, VISCODE, EXAMDATE, DX_bl/DX, AGE, PTGENDER)")
    for column in ("PTID", "VISCODE", "VISCODE2", "DX_bl", "DX"):
        if column in table.columns:
            table[column] = table[column].str.strip().replace("", pd.NA)
    table["EXAMDATE"] = parse_exam_dates(table["EXAMDATE"])
    table["AGE"] = pd.to_numeric(table["AGE"], errors="coerce")
    table[VISIT] = table["VISCODE2"].fillna(table["VISCODE"]) if "VISCODE2" in table.columns else table["VISCODE"]
    return table


def nearest_visit(rows: pd.DataFrame, when: dt.date) -> pd.Series | None:
    """The CSV row (of one subject) whose EXAMDATE is nearest ``when``; ``None`` if no row is dated."""
    dated = rows[rows["EXAMDATE"].notna() & rows[VISIT].notna()]
    if dated.empty:
        return None
    gaps = dated["EXAMDATE"].map(lambda d: abs((d - when).days))
    return dated.loc[gaps.idxmin()]


class DiagnosisError(ValueError):
    """A visit without a usable diagnosis (missing or a value outside the known groups)."""


def _known(value: object, groups: dict[str, str]) -> str | None:
    """``value`` as its canonical key of ``groups`` (case-insensitive), ``None`` when unknown."""
    text = str(value).strip().lower()
    return next((k for k in groups if k.lower() == text), None)


def diagnosis(visit: pd.Series, rows: pd.DataFrame | None = None) -> tuple[str, str]:
    """(dx, dx_group) of a visit: DX_bl (CN/SMC/EMCI/LMCI/AD, the papers' groups), else DX at the visit
    (CN/MCI/Dementia). DX_bl is a subject's baseline diagnosis, so a visit row without it takes the
    value the subject's other ``rows`` carry (if they agree).

    Raises :class:`DiagnosisError` (the reason) for an unknown value or when neither column has one:
    a diagnosis is never guessed.
    """
    baseline = visit.get("DX_bl")
    if pd.isna(baseline) and rows is not None and "DX_bl" in rows.columns:
        values = set(rows["DX_bl"].dropna())
        if len(values) > 1:
            raise DiagnosisError(f"DX_bl differs between the subject's rows ({sorted(values)}) and this visit has none")
        baseline = next(iter(values), None)
    if baseline is not None and not pd.isna(baseline):
        known = _known(baseline, DX_BL_GROUPS)
        if known is None:
            raise DiagnosisError(f"unknown DX_bl {baseline!r} (expected one of {', '.join(DX_BL_GROUPS)})")
        return known, DX_BL_GROUPS[known]
    current = visit.get("DX")
    if current is None or pd.isna(current):
        raise DiagnosisError("no diagnosis: DX_bl and DX are empty")
    known = _known(current, DX_VISIT_GROUPS)
    if known is None:
        raise DiagnosisError(f"unknown DX {current!r} (expected one of {', '.join(DX_VISIT_GROUPS)})")
    return known, DX_VISIT_GROUPS[known]


def age_at(rows: pd.DataFrame, when: dt.date) -> float | None:
    """Age (years) on ``when``: ADNIMERGE AGE is the age at baseline (visit ``bl``)."""
    base = rows[rows[VISIT] == "bl"]
    base = base if not base.empty else rows.dropna(subset=["EXAMDATE"]).sort_values("EXAMDATE")
    if base.empty:
        return None
    age, base_date = base["AGE"].iloc[0], base["EXAMDATE"].iloc[0]
    if pd.isna(age):
        return None
    years = (when - base_date).days / 365.25 if isinstance(base_date, dt.date) else 0.0
    return round(float(age) + years, 1)


def sex_code(value: object) -> str | None:
    """PTGENDER Male/Female -> BIDS M/F."""
    return SEX_CODES.get(str(value).strip().lower()) if isinstance(value, str) else None
