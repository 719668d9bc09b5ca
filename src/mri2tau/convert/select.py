"""Series selection and MRI-PET pairing: one T1 + one tau PET per kept visit.

Candidates are the series folders whose description matches the configured patterns
(:mod:`mri2tau.io.adni`). Each folder's files are grouped by SeriesInstanceUID
(:mod:`mri2tau.io.dicom_groups`: a mixed folder is named and only its own series is used); the
header of that series then decides what it is (:mod:`mri2tau.convert.classify`: tau or not, raw
or ADNI processing step, T1 kind) and when it was acquired (Series/Acquisition/Study date, else the
ADNI date folder). The pairing rules are in :mod:`mri2tau.convert.pairing`. The session label is
the visit code (VISCODE2, else VISCODE) of the clinical-CSV row whose EXAMDATE is nearest the PET
date; two kept visits with the same label: the PET nearer that EXAMDATE keeps it, the other is
excluded. Full validation happens when a session is converted.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from mri2tau.convert.classify import PET_INPUT_STEPS, STEP_INPUT, pet_frames, pet_step, t1_kind, tracer_problem
from mri2tau.convert.pairing import Candidate, Unused, pair_visits, unused_t1s
from mri2tau.errors import PipelineInputError
from mri2tau.io.cache import per_file_version
from mri2tau.io.adni import (
    VISIT,
    DiagnosisError,
    SeriesFolder,
    age_at,
    clinical_csv_path,
    diagnosis,
    discover_series,
    nearest_visit,
    read_clinical_csv,
    sex_code,
)
from mri2tau.io.atomic import write_tsv_atomic
from mri2tau.io.bids import bids_label
from mri2tau.io.dicom import normalize_manufacturer, read_header, series_datetime
from mri2tau.io.dicom_groups import group_folder
from mri2tau.log import get_logger

log = get_logger("convert.select")

PAIR_COLUMNS = ["sub", "ses", "ptid", "rid", "viscode", "t1_dir", "pet_dir", "t1_date", "pet_date",
                "gap_days", "manufacturer", "t1_manufacturer", "dx", "dx_group", "age", "sex",
                "t1_description", "pet_description", "t1_image_id", "pet_image_id",
                "pet_input", "pet_step", "pet_frames", "t1_kind", "t1_series_uid", "pet_series_uid"]
# categories of series left out by design (logged as info, not as warnings)
_EXPECTED = ("processed_step", "raw_not_requested", "later_visit", "not_closest_t1", "t1_", "duplicate")
EXCLUDED_COLUMNS = ["ptid", "sub", "kind", "series_dir", "series_uid", "description", "date", "category", "reason"]


class Exclusions(list):
    """Rows of ``excluded.tsv`` (each also logged as a warning)."""

    def subject(self, ptid: str, category: str, reason: str) -> None:
        """The whole subject is left out."""
        self._add({"ptid": ptid, "kind": "subject", "category": category, "reason": reason})

    def series(self, folder: SeriesFolder, category: str, reason: str, *, uid: str = "", date: object = None) -> None:
        """One series (folder, or the ``uid`` group of a folder) is not used."""
        self._add({"ptid": folder.ptid, "kind": folder.kind, "series_dir": str(folder.series_dir), "series_uid": uid,
                   "description": folder.description, "date": str(date or ""), "category": category,
                   "reason": reason})

    def unused(self, item: Unused) -> None:
        """A classified candidate that the pairing rules left out."""
        c = item.series
        self.series(c.folder, item.category, item.reason, uid=c.uid, date=c.date)

    def _add(self, row: dict) -> None:
        row = {"sub": bids_label(row["ptid"]), "series_dir": "n/a", **row}
        level = logging.INFO if row["category"].startswith(_EXPECTED) else logging.WARNING
        log.log(level, "excluded %s [%s]: %s%s", row["ptid"], row["category"], row["reason"],
                f" ({row['series_dir']})" if row["series_dir"] != "n/a" else "")
        self.append(row)


def read_candidate(folder: SeriesFolder, excluded: Exclusions, pet_n_frames: int) -> Candidate | None:
    """Group, read and classify one series folder; ``None`` (with its exclusion rows) if unusable."""
    contents = group_folder(folder.series_dir, folder.description)
    main = contents.main
    ds = None
    for path in main.files if main else ():
        try:
            ds = read_header(path, subject=folder.ptid)
            break
        except PipelineInputError:
            continue
    if ds is None:
        excluded.series(folder, "unreadable", f"{folder.kind} series unreadable: no readable DICOM image file "
                                              f"({len(contents.unreadable)} unreadable)")
        return None
    for stray in contents.strays:
        excluded.series(folder, "mixed_folder",
                        f"mixed folder: {len(stray.files)} stray file(s) of another series ({stray.description!r}) "
                        f"ignored; the folder's series is {main.description!r} ({len(main.files)} files)",
                        uid=stray.uid)
    when = series_datetime(ds) or folder.folder_datetime
    if when is None:
        excluded.series(folder, "no_date", f"{folder.kind} series has no date in header or folder name", uid=main.uid)
        return None
    base = dict(folder=folder, date=when.date(), manufacturer=normalize_manufacturer(ds.get("Manufacturer")),
                uid=main.uid, n_files=len(main.files), when=when)
    if folder.kind == "T1":
        return Candidate(**base, kind=t1_kind(folder.description, ds))
    problem = tracer_problem(folder.description, ds)
    if problem:
        excluded.series(folder, "not_tau", problem, uid=main.uid, date=when.date())
        return None
    step, frames = pet_step(folder.description, ds), pet_frames(ds, len(main.files))
    if step == 0 and frames != pet_n_frames:
        excluded.series(folder, "frame_count", f"raw tau PET declares {frames} frame(s) (NumberOfTimeSlices); "
                                               f"data.pet_n_frames is {pet_n_frames}", uid=main.uid, date=when.date())
        return None
    return Candidate(**base, kind="pet", step=step, frames=frames if step == 0 else 1)


def _pair_row(t1: Candidate, pet: Candidate, visit: pd.Series, visits: pd.DataFrame, dx: tuple[str, str]) -> dict:
    return {
        "sub": bids_label(pet.folder.ptid), "ses": bids_label(visit[VISIT]), "ptid": pet.folder.ptid,
        "rid": int(float(visit["RID"])), "viscode": visit[VISIT],
        "t1_dir": str(t1.folder.series_dir), "pet_dir": str(pet.folder.series_dir),
        "t1_date": t1.date.isoformat(), "pet_date": pet.date.isoformat(), "gap_days": abs((pet.date - t1.date).days),
        "manufacturer": pet.manufacturer, "t1_manufacturer": t1.manufacturer, "dx": dx[0], "dx_group": dx[1],
        "age": age_at(visits, pet.date), "sex": sex_code(visit.get("PTGENDER")),
        "t1_description": t1.folder.description, "pet_description": pet.folder.description,
        "t1_image_id": t1.folder.image_id, "pet_image_id": pet.folder.image_id,
        "pet_input": STEP_INPUT[pet.step], "pet_step": pet.step, "pet_frames": pet.frames, "t1_kind": t1.kind,
        "t1_series_uid": t1.uid, "pet_series_uid": pet.uid,
    }


def session_rows(ptid: str, pairs: list[tuple[Candidate, Candidate]], visits: pd.DataFrame,
                 excluded: Exclusions) -> list[dict]:
    """pairs.tsv rows of a subject's kept pairs: session label, diagnosis, age; label clashes and
    visits without a usable diagnosis are excluded."""
    rows: dict[str, tuple[int, dict]] = {}
    for t1, pet in pairs:
        visit = nearest_visit(visits, pet.date)
        if visit is None:
            excluded.unused(Unused(pet, "no_visit", "no dated visit of the subject in the clinical CSV (EXAMDATE)"))
            continue
        try:
            dx = diagnosis(visit, visits)
        except DiagnosisError as exc:
            excluded.unused(Unused(pet, "diagnosis", f"visit {visit[VISIT]}: {exc}; never guessed"))
            continue
        row, gap = _pair_row(t1, pet, visit, visits, dx), abs((visit["EXAMDATE"] - pet.date).days)
        held = rows.get(row["ses"])
        if held is not None and held[0] <= gap:
            excluded.unused(Unused(pet, "session_label", f"session label ses-{row['ses']} is taken by the tau PET of "
                                                         f"{held[1]['pet_date']} (nearer that visit's EXAMDATE)"))
            continue
        if held is not None:
            excluded.series(SeriesFolder(ptid, held[1]["pet_description"], "PET", Path(held[1]["pet_dir"]),
                                         held[1]["pet_image_id"], None), "session_label",
                            f"session label ses-{row['ses']} is taken by the tau PET of {row['pet_date']} "
                            "(nearer that visit's EXAMDATE)", uid=held[1]["pet_series_uid"], date=held[1]["pet_date"])
        rows[row["ses"]] = (gap, row)
    return [row for _, row in rows.values()]


def _subject(ptid: str, folders: list[SeriesFolder], visits: pd.DataFrame, excluded: Exclusions, *,
             max_days: int, pet_input: str, sessions: str, pet_n_frames: int) -> list[dict]:
    """pairs.tsv rows of one subject (none if it has no usable pair)."""
    found = [c for c in (read_candidate(f, excluded, pet_n_frames) for f in folders) if c is not None]
    t1s = [c for c in found if c.folder.kind == "T1"]
    pets = [c for c in found if c.folder.kind == "PET"]
    if not t1s or not pets:
        for c in found:
            excluded.unused(Unused(c, "unpaired", "the subject has no usable " + ("T1" if not t1s else "tau PET")))
        excluded.subject(ptid, "no_series", "no usable " + ("T1 MRI" if not t1s else "tau PET") +
                         " series (description patterns in config data.*; see the subject's other rows)")
        return []
    pairs, unused = pair_visits(t1s, pets, max_days=max_days, pet_input=pet_input, sessions=sessions)
    rows = session_rows(ptid, pairs, visits, excluded)
    kept = [(t1, pet) for t1, pet in pairs if str(pet.folder.series_dir) in {r["pet_dir"] for r in rows}]
    for item in unused + unused_t1s(t1s, kept):
        excluded.unused(item)
    if not rows:
        excluded.subject(ptid, "no_pair", f"no MRI-tau PET pair within {max_days} days with data.pet_input: "
                                          f"{pet_input} (see the subject's other rows)")
    return rows


def select_series(*, dicom_root: str | Path, clinical_csv: str | Path, pairs_tsv: str | Path,
                  excluded_tsv: str | Path, t1_patterns: list[str], pet_patterns: list[str],
                  exclude_patterns: list[str], max_days: int, exclude_subjects: list[str] | None = None,
                  pet_input: str = "auto", sessions: str = "first", pet_n_frames: int = 6) -> pd.DataFrame:
    """Discover, classify, pair; write ``pairs_tsv`` (one row per kept session) and ``excluded_tsv``.

    ``pet_input`` (config ``data.pet_input``): auto | raw | averaged | uniform; ``sessions``
    (``data.sessions``): first | all; ``pet_n_frames``: frames of the raw dynamic PET. Excluded
    (one row each, with a category and a reason, also logged): subjects listed in
    ``exclude_subjects`` (PTID ``002_S_0413`` or BIDS label ``002S0413``) or absent from the
    clinical CSV, and every candidate series that is not used. Raises :class:`PipelineInputError`
    when no pair is left.
    """
    if pet_input not in PET_INPUT_STEPS:
        raise ValueError(f"data.pet_input must be one of {sorted(PET_INPUT_STEPS)}, got {pet_input!r}")
    if pet_input == "uniform":
        log.warning("data.pet_input: uniform uses ADNI steps 4/3 (reoriented, resampled; step 4 smoothed to a uniform "
                    "resolution): harmonization.resolution_matching must be off")
    clinical = read_clinical_csv(clinical_csv)
    ptids, folders = discover_series(dicom_root, t1_patterns, pet_patterns, exclude_patterns)
    excluded, rows = Exclusions(), []
    by_user = {str(s) for s in exclude_subjects or []}
    for ptid in ptids:
        if by_user & {ptid, ptid.replace("_", "")}:
            excluded.subject(ptid, "config", "listed in config data.exclude_subjects")
            continue
        visits = clinical[clinical["PTID"] == ptid]
        if visits.empty:
            name = clinical_csv_path(clinical_csv).name
            excluded.subject(ptid, "not_in_csv", f"PTID {ptid} is not in the clinical CSV {name}")
            continue
        rows += _subject(ptid, [f for f in folders if f.ptid == ptid], visits, excluded, max_days=max_days,
                         pet_input=pet_input, sessions=sessions, pet_n_frames=pet_n_frames)
    pairs = pd.DataFrame(rows, columns=PAIR_COLUMNS).sort_values(["sub", "pet_date"], ignore_index=True)
    clash = pairs.groupby("sub")["ptid"].nunique()
    if (clash > 1).any():
        raise PipelineInputError(f"PTIDs collide after removing underscores: "
                                 f"{sorted(pairs.loc[pairs['sub'].isin(clash[clash > 1].index), 'ptid'].unique())}",
                                 stage="convert", path=dicom_root, fix="rename the subject folders")
    if pairs.empty:
        raise PipelineInputError(f"no MRI-PET pair found ({len(ptids)} subject folders, {len(excluded)} exclusions, "
                                 "each logged above)", stage="convert", path=dicom_root,
                                 fix="check data.dicom_root, the description patterns, data.pet_input and "
                                     "data.max_mri_pet_days")
    write_tsv_atomic(excluded_tsv, pd.DataFrame(excluded, columns=EXCLUDED_COLUMNS).fillna("n/a").replace("", "n/a"))
    write_tsv_atomic(pairs_tsv, pairs)
    log.info("selected %d MRI-PET sessions of %d subjects from %d subject folders (pet_input %s: %s); %d exclusions",
             len(pairs), pairs["sub"].nunique(), len(ptids), pet_input,
             pairs["pet_input"].value_counts().to_dict(), len(excluded))
    return pairs


def session_row(pairs_tsv: str | Path, sub: str, ses: str) -> dict[str, str]:
    """The pairs.tsv row of ``sub``/``ses`` as strings (Snakemake input and params functions).

    The pairs table is read once per file version (path, mtime, size), not once per session:
    Snakemake calls this for every session while it builds the DAG.
    """
    rows = _pair_rows(pairs_tsv)
    if (sub, ses) not in rows:
        raise ValueError(f"sub-{sub} ses-{ses} is not among the selected pairs in {pairs_tsv}")
    return dict(rows[(sub, ses)])


def session_dicom_dirs(pairs_tsv: str | Path, sub: str, ses: str) -> dict[str, str]:
    """``{"t1_dir", "pet_dir"}`` of the pair selected for ``sub``/``ses`` (Snakemake input function)."""
    row = session_row(pairs_tsv, sub, ses)
    return {"t1_dir": row["t1_dir"], "pet_dir": row["pet_dir"]}


def session_series(pairs_tsv: str | Path, sub: str, ses: str) -> dict:
    """:func:`mri2tau.convert.session.convert_session`'s series arguments for ``sub``/``ses`` (Snakemake
    params function): SeriesInstanceUIDs, PET input (raw or ADNI step) and the PET frames expected."""
    row = session_row(pairs_tsv, sub, ses)
    return {"t1_uid": row["t1_series_uid"], "pet_uid": row["pet_series_uid"], "pet_input": row["pet_input"],
            "pet_step": int(row["pet_step"]), "expected_frames": int(row["pet_frames"])}


@per_file_version(maxsize=4)
def _pair_rows(pairs_tsv: str) -> dict[tuple[str, str], tuple[tuple[str, str], ...]]:
    """(sub, ses) -> the row's (column, value) pairs, of one version of the pairs table."""
    pairs = pd.read_csv(pairs_tsv, sep="\t", dtype=str, keep_default_na=False)
    return {(r["sub"], r["ses"]): tuple(r.items()) for r in pairs.to_dict("records")}
