"""BIDS naming, sidecar post-processing (BIDS-PET timing, de-identification) and dataset files.

Times in PET sidecars are seconds relative to ``TimeZero``; we anchor ``TimeZero`` at the
injection (ADNI tau: frames 75-105 min post-injection, decay-corrected to administration), so
``InjectionStart`` is 0 and ``FrameTimesStart`` reads as minutes-after-injection x 60.
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
import re
import struct
from pathlib import Path
from typing import Any

import pandas as pd
import pydicom
from pydicom.dataset import Dataset

from mri2tau import __version__
from mri2tau.errors import PipelineInputError

from mri2tau.io.dicom import SeriesInfo

BIDS_VERSION = "1.9.0"
TRACER_LABEL = "18FAV1451"
TRACER_NAME = "AV1451"

# De-identification placeholders: not identifying, and too common to search outputs for.
_PLACEHOLDERS = {"removed", "anonymous", "anonymized", "anonymised", "deidentified", "unknown", "none"}

# Sidecar keys that identify a person, a place or a date (dropped; BIDS allows dropping dates).
PHI_SIDECAR_KEYS = frozenset({
    "PatientName", "PatientID", "PatientBirthDate", "PatientSex", "PatientAge", "PatientWeight",
    "PatientSize", "AcquisitionDateTime", "AcquisitionDate", "SeriesDate", "StudyDate", "ContentDate",
    "InstitutionName", "InstitutionAddress", "InstitutionalDepartmentName", "ReferringPhysicianName",
    "PerformingPhysicianName", "OperatorsName", "DeviceSerialNumber", "StationName", "AccessionNumber",
    "StudyID", "StudyInstanceUID", "SeriesInstanceUID", "ImageComments", "StudyDescription",
    "ProcedureStepDescription", "PatientPosition_Comment",
})

# BIDS-PET sidecar fields required by the BIDS validator (1.x) and our fallback for each.
_PET_FALLBACKS: dict[str, Any] = {
    "TracerName": TRACER_NAME,
    "TracerRadionuclide": "F18",
    "InjectedRadioactivityUnits": "MBq",
    "InjectedMass": "n/a",
    "InjectedMassUnits": "n/a",
    "SpecificRadioactivity": "n/a",
    "SpecificRadioactivityUnits": "n/a",
    "ModeOfAdministration": "bolus",
    "ReconMethodName": "n/a",
    "ReconMethodParameterLabels": ["none"],
    "ReconMethodParameterUnits": ["none"],
    "ReconMethodParameterValues": [0],
    "ReconFilterType": "none",
    "ReconFilterSize": 0,
    "AttenuationCorrection": "n/a",
    "Units": "Bq/mL",
}


def bids_label(text: str) -> str:
    """A BIDS label: only letters and digits (``002_S_0413`` -> ``002S0413``)."""
    label = re.sub(r"[^A-Za-z0-9]", "", str(text))
    if not label:
        raise ValueError(f"cannot make a BIDS label from {text!r}")
    return label


def deidentify_sidecar(meta: dict[str, Any]) -> dict[str, Any]:
    """``meta`` without the keys in :data:`PHI_SIDECAR_KEYS`."""
    return {k: v for k, v in meta.items() if k not in PHI_SIDECAR_KEYS}


def _seconds(later: dt.datetime, earlier: dt.datetime) -> float:
    return round((later - earlier).total_seconds(), 3)


def pet_timing(info: SeriesInfo, dcm2niix_meta: dict[str, Any]) -> dict[str, Any]:
    """BIDS-PET timing keys with ``TimeZero`` = injection (seconds, relative to TimeZero).

    Frame starts come from each frame's DICOM AcquisitionTime; when those are unusable we take
    dcm2niix's FrameTimesStart (relative to SeriesTime) and shift it to the injection.
    """
    injection = info.injection_datetime
    if injection is None:
        raise ValueError("PET series has no injection time")
    if info.frame_starts is not None:
        starts = [_seconds(t, injection) for t in info.frame_starts]
    else:
        offset = _seconds(info.series_datetime, injection) if info.series_datetime else 0.0
        starts = [round(float(t) + offset, 3) for t in _as_list(dcm2niix_meta.get("FrameTimesStart", []))]
    durations = [float(d) for d in info.frame_durations_s or []]
    if not durations or not all(durations):
        durations = [float(d) for d in _as_list(dcm2niix_meta.get("FrameDuration", []))]
    decay = (info.decay_correction or "").upper()
    if decay == "START" and info.series_datetime is not None:
        decay_time = _seconds(info.series_datetime, injection)
    else:  # ADMIN (decay-corrected to injection) or NONE
        decay_time = 0.0
    return {
        "TimeZero": injection.strftime("%H:%M:%S"),
        "InjectionStart": 0,
        "ScanStart": starts[0] if starts else 0,
        "FrameTimesStart": starts,
        "FrameDuration": durations,
        "ImageDecayCorrected": decay not in ("", "NONE"),
        "ImageDecayCorrectionTime": decay_time,
    }


def _as_list(value: Any) -> list:
    return list(value) if isinstance(value, (list, tuple)) else [value]


def pet_sidecar(dcm2niix_meta: dict[str, Any], info: SeriesInfo) -> dict[str, Any]:
    """De-identified BIDS-PET sidecar: dcm2niix's keys, timing from pydicom, required keys filled.

    Units: InjectedRadioactivity in MBq (from RadionuclideTotalDose in Bq), times in seconds.
    """
    meta = deidentify_sidecar(dcm2niix_meta)
    meta.update(pet_timing(info, dcm2niix_meta))
    meta["TracerName"] = TRACER_NAME
    meta["TracerRadionuclide"] = "F18"
    if info.injected_activity_bq:
        meta["InjectedRadioactivity"] = round(info.injected_activity_bq / 1e6, 3)
        meta["InjectedRadioactivityUnits"] = "MBq"
    meta.setdefault("Manufacturer", info.manufacturer)
    meta.setdefault("ManufacturersModelName", info.model or "n/a")
    meta.setdefault("AcquisitionMode", "dynamic" if info.n_frames > 1 else "static")
    meta.setdefault("InjectedRadioactivity", "n/a")
    for key, value in _PET_FALLBACKS.items():
        meta.setdefault(key, value)
    n_params = len(_as_list(meta["ReconMethodParameterLabels"]))
    if len(_as_list(meta["ReconMethodParameterUnits"])) != n_params:
        meta["ReconMethodParameterUnits"] = ["none"] * n_params
    return meta


def nifti_header_bytes(path: str | Path) -> bytes:
    """The header and extensions of a .nii / .nii.gz file: every byte before the voxel data."""
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rb") as fh:
        head = fh.read(352)
        endian = "<" if struct.unpack("<i", head[:4])[0] == 348 else ">"
        vox_offset = int(struct.unpack(endian + "f", head[108:112])[0])
        return head + fh.read(max(vox_offset - len(head), 0))


def phi_values(ds: Dataset) -> set[str]:
    """Identifying strings in a header: patient name (and its parts), IDs, birth date, address,
    institution, referring physician, accession number.

    Used to verify that no output carries them. Values shorter than 4 characters are skipped:
    they cannot be searched for without false alarms.
    """
    values: set[str] = set()
    for key in ("PatientName", "PatientID", "PatientBirthDate", "OtherPatientIDs", "OtherPatientNames",
                "PatientAddress", "PatientTelephoneNumbers", "PatientMotherBirthName",
                "ReferringPhysicianName", "InstitutionName", "InstitutionAddress", "AccessionNumber"):
        raw = ds.get(key)
        items = list(raw) if isinstance(raw, pydicom.multival.MultiValue) else [raw]
        for item in items:
            text = str(item or "").strip()
            parts = [text]
            if key.endswith("Name") and "Institution" not in key:
                parts += re.split(r"[\^=]+", text)  # person name components
            values.update(p.strip() for p in parts
                          if len(p.strip()) >= 4 and p.strip().lower() not in _PLACEHOLDERS)
    return values


def find_phi(paths: list[str | Path], values: set[str]) -> list[tuple[Path, str]]:
    """(file, value) for every identifying value found (case-insensitive) in a file's text.

    NIfTI files are searched in their (decompressed) header and extensions, other files whole.
    """
    needles = [(v, v.lower().encode()) for v in values if v]
    hits = []
    for path in map(Path, paths):
        name = path.name
        blob = nifti_header_bytes(path) if name.endswith((".nii", ".nii.gz")) else path.read_bytes()
        if name.endswith(".gz") and not name.endswith(".nii.gz"):
            blob = gzip.decompress(blob)
        blob = blob.lower()
        hits.extend((path, value) for value, needle in needles if needle in blob)
    return hits


def verify_no_phi(paths: list[str | Path], values: set[str], *, subject: str | None = None) -> None:
    """Raise :class:`PipelineInputError` if any identifying value appears in ``paths``."""
    hits = find_phi(paths, values)
    if hits:
        path, value = hits[0]
        raise PipelineInputError(
            f"de-identification failed: a DICOM identifier ({len(value)} characters) is in the output",
            subject=subject, stage="convert", path=path,
            fix="report this; add the DICOM field to mri2tau.io.bids.PHI_SIDECAR_KEYS")


# ------------------------------------------------------------------ dataset-level files
PARTICIPANTS_COLUMNS = {
    "participant_id": {"Description": "BIDS subject label: sub-<ADNI PTID without underscores>"},
    "age": {"Description": "age at the tau PET scan (ADNIMERGE AGE at baseline + time since baseline)",
            "Units": "year"},
    "sex": {"Description": "sex (ADNIMERGE PTGENDER)", "Levels": {"M": "male", "F": "female"}},
    "dx": {"Description": "diagnosis (ADNIMERGE DX_bl, else DX at the visit)",
           "Levels": {"CN": "cognitively normal", "SMC": "significant memory concern",
                      "EMCI": "early MCI", "LMCI": "late MCI", "MCI": "mild cognitive impairment",
                      "AD": "Alzheimer's disease", "Dementia": "dementia"}},
    "dx_group": {"Description": "diagnostic group for analyses",
                 "Levels": {"CN": "CN", "MCI": "SMC, EMCI, LMCI or MCI", "AD": "AD or Dementia"}},
    "manufacturer": {"Description": "tau PET scanner manufacturer (DICOM Manufacturer, normalised)"},
    "session_id": {"Description": "the subject's first converted visit (ADNIMERGE visit code nearest the PET "
                                  "date); with data.sessions: all, results/convert/pairs.tsv lists every visit"},
}


def participants_table(pairs: pd.DataFrame) -> pd.DataFrame:
    """participants.tsv rows from the pairs table: one row per subject, from its first session
    (earliest ``pet_date``; the age is the age at that scan)."""
    order = ["sub", "pet_date", "ses"] if "pet_date" in pairs.columns else ["sub", "ses"]
    pairs = pairs.sort_values(order).drop_duplicates("sub")
    table = pd.DataFrame({
        "participant_id": "sub-" + pairs["sub"].astype(str),
        "age": pairs["age"],
        "sex": pairs["sex"],
        "dx": pairs["dx"],
        "dx_group": pairs["dx_group"],
        "manufacturer": pairs["manufacturer"],
        "session_id": "ses-" + pairs["ses"].astype(str),
    })
    return table.sort_values("participant_id").reset_index(drop=True)


def dataset_description(name: str, dcm2niix_version: str | None = None) -> dict[str, Any]:
    """dataset_description.json for the raw BIDS tree."""
    generated = [{"Name": "mri2tau", "Version": __version__,
                  "Description": "DICOM to BIDS conversion of the selected MRI-tau PET pairs"}]
    if dcm2niix_version:
        generated.append({"Name": "dcm2niix", "Version": dcm2niix_version})
    return {"Name": name, "BIDSVersion": BIDS_VERSION, "DatasetType": "raw", "GeneratedBy": generated}


README_TEXT = """\
# {name}

Raw BIDS dataset written by mri2tau: T1-weighted MRI (anat) and 18F-AV-1451 (flortaucipir) tau
PET (pet: the raw 6 x 5 min frames, or ADNI's averaged frames where the sidecar's PETInput says so)
per session, each tau PET visit paired with a T1 within {max_days} days, converted from DICOM with
dcm2niix. Selection and exclusions: results/convert/pairs.tsv and
excluded.tsv. Sidecars are de-identified: names, IDs, birth dates, institutions and dates are
removed; PET times are seconds relative to TimeZero (the injection).
"""


def read_sidecar(path: str | Path) -> dict[str, Any]:
    """A JSON sidecar as a dict."""
    return json.loads(Path(path).read_text())


def sidecar_frames(sidecar: str | Path | None, raw_frames: int) -> int:
    """Frames the PET stage expects: ``raw_frames`` for raw dynamic PET, 1 when the sidecar's
    ``PETInput`` names an ADNI-processed single-frame input (averaged, uniform)."""
    if sidecar and Path(sidecar).exists():
        return raw_frames if read_sidecar(sidecar).get("PETInput", "raw") == "raw" else 1
    return raw_frames


def pet_input_label(sidecar: str | Path | None) -> str:
    """What the PET stage started from, for QC titles: ``raw dynamic PET`` or ``ADNI averaged (step 2)``."""
    meta = read_sidecar(sidecar) if sidecar and Path(sidecar).exists() else {}
    kind, step = meta.get("PETInput", "raw"), meta.get("ADNIProcessingStep", 0)
    return "raw dynamic PET" if kind == "raw" else f"ADNI {kind} (step {step})"
