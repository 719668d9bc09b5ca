"""Series selection and MRI-PET pairing: one T1 + one raw tau PET per subject.

Rule (documented in the README of the BIDS tree): among a subject's raw tau PET series (earliest
first), take the first that has a T1 within ``max_days``; pair it with the T1 closest in time
(ties: the earlier T1). The session label is the VISCODE of the clinical-CSV row whose EXAMDATE is
nearest the PET date. Scan dates come from the DICOM header (Series/Acquisition/Study date),
else from the ADNI date folder. Only the first readable file of each candidate series is read
here; full validation happens when the session is converted.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from mri2tau.errors import PipelineInputError
from mri2tau.io.adni import (
    DX_GROUPS,
    SeriesFolder,
    age_at,
    diagnosis,
    discover_series,
    nearest_visit,
    read_clinical_csv,
    sex_code,
)
from mri2tau.io.atomic import write_tsv_atomic
from mri2tau.io.bids import bids_label
from mri2tau.io.dicom import normalize_manufacturer, radiopharmaceutical, read_first_header, series_datetime
from mri2tau.log import get_logger

log = get_logger("convert.select")

PAIR_COLUMNS = ["sub", "ses", "ptid", "rid", "viscode", "t1_dir", "pet_dir", "t1_date", "pet_date",
                "gap_days", "manufacturer", "t1_manufacturer", "dx", "dx_group", "age", "sex",
                "t1_description", "pet_description", "t1_image_id", "pet_image_id"]
EXCLUDED_COLUMNS = ["ptid", "sub", "series_dir", "reason"]
# Tracers that are not flortaucipir although a broad PET pattern (e.g. "*PET__Raw*") matches.
_NON_TAU = re.compile(r"av-?45|florbetapir|amyvid|fbb|florbetaben|neuraceq|fdg|fluorodeoxy|pib|"
                      r"flutemetamol|vizamyl|nav-?4694|pi-?2620|mk-?6240", re.IGNORECASE)


@dataclass(frozen=True)
class Candidate:
    """A matched series with what its first header says."""

    folder: SeriesFolder
    date: dt.date
    manufacturer: str


def _candidate(folder: SeriesFolder, excluded: list[dict]) -> Candidate | None:
    """Read the first header; None (with an exclusion row) if unreadable or not tau."""
    sub = bids_label(folder.ptid)
    try:
        ds = read_first_header(folder.series_dir, subject=folder.ptid)
    except PipelineInputError as exc:
        excluded.append(_excl(folder.ptid, f"{folder.kind} series unreadable: {exc.reason}", folder.series_dir))
        return None
    tracer = radiopharmaceutical(ds) if folder.kind == "PET" else None
    if tracer and _NON_TAU.search(tracer):
        excluded.append(_excl(folder.ptid, f"PET tracer is {tracer!r}, not AV-1451", folder.series_dir))
        return None
    when = series_datetime(ds) or folder.folder_datetime
    if when is None:
        excluded.append(_excl(folder.ptid, f"{folder.kind} series has no date in header or folder name",
                              folder.series_dir))
        return None
    log.debug("%s: %s %s %s", sub, folder.kind, folder.description, when.date())
    return Candidate(folder, when.date(), normalize_manufacturer(ds.get("Manufacturer")))


def _excl(ptid: str, reason: str, series_dir: Path | None = None) -> dict:
    log.warning("excluded %s: %s%s", ptid, reason, f" ({series_dir})" if series_dir else "")
    return {"ptid": ptid, "sub": bids_label(ptid), "series_dir": str(series_dir) if series_dir else "n/a",
            "reason": reason}


def pair_series(t1s: list[Candidate], pets: list[Candidate], max_days: int) -> tuple[Candidate, Candidate] | None:
    """Earliest PET with a T1 within ``max_days``, and the T1 closest to it (ties: earlier)."""
    for pet in sorted(pets, key=lambda c: (c.date, str(c.folder.series_dir))):
        ranked = sorted(t1s, key=lambda c: (abs((c.date - pet.date).days), c.date))
        if ranked and abs((ranked[0].date - pet.date).days) <= max_days:
            return ranked[0], pet
    return None


def _pair_row(t1: Candidate, pet: Candidate, visits: pd.DataFrame) -> dict:
    visit = nearest_visit(visits, pet.date)
    dx = diagnosis(visit)
    return {
        "sub": bids_label(pet.folder.ptid),
        "ses": bids_label(visit["VISCODE"]),
        "ptid": pet.folder.ptid,
        "rid": int(visit["RID"]),
        "viscode": visit["VISCODE"],
        "t1_dir": str(t1.folder.series_dir),
        "pet_dir": str(pet.folder.series_dir),
        "t1_date": t1.date.isoformat(),
        "pet_date": pet.date.isoformat(),
        "gap_days": abs((pet.date - t1.date).days),
        "manufacturer": pet.manufacturer,
        "t1_manufacturer": t1.manufacturer,
        "dx": dx,
        "dx_group": DX_GROUPS.get(dx or ""),
        "age": age_at(visits, pet.date),
        "sex": sex_code(visit.get("PTGENDER")),
        "t1_description": t1.folder.description,
        "pet_description": pet.folder.description,
        "t1_image_id": t1.folder.image_id,
        "pet_image_id": pet.folder.image_id,
    }


def select_series(*, dicom_root: str | Path, clinical_csv: str | Path, pairs_tsv: str | Path,
                  excluded_tsv: str | Path, t1_patterns: list[str], pet_patterns: list[str],
                  exclude_patterns: list[str], max_days: int,
                  exclude_subjects: list[str] | None = None) -> pd.DataFrame:
    """Discover, pair and write ``pairs_tsv`` (one row per subject) and ``excluded_tsv``.

    Excluded (with a reason, also logged): subjects listed in ``exclude_subjects`` (config
    ``data.exclude_subjects``: PTID ``002_S_0413`` or BIDS label ``002S0413``, e.g. a corrupt
    export), absent from the clinical CSV, without a matching T1 or tau PET, or without a pair
    within ``max_days``; unreadable or non-tau series.
    Raises :class:`PipelineInputError` when no pair is left.
    """
    clinical = read_clinical_csv(clinical_csv)
    ptids, folders = discover_series(dicom_root, t1_patterns, pet_patterns, exclude_patterns)
    excluded: list[dict] = []
    rows = []
    by_user = {str(s) for s in exclude_subjects or []}
    for ptid in ptids:
        if by_user & {ptid, ptid.replace("_", "")}:
            excluded.append(_excl(ptid, "listed in config data.exclude_subjects"))
            continue
        visits = clinical[clinical["PTID"] == ptid]
        if visits.empty:
            excluded.append(_excl(ptid, f"PTID {ptid} is not in the clinical CSV {Path(clinical_csv).name}"))
            continue
        mine = [f for f in folders if f.ptid == ptid]
        found = [c for c in (_candidate(f, excluded) for f in mine) if c is not None]
        t1s = [c for c in found if c.folder.kind == "T1"]
        pets = [c for c in found if c.folder.kind == "PET"]
        if not t1s or not pets:
            missing = "T1 MRI" if not t1s else "tau PET"
            excluded.append(_excl(ptid, f"no usable {missing} series (description patterns in config data.*)"))
            continue
        pair = pair_series(t1s, pets, max_days)
        if pair is None:
            closest = min(abs((t.date - p.date).days) for t in t1s for p in pets)
            excluded.append(_excl(ptid, f"no T1 within {max_days} days of a tau PET (closest gap {closest} days)"))
            continue
        rows.append(_pair_row(*pair, visits))
    pairs = pd.DataFrame(rows, columns=PAIR_COLUMNS)
    duplicated = pairs["sub"].duplicated(keep=False)
    if duplicated.any():
        raise PipelineInputError(f"PTIDs collide after removing underscores: {sorted(pairs.loc[duplicated, 'ptid'])}",
                                 stage="convert", path=dicom_root, fix="rename the subject folders")
    if pairs.empty:
        raise PipelineInputError(f"no MRI-PET pair found ({len(ptids)} subject folders, {len(excluded)} exclusions, "
                                 "each logged above)", stage="convert", path=dicom_root,
                                 fix="check data.dicom_root, the description patterns and data.max_mri_pet_days")
    write_tsv_atomic(excluded_tsv, pd.DataFrame(excluded, columns=EXCLUDED_COLUMNS))
    write_tsv_atomic(pairs_tsv, pairs)
    log.info("selected %d MRI-PET pairs from %d subject folders; %d exclusions", len(pairs), len(ptids), len(excluded))
    return pairs


def session_dicom_dirs(pairs_tsv: str | Path, sub: str, ses: str) -> dict[str, str]:
    """``{"t1_dir", "pet_dir"}`` of the pair selected for ``sub``/``ses`` (Snakemake input function).

    The pairs table is read once per file version (path, mtime, size), not once per session:
    Snakemake calls this for every session while it builds the DAG.
    """
    stat = Path(pairs_tsv).stat()
    dirs = _pair_dirs(str(pairs_tsv), stat.st_mtime_ns, stat.st_size)
    if (sub, ses) not in dirs:
        raise ValueError(f"sub-{sub} ses-{ses} is not among the selected pairs in {pairs_tsv}")
    return dict(dirs[(sub, ses)])


@functools.lru_cache(maxsize=4)
def _pair_dirs(pairs_tsv: str, mtime_ns: int, size: int) -> dict[tuple[str, str], tuple[tuple[str, str], ...]]:
    """(sub, ses) -> (("t1_dir", ...), ("pet_dir", ...)) of one version of the pairs table."""
    pairs = pd.read_csv(pairs_tsv, sep="\t", dtype=str, keep_default_na=False)
    return {(r.sub, r.ses): (("t1_dir", r.t1_dir), ("pet_dir", r.pet_dir)) for r in pairs.itertuples()}
