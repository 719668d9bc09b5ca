"""DICOM series headers (pydicom, no pixel decoding): reading, validation, PET timing.

A *series* is one folder of DICOM files (ADNI: ``.../I<ImageUID>/*.dcm``). Positions and
orientations are DICOM patient coordinates (LPS, mm); times are naive local datetimes as the
scanner wrote them. Every problem with the data raises :class:`PipelineInputError` naming the
subject, the file, the reason and a fix.
"""

from __future__ import annotations

import datetime as dt
import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset

from mri2tau.errors import PipelineInputError

STAGE = "convert"
_VENDORS = {"siemens": "Siemens", "ge": "GE", "philips": "Philips"}
_FIX_REDOWNLOAD = "re-download this series from the archive, or remove its folder so another series is picked"


@dataclass(frozen=True)
class SeriesInfo:
    """What the pipeline needs to know about one validated DICOM series.

    Spatial fields are per volume (one PET frame): ``n_slices`` slices ``slice_spacing_mm``
    apart along the slice normal. PET timing fields are ``None`` for MR.
    """

    series_dir: Path
    files: tuple[Path, ...]
    modality: str
    manufacturer: str
    model: str
    series_description: str
    series_datetime: dt.datetime | None
    rows: int
    columns: int
    n_slices: int
    n_frames: int
    slice_spacing_mm: float
    radiopharmaceutical: str | None = None
    injection_datetime: dt.datetime | None = None
    injected_activity_bq: float | None = None
    frame_starts: tuple[dt.datetime, ...] | None = None
    frame_durations_s: tuple[float, ...] | None = None
    decay_correction: str | None = None


# ------------------------------------------------------------------ small parsers
def normalize_manufacturer(raw: str | None) -> str:
    """'SIEMENS' / 'GE MEDICAL SYSTEMS' / 'Philips Medical Systems' -> Siemens / GE / Philips."""
    text = (raw or "").strip()
    first = re.split(r"[\s_]+", text.lower())[0] if text else ""
    return _VENDORS.get(first, text or "unknown")


def parse_da(value: str | None) -> dt.date | None:
    """DICOM DA ``YYYYMMDD`` -> date (``None`` when empty or malformed)."""
    text = str(value or "").strip()
    try:
        return dt.datetime.strptime(text[:8], "%Y%m%d").date()
    except ValueError:
        return None


def parse_tm(value: str | None) -> dt.time | None:
    """DICOM TM ``HHMMSS.FFFFFF`` (or ``HH:MM:SS``) -> time (``None`` when empty)."""
    text = str(value or "").strip().replace(":", "")
    match = re.fullmatch(r"(\d{2})(\d{2})?(\d{2})?(?:\.(\d{1,6}))?", text)
    if not match:
        return None
    hh, mm, ss, frac = match.groups()
    micro = int((frac or "0").ljust(6, "0"))
    return dt.time(int(hh), int(mm or 0), int(ss or 0), micro)


def parse_dt(value: str | None) -> dt.datetime | None:
    """DICOM DT ``YYYYMMDDHHMMSS.FFFFFF[&ZZXX]`` -> naive local datetime (offset dropped)."""
    text = re.split(r"[+-]", str(value or "").strip())[0]
    day = parse_da(text[:8])
    if day is None:
        return None
    clock = parse_tm(text[8:]) if len(text) > 8 else dt.time(0)
    return dt.datetime.combine(day, clock) if clock is not None else None


def _combine(day: str | None, clock: str | None) -> dt.datetime | None:
    d, t = parse_da(day), parse_tm(clock)
    return dt.datetime.combine(d, t) if d is not None and t is not None else None


def series_datetime(ds: Dataset) -> dt.datetime | None:
    """Series reference date-time: SeriesDate/Time, else AcquisitionDate/Time, else Study."""
    for day, clock in (("SeriesDate", "SeriesTime"), ("AcquisitionDate", "AcquisitionTime"),
                       ("StudyDate", "StudyTime")):
        value = _combine(ds.get(day), ds.get(clock))
        if value is not None:
            return value
    day = parse_da(ds.get("SeriesDate") or ds.get("AcquisitionDate") or ds.get("StudyDate"))
    return dt.datetime.combine(day, dt.time(0)) if day else None


def acquisition_datetime(ds: Dataset) -> dt.datetime | None:
    """Start of this image's acquisition (PET: start of its frame)."""
    value = parse_dt(ds.get("AcquisitionDateTime"))
    if value is None:
        value = _combine(ds.get("AcquisitionDate") or ds.get("SeriesDate"), ds.get("AcquisitionTime"))
    return value


def injection_datetime(ds: Dataset) -> dt.datetime | None:
    """Radiopharmaceutical start from RadiopharmaceuticalInformationSequence.

    Uses RadiopharmaceuticalStartDateTime when present, else RadiopharmaceuticalStartTime on
    the series date (moved one day back if that would put injection after the scan, i.e. an
    injection before midnight). ``None`` when the header has neither.
    """
    seq = ds.get("RadiopharmaceuticalInformationSequence")
    if not seq:
        return None
    item = seq[0]
    value = parse_dt(item.get("RadiopharmaceuticalStartDateTime"))
    if value is not None:
        return value
    clock = parse_tm(item.get("RadiopharmaceuticalStartTime"))
    ref = series_datetime(ds)
    if clock is None or ref is None:
        return None
    value = dt.datetime.combine(ref.date(), clock)
    return value - dt.timedelta(days=1) if value > ref else value


def radiopharmaceutical(ds: Dataset) -> str | None:
    """Tracer name from the header (Radiopharmaceutical, 0018,0031), if any."""
    seq = ds.get("RadiopharmaceuticalInformationSequence")
    name = str(seq[0].get("Radiopharmaceutical", "") or "").strip() if seq else ""
    return name or None


# ------------------------------------------------------------------ reading files
def series_files(series_dir: str | Path) -> list[Path]:
    """All regular, non-hidden files in ``series_dir`` (recursively), sorted by path."""
    root = Path(series_dir)
    return sorted(p for p in root.rglob("*") if p.is_file() and not p.name.startswith("."))


def read_header(path: str | Path, *, subject: str | None = None) -> Dataset:
    """Read one file's header (no pixels) and check its pixel data is complete.

    Raises :class:`PipelineInputError` for a zero-byte file, a file that is not DICOM, or
    uncompressed pixel data shorter than Rows x Columns x frames x bytes-per-sample.
    """
    path = Path(path)
    size = path.stat().st_size
    if size == 0:
        raise PipelineInputError("zero-byte DICOM file (interrupted download?)", subject=subject,
                                 stage=STAGE, path=path, fix=_FIX_REDOWNLOAD)
    try:
        with path.open("rb") as fh:
            ds = pydicom.dcmread(fh, stop_before_pixels=True)
            pixel_offset = fh.tell()
    except Exception as exc:  # noqa: BLE001 - pydicom raises many types for broken files
        raise PipelineInputError(f"unreadable DICOM file ({type(exc).__name__}: {exc})",
                                 subject=subject, stage=STAGE, path=path, fix=_FIX_REDOWNLOAD) from exc
    missing = [k for k in ("Rows", "Columns", "ImageOrientationPatient", "ImagePositionPatient")
               if k not in ds and "PerFrameFunctionalGroupsSequence" not in ds]
    if missing:
        raise PipelineInputError(f"DICOM file lacks {', '.join(missing)} (not an image slice?)",
                                 subject=subject, stage=STAGE, path=path, fix=_FIX_REDOWNLOAD)
    expected = _pixel_bytes(ds)
    if expected and size - pixel_offset < expected:
        raise PipelineInputError(
            f"truncated DICOM file: pixel data needs {expected} bytes, only {size - pixel_offset} left",
            subject=subject, stage=STAGE, path=path, fix=_FIX_REDOWNLOAD)
    return ds


def _pixel_bytes(ds: Dataset) -> int:
    """Bytes of uncompressed pixel data the header promises (0 if compressed/unknown)."""
    meta = getattr(ds, "file_meta", None)
    syntax = getattr(meta, "TransferSyntaxUID", None) if meta is not None else None
    if syntax is None or syntax.is_compressed or "BitsAllocated" not in ds:
        return 0
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    samples = int(ds.get("SamplesPerPixel", 1) or 1)
    return int(ds.Rows) * int(ds.Columns) * frames * samples * int(ds.BitsAllocated) // 8


def read_first_header(series_dir: str | Path, *, subject: str | None = None) -> Dataset:
    """Header of the first readable file of a series (for cheap selection)."""
    files = series_files(series_dir)
    last: PipelineInputError | None = None
    for path in files:
        try:
            return read_header(path, subject=subject)
        except PipelineInputError as exc:
            last = exc
    if last is not None:
        raise last
    raise PipelineInputError("series folder has no files", subject=subject, stage=STAGE,
                             path=series_dir, fix=_FIX_REDOWNLOAD)


# ------------------------------------------------------------------ geometry
def _slices(ds: Dataset, path: Path) -> list[tuple[np.ndarray, np.ndarray]]:
    """(orientation[6], position[3]) of every 2D image in a file (enhanced: every frame)."""
    per_frame = ds.get("PerFrameFunctionalGroupsSequence")
    if not per_frame:
        return [(np.asarray(ds.ImageOrientationPatient, float), np.asarray(ds.ImagePositionPatient, float))]
    shared = ds.get("SharedFunctionalGroupsSequence")
    shared_orient = None
    if shared and "PlaneOrientationSequence" in shared[0]:
        shared_orient = shared[0].PlaneOrientationSequence[0].ImageOrientationPatient
    out = []
    for item in per_frame:
        orient = (item.PlaneOrientationSequence[0].ImageOrientationPatient
                  if "PlaneOrientationSequence" in item else shared_orient)
        out.append((np.asarray(orient, float), np.asarray(item.PlanePositionSequence[0].ImagePositionPatient, float)))
    return out


def check_slice_stack(positions: list[np.ndarray], orientation: np.ndarray, *, subject: str | None,
                      where: Path, label: str = "") -> float:
    """Check slices are evenly spaced along the normal; return the spacing (mm).

    A gap of about twice the typical spacing is a missing slice; a zero step is a duplicate.
    """
    normal = np.cross(orientation[:3], orientation[3:])
    depth = np.sort(np.array([p @ normal for p in positions]))
    if len(depth) < 2:
        raise PipelineInputError(f"{label}only {len(depth)} slice(s): not a 3D volume", subject=subject,
                                 stage=STAGE, path=where, fix=_FIX_REDOWNLOAD)
    steps = np.diff(depth)
    spacing = float(np.median(steps))
    bad = np.flatnonzero(np.abs(steps - spacing) > max(0.01 * spacing, 1e-3))
    if spacing <= 1e-6 or bad.size:
        i = int(bad[0]) if bad.size else 0
        kind = "missing slice" if steps[i] > spacing else "duplicate or uneven slice"
        raise PipelineInputError(
            f"{label}{kind}: step of {steps[i]:.3f} mm between slice positions {depth[i]:.2f} and "
            f"{depth[i + 1]:.2f} mm along the normal, expected {spacing:.3f} mm ({len(depth)} slices)",
            subject=subject, stage=STAGE, path=where, fix=_FIX_REDOWNLOAD)
    return spacing


def _frame_key(ds: Dataset) -> tuple:
    """Which PET frame a classic single-slice file belongs to (sortable key)."""
    index, per_frame = ds.get("ImageIndex"), ds.get("NumberOfSlices")
    if index is not None and per_frame:
        return (0, (int(index) - 1) // int(per_frame))
    return (1, float(ds.get("FrameReferenceTime", 0) or 0), str(ds.get("AcquisitionTime", "")))


# ------------------------------------------------------------------ validation
def validate_series(series_dir: str | Path, *, subject: str | None = None,
                    expected_frames: int | None = None, files: list[Path] | None = None) -> SeriesInfo:
    """Read every header of a series and check it is one complete image volume (or PET frames).

    Checks: every file readable and complete; the same Rows/Columns/orientation/modality in all
    files; uniformly spaced slices along the normal (no missing slice); for PET
    (``expected_frames`` given): exactly that many frames, the same slice count in each, and
    NumberOfTimeSlices agreeing. ``files``: the series' files when the folder holds more
    (:func:`mri2tau.io.dicom_groups.files_of_series`). Returns the series' :class:`SeriesInfo`.
    """
    series_dir = Path(series_dir)
    files = list(files) if files is not None else series_files(series_dir)
    if not files:
        raise PipelineInputError("series folder has no DICOM files", subject=subject, stage=STAGE,
                                 path=series_dir, fix=_FIX_REDOWNLOAD)
    headers = [(path, read_header(path, subject=subject)) for path in files]
    first_path, first = headers[0]

    def same(key: str, value_of) -> None:
        ref = value_of(first)
        for path, ds in headers[1:]:
            if value_of(ds) != ref:
                raise PipelineInputError(
                    f"inconsistent {key} within the series: {value_of(ds)} here, {ref} in {first_path.name}",
                    subject=subject, stage=STAGE, path=path,
                    fix="the folder mixes series; keep only one series per folder")

    same("Rows", lambda d: int(d.Rows))
    same("Columns", lambda d: int(d.Columns))
    same("Modality", lambda d: str(d.get("Modality", "")))
    same("SeriesInstanceUID", lambda d: str(d.get("SeriesInstanceUID", "")))

    slices: list[tuple[Path, tuple, np.ndarray, np.ndarray]] = []
    for path, ds in headers:
        key = _frame_key(ds) if expected_frames else (0,)
        slices.extend((path, key, o, p) for o, p in _slices(ds, path))
    orientation = slices[0][2]
    for path, _, orient, _ in slices:
        if not np.allclose(orient, orientation, atol=1e-4):
            raise PipelineInputError(
                f"inconsistent ImageOrientationPatient within the series: {np.round(orient, 4).tolist()} "
                f"vs {np.round(orientation, 4).tolist()}", subject=subject, stage=STAGE, path=path,
                fix="the folder mixes series; keep only one series per folder")

    frames: dict[tuple, list] = defaultdict(list)
    for path, key, _, pos in slices:
        frames[key].append((path, pos))
    keys = sorted(frames)
    timing: dict = {}
    if expected_frames:
        _check_frames(frames, keys, first, expected_frames, subject=subject, series_dir=series_dir)
        timing = _pet_timing(headers, frames, keys, first, subject=subject, series_dir=series_dir)
    elif int(first.get("NumberOfFrames", 1) or 1) == 1 and first.get("ImagesInAcquisition"):
        expected = int(first.ImagesInAcquisition)
        if expected and len(slices) < expected:
            raise PipelineInputError(
                f"missing slice(s): {len(slices)} files but ImagesInAcquisition = {expected}",
                subject=subject, stage=STAGE, path=series_dir, fix=_FIX_REDOWNLOAD)
    spacing = 0.0
    for n, key in enumerate(keys):
        label = f"frame {n + 1}: " if expected_frames else ""
        spacing = check_slice_stack([p for _, p in frames[key]], orientation, subject=subject,
                                    where=series_dir, label=label)
    return SeriesInfo(
        series_dir=series_dir,
        files=tuple(files),
        modality=str(first.get("Modality", "")),
        manufacturer=normalize_manufacturer(first.get("Manufacturer")),
        model=str(first.get("ManufacturerModelName", "") or ""),
        series_description=str(first.get("SeriesDescription", "") or ""),
        series_datetime=series_datetime(first),
        rows=int(first.Rows),
        columns=int(first.Columns),
        n_slices=len(frames[keys[0]]),
        n_frames=len(keys),
        slice_spacing_mm=spacing,
        **timing,
    )


def _check_frames(frames: dict, keys: list, first: Dataset, expected: int, *, subject: str | None,
                  series_dir: Path) -> None:
    declared = first.get("NumberOfTimeSlices")
    if len(keys) != expected or (declared is not None and int(declared) != expected):
        raise PipelineInputError(
            f"PET has {len(keys)} frame(s) in its files (NumberOfTimeSlices = {declared}), expected {expected}",
            subject=subject, stage=STAGE, path=series_dir,
            fix="pick the raw dynamic series with all frames, or set data.pet_n_frames to match your protocol")
    counts = [len(frames[k]) for k in keys]
    per_frame = int(first.get("NumberOfSlices") or max(counts))
    for n, (key, count) in enumerate(zip(keys, counts, strict=True)):
        if count != per_frame:
            raise PipelineInputError(
                f"PET frame {n + 1} has {count} slices, expected {per_frame} (missing slice?)",
                subject=subject, stage=STAGE, path=frames[key][0][0].parent, fix=_FIX_REDOWNLOAD)


def _pet_timing(headers: list, frames: dict, keys: list, first: Dataset, *, subject: str | None,
                series_dir: Path) -> dict:
    """Per-frame start (earliest AcquisitionTime of the frame) and duration, injection, dose."""
    by_path = dict(headers)
    starts, durations = [], []
    for key in keys:
        frame_headers = [by_path[path] for path, _ in frames[key]]
        times = [t for t in (acquisition_datetime(d) for d in frame_headers) if t is not None]
        starts.append(min(times) if times else None)
        durations.append(float(frame_headers[0].get("ActualFrameDuration", 0) or 0) / 1000.0)
    injection = injection_datetime(first)
    if injection is None:
        raise PipelineInputError(
            "PET header has no injection time (RadiopharmaceuticalInformationSequence > "
            "RadiopharmaceuticalStartDateTime / RadiopharmaceuticalStartTime)",
            subject=subject, stage=STAGE, path=series_dir,
            fix="use the raw PET series as exported by the scanner (processed series may lack it)")
    seq = first.get("RadiopharmaceuticalInformationSequence")
    dose = seq[0].get("RadionuclideTotalDose") if seq else None
    usable = all(s is not None for s in starts) and all(b > a for a, b in zip(starts, starts[1:]))
    return {
        "radiopharmaceutical": radiopharmaceutical(first),
        "injection_datetime": injection,
        "injected_activity_bq": float(dose) if dose not in (None, "") else None,
        "frame_starts": tuple(starts) if usable else None,
        "frame_durations_s": tuple(durations),
        "decay_correction": str(first.get("DecayCorrection", "") or "") or None,
    }
