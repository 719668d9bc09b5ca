"""What a candidate series is, from its DICOM header (and its names): tau tracer or not, raw
dynamic PET or ADNI processing step 1-4, and which kind of T1.

ADNI ships its processed PET beside the raw series (same scan date, same LONI series ID):

====  =====================================================================  ================
step  series description (LONI folder: spaces and punctuation -> ``_``)     ``data.pet_input``
====  =====================================================================  ================
0     raw dynamic (e.g. ``ADNI Brain PET: Raw Tau``, ``ADNI3-TAU-2 (AC)``)     raw / auto
1     ``AV1451 Co-registered Dynamic``                                       (never used)
2     ``AV1451 Co-registered, Averaged``                                     averaged / auto
3     ``AV1451 Coreg, Avg, Standardized Image and Voxel Size`` (``Std Img``)  uniform
4     ``AV1451 Coreg, Avg, Std Img and Vox Siz, Uniform Resolution`` (6mm)    uniform
====  =====================================================================  ================

A series is raw when neither its folder name nor its SeriesDescription carries an ADNI
processing word and its ImageType is not DERIVED. Text is compared lower-case with every
non-alphanumeric character as a space, so folder names and header descriptions read alike.
"""

from __future__ import annotations

import re

from pydicom.dataset import Dataset

from mri2tau.io.dicom import radiopharmaceutical

ADNI_STEP_NAMES = {1: "Co-registered Dynamic", 2: "Co-registered, Averaged",
                   3: "Coreg, Avg, Standardized Image and Voxel Size",
                   4: "Coreg, Avg, Std Img and Vox Siz, Uniform Resolution"}
PET_INPUT_STEPS = {"raw": (0,), "averaged": (2,), "uniform": (4, 3), "auto": (0, 2)}  # preference order
STEP_INPUT = {0: "raw", 2: "averaged", 3: "uniform", 4: "uniform"}
# T1 kinds in order of preference (index = rank), and how messages name them.
T1_KINDS = ("original", "repeat", "nd", "reformat", "processed")
T1_KIND_NAMES = {"original": "original", "repeat": "REPEAT", "nd": "_ND (not distortion-corrected)",
                 "reformat": "reformatted", "processed": "ADNI-processed"}

_PROCESSED_PET = re.compile(r"\bco ?registered\b|\bcoreg\b|\bavg\b|\baveraged\b|\bstd img\b|"
                            r"\bstandardi[sz]ed\b|\buniform\b")
_STEPS = ((4, re.compile(r"\buniform\b")),
          (3, re.compile(r"\bstd img\b|\bstandardi[sz]ed\b|\bvox(el)? siz")),
          (2, re.compile(r"\bavg\b|\baveraged\b")),
          (1, re.compile(r"\bdynamic\b")))
# tracer words, matched on normalize()d text
TAU_TRACER = re.compile(r"\bav ?1451\b|flortaucipir|\bt ?807\b|tauvid")
_TAU_WORD = re.compile(r"\btau\b")
NON_TAU_TRACER = re.compile(r"\bav ?45\b|florbetapir|amyvid|\bfbb\b|florbetaben|neuraceq|\bfdg\b|fluorodeoxy|fludeoxy|"
                            r"\bpib\b|flutemetamol|vizamyl|nav ?4694|pi ?2620|mk ?6240|ro ?948|pbb3|amyloid")
_T1_PROCESSED = re.compile(r"gradwarp|\bb1 correction\b|\bn3m?\b|\bscaled\b")
_T1_REFORMAT = re.compile(r"\bmpr (cor|tra|sag|coronal|axial|transverse|sagittal)\b|\breformat|\brfmt\b")
_T1_REFORMAT_TYPES = {"MPR", "REFORMATTED", "PROJECTION IMAGE", "MIP", "MNIP"}


def normalize(text: str | None) -> str:
    """Lower-case words: ``AV1451_Co-registered,_Averaged`` -> ``av1451 co registered averaged``."""
    return " ".join(re.sub(r"[^a-z0-9]+", " ", str(text or "").lower()).split())


def image_type(ds: Dataset) -> list[str]:
    """ImageType values, upper-case (``[]`` when absent)."""
    raw = ds.get("ImageType")
    values = [raw] if isinstance(raw, str) else list(raw or [])
    return [str(v).strip().upper() for v in values]


def pet_step(folder_name: str, ds: Dataset) -> int | None:
    """0 for a raw series, 1-4 for an ADNI processing step, ``None`` for processed of unknown step."""
    names = [normalize(folder_name), normalize(ds.get("SeriesDescription"))]
    derived = image_type(ds)[:1] == ["DERIVED"]
    if not derived and not any(_PROCESSED_PET.search(n) for n in names):
        return 0
    for step, pattern in _STEPS:
        if any(pattern.search(n) for n in names):
            return step
    return None


def describe_step(step: int | None) -> str:
    """``raw`` or ``processed step 2 (Co-registered, Averaged)`` for messages."""
    if step == 0:
        return "raw"
    return f"processed step {step} ({ADNI_STEP_NAMES[step]})" if step in ADNI_STEP_NAMES else "processed (unknown step)"


def pet_frames(ds: Dataset, n_files: int) -> int:
    """Frames a classic PET series declares (NumberOfTimeSlices, else files / NumberOfSlices, else 1)."""
    declared = ds.get("NumberOfTimeSlices")
    if declared:
        return int(declared)
    per_frame = int(ds.get("NumberOfSlices") or 0)
    return max(n_files // per_frame, 1) if per_frame else 1


def tracer_problem(folder_name: str, ds: Dataset) -> str | None:
    """Why a PET series is not flortaucipir (``None`` when it is).

    The header decides (Radiopharmaceutical and the RadiopharmaceuticalCodeSequence meaning);
    when it names no tracer, the folder name and SeriesDescription must name tau or AV-1451.
    """
    seq = ds.get("RadiopharmaceuticalInformationSequence")
    codes = seq[0].get("RadiopharmaceuticalCodeSequence") if seq else None
    header = " / ".join(dict.fromkeys(filter(None, [radiopharmaceutical(ds) or "",
                                                     str(codes[0].get("CodeMeaning", "")).strip() if codes else ""])))
    if TAU_TRACER.search(normalize(header)):
        return None
    if NON_TAU_TRACER.search(normalize(header)):
        return f"non-tau tracer: the header names {header.strip()!r}, not flortaucipir (AV-1451)"
    names = " ".join([normalize(folder_name), normalize(ds.get("SeriesDescription"))])
    if NON_TAU_TRACER.search(names):
        return f"non-tau tracer: the series is named {folder_name!r} ({ds.get('SeriesDescription', '')!r})"
    if TAU_TRACER.search(names) or _TAU_WORD.search(names):
        return None
    return (f"tracer unknown: the header names {header.strip() or 'no radiopharmaceutical'!r} and the series "
            f"name {folder_name!r} does not say tau or AV-1451")


def t1_kind(folder_name: str, ds: Dataset) -> str:
    """One of :data:`T1_KINDS`: ADNI-processed (``MPR; GradWarp; B1 Correction; N3; Scaled`` ...),
    a reformat (``..._MPR_Cor``, ImageType MPR/REFORMATTED), ``_ND`` (no distortion correction),
    a ``REPEAT`` acquisition, or an original."""
    names = [normalize(folder_name), normalize(ds.get("SeriesDescription"))]
    if any(_T1_PROCESSED.search(n) for n in names):
        return "processed"
    if any(_T1_REFORMAT.search(n) for n in names) or _T1_REFORMAT_TYPES & set(image_type(ds)):
        return "reformat"
    if any(n.endswith(" nd") for n in names):
        return "nd"
    if any(re.search(r"\brepeat\b|\brpt\b", n) for n in names):
        return "repeat"
    return "original"
