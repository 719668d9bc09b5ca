"""ADNI-like DICOM series of a demo subject: vendor tags, PHI, timing, the download tree.

Tree: ``<root>/<PTID>/<description folder>/<YYYY-MM-DD_HH_MM_SS.0>/I<ImageUID>/`` with files
``ADNI_<PTID>_<MR|PT>_<description folder>_br_raw_<YYYYMMDDHHMMSSfff>_<n>_S<SeriesID>_I<ImageUID>.dcm``.
UIDs are derived from (seed, PTID, series, instance) so a seed always gives the same bytes.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import generate_uid

from mri2tau.demo.clinical import SubjectPlan
from mri2tau.demo.pet import F18_HALF_LIFE_S, decay_terms
from mri2tau.io.adni import description_folder
from mri2tau.io.dicom_write import (
    MR_IMAGE_STORAGE,
    PET_IMAGE_STORAGE,
    format_ds,
    new_dataset,
    write_slices,
)

_MANUFACTURER = {"Siemens": "SIEMENS", "GE": "GE MEDICAL SYSTEMS", "Philips": "Philips Medical Systems"}
_MR_MODEL = {"Siemens": "Prisma_fit", "GE": "DISCOVERY MR750", "Philips": "Ingenia"}
_PET_MODEL = {"Siemens": "Biograph64_mCT", "GE": "Discovery 690", "Philips": "Ingenuity TF PET/CT"}
_MR_SEQUENCE = {
    "Siemens": {"ScanningSequence": ["GR", "IR"], "SequenceVariant": ["SK", "SP", "MP"],
                "SequenceName": "*tfl3d1_16ns", "RepetitionTime": "2300", "EchoTime": "2.98",
                "InversionTime": "900", "FlipAngle": "9", "SoftwareVersions": "syngo MR E11"},
    "GE": {"ScanningSequence": ["GR"], "SequenceVariant": ["SS", "SK"],
           "SequenceName": "efgre3d", "RepetitionTime": "7.3", "EchoTime": "3.0",
           "InversionTime": "400", "FlipAngle": "11", "SoftwareVersions": "DV26.0_R03"},
    "Philips": {"ScanningSequence": ["GR"], "SequenceVariant": ["SP", "MP"],
                "SequenceName": "T1TFE", "RepetitionTime": "6.8", "EchoTime": "3.1",
                "InversionTime": "900", "FlipAngle": "9", "SoftwareVersions": "5.3.1"},
}
_PET_NAME = {"Siemens": "Flortaucipir", "GE": "AV-1451", "Philips": "Flortaucipir"}
# Fixed tags: every series, then the T1 and PET series on top
_STUDY_TAGS = {"StudyID": "1", "AccessionNumber": "", "ReferringPhysicianName": "", "StudyDescription": "ADNI3",
               "BodyPartExamined": "BRAIN", "PatientPosition": "HFS", "PositionReferenceIndicator": "",
               "ImageType": ["ORIGINAL", "PRIMARY"]}
_MR_TAGS = {"ImageType": ["ORIGINAL", "PRIMARY", "M", "ND"], "AcquisitionNumber": 1, "MagneticFieldStrength": "3",
            "ImagingFrequency": "123.25", "ImagedNucleus": "1H", "MRAcquisitionType": "3D", "ScanOptions": "IR",
            "NumberOfAverages": "1", "EchoNumbers": "1", "EchoTrainLength": "1", "PixelBandwidth": "240"}
_PET_TAGS = {"SeriesType": ["DYNAMIC", "IMAGE"], "Units": "BQML", "CountsSource": "EMISSION",
             "CorrectedImage": ["NORM", "DTIM", "ATTN", "SCAT", "DECY", "RAN"], "DecayCorrection": "START",
             "RandomsCorrectionMethod": "DLYD", "AttenuationCorrectionMethod": "measured, CT-based",
             "ScatterCorrectionMethod": "Model-based", "ReconstructionMethod": "OSEM3D 4i16s",
             "SliceSensitivityFactor": "1", "RescaleIntercept": "0"}


def _date(d: dt.datetime) -> str:
    return d.strftime("%Y%m%d")


def _time(d: dt.datetime) -> str:
    return d.strftime("%H%M%S.%f")


def series_folder(root: Path, plan: SubjectPlan, description: str, when: dt.datetime, image_uid: int) -> Path:
    """``root/PTID/<description folder>/<YYYY-MM-DD_HH_MM_SS.0>/I<ImageUID>``."""
    return root / plan.ptid / description_folder(description) / when.strftime("%Y-%m-%d_%H_%M_%S.0") / f"I{image_uid}"


def series_files(root: Path, plan: SubjectPlan, modality: str, description: str, when: dt.datetime,
                 series_id: int, image_uid: int, n: int) -> tuple[Path, list[str]]:
    """The series folder (:func:`series_folder`) and the ADNI names of its ``n`` files."""
    stamp = when.strftime("%Y%m%d%H%M%S") + f"{when.microsecond // 1000:03d}"
    names = [f"ADNI_{plan.ptid}_{modality}_{description_folder(description)}_br_raw_{stamp}_{k + 1}_"
             f"S{series_id}_I{image_uid}.dcm" for k in range(n)]
    return series_folder(root, plan, description, when, image_uid), names


def demo_uid(seed: int, *parts: object) -> str:
    """A DICOM UID derived from (seed, parts): the same inputs always give the same UID."""
    return generate_uid(entropy_srcs=[str(seed), *(str(p) for p in parts)])


def _set_tags(ds: Dataset, tags: dict[str, object]) -> None:
    for key, value in tags.items():
        setattr(ds, key, value)


def _series_dataset(plan: SubjectPlan, seed: int, modality: str, when: dt.datetime, series: str,
                    description: str, number: int) -> Dataset:
    """A new MR or PT dataset: patient (planted PHI), study and equipment tags shared by MR and PET,
    the series' identity (``series``: ``t1`` or ``pet``, the key of its UIDs) and its fixed tags."""
    ds = new_dataset(MR_IMAGE_STORAGE if modality == "MR" else PET_IMAGE_STORAGE)
    _set_tags(ds, _STUDY_TAGS)
    _set_tags(ds, _MR_TAGS if modality == "MR" else _PET_TAGS)
    ds.Modality = modality
    ds.ManufacturerModelName = (_MR_MODEL if modality == "MR" else _PET_MODEL)[plan.manufacturer]
    ds.SeriesDescription = ds.ProtocolName = description
    ds.SeriesInstanceUID = demo_uid(seed, plan.ptid, series, "series")
    ds.FrameOfReferenceUID = demo_uid(seed, plan.ptid, series, "frame")
    ds.SeriesNumber = number
    ds.PatientName = plan.planted_patient_name
    ds.PatientID = plan.planted_patient_id
    ds.PatientBirthDate = plan.planted_birth_date
    ds.PatientSex = "F" if plan.sex == "Female" else "M"
    ds.PatientAge = f"{int(plan.age):03d}Y"
    ds.PatientWeight = format_ds(plan.weight_kg)
    ds.StudyInstanceUID = demo_uid(seed, plan.ptid, modality, "study")
    ds.StudyDate = ds.SeriesDate = ds.AcquisitionDate = ds.ContentDate = _date(when)
    ds.StudyTime = ds.SeriesTime = ds.ContentTime = _time(when)
    ds.Manufacturer = _MANUFACTURER[plan.manufacturer]
    ds.InstitutionName = f"ADNI site {plan.site:03d}"
    return ds


def write_t1_series(root: Path, plan: SubjectPlan, seed: int, stored: np.ndarray, slope: str,
                    intercept: str, vox2world: np.ndarray) -> Path:
    """Write the T1 as MR Image Storage, one file per slice; returns the series folder."""
    when = plan.mri_datetime
    ds = _series_dataset(plan, seed, "MR", when, "t1", plan.t1_series_description, 2)
    ds.AcquisitionTime = _time(when)
    _set_tags(ds, _MR_SEQUENCE[plan.manufacturer])
    ds.SpacingBetweenSlices = format_ds(float(np.linalg.norm(vox2world[:3, 2])))
    if plan.manufacturer == "Philips":
        ds.RescaleIntercept = intercept
        ds.RescaleSlope = slope
        ds.RescaleType = "normalized"
    n = stored.shape[2]
    folder, names = series_files(root, plan, "MR", plan.t1_series_description, when, plan.t1_series_id,
                                 plan.t1_image_uid, n)
    uids = [demo_uid(seed, plan.ptid, "t1", k) for k in range(n)]
    write_slices(folder, ds, stored, vox2world, names, uids, [{"InstanceNumber": k + 1} for k in range(n)])
    return folder


def radiopharmaceutical(plan: SubjectPlan, dose_bq: float) -> Dataset:
    """RadiopharmaceuticalInformationSequence item: flortaucipir (AV-1451), F-18, dose, time."""
    item = Dataset()
    item.Radiopharmaceutical = _PET_NAME[plan.manufacturer]
    item.RadiopharmaceuticalStartTime = _time(plan.injection_datetime)
    item.RadiopharmaceuticalStartDateTime = plan.injection_datetime.strftime("%Y%m%d%H%M%S.%f")
    item.RadionuclideTotalDose = format_ds(round(dose_bq))
    item.RadionuclideHalfLife = format_ds(F18_HALF_LIFE_S)
    item.RadionuclidePositronFraction = "0.967"
    item.RadionuclideCodeSequence = _code_sequence("C-111A1", "SRT", "^18^Fluorine")
    item.RadiopharmaceuticalCodeSequence = _code_sequence("C4547429", "UMLS", "Flortaucipir F^18^")
    return item


def _code_sequence(value: str, scheme: str, meaning: str) -> Sequence:
    """A one-item DICOM code sequence (CodeValue, CodingSchemeDesignator, CodeMeaning)."""
    code = Dataset()
    code.CodeValue = value
    code.CodingSchemeDesignator = scheme
    code.CodeMeaning = meaning
    return Sequence([code])


def write_pet_series(root: Path, plan: SubjectPlan, seed: int, stored: np.ndarray, slopes: list[list[str]],
                     vox2world: np.ndarray, starts_s: np.ndarray, durations_s: np.ndarray,
                     dose_bq: float) -> Path:
    """Write PET frames ``stored[frame, i, j, k]`` (int16) as PET Image Storage, one file per
    slice and frame (ImageIndex = frame * n_slices + slice + 1); returns the series folder."""
    series_start = plan.pet_series_datetime
    ds = _series_dataset(plan, seed, "PT", series_start, "pet", plan.pet_series_description, 3)
    ds.RadiopharmaceuticalInformationSequence = Sequence([radiopharmaceutical(plan, dose_bq)])
    folder, names = series_files(root, plan, "PT", plan.pet_series_description, series_start, plan.pet_series_id,
                                 plan.pet_image_uid, stored.shape[0] * stored.shape[3])
    write_pet_frames(folder, ds, names, (seed, plan.ptid, "pet"), stored, slopes, vox2world, series_start,
                     starts_s, durations_s)
    return folder


def write_pet_frames(folder: Path, ds: Dataset, names: list[str], uid_key: tuple, stored: np.ndarray,
                     slopes: list[list[str]], vox2world: np.ndarray, series_start: dt.datetime,
                     starts_s: np.ndarray, durations_s: np.ndarray) -> None:
    """Frames ``stored[frame, i, j, k]`` with the series tags of ``ds``: frame timing (AcquisitionTime,
    ActualFrameDuration, FrameReferenceTime, DecayFactor to the series start) and per-slice
    ImageIndex / RescaleSlope. SOPInstanceUIDs derive from ``uid_key`` + ImageIndex."""
    n_frames, n_slices = stored.shape[0], stored.shape[3]
    factors, ref_ms = decay_terms(starts_s, durations_s, float(starts_s[0]))
    ds.NumberOfSlices = n_slices
    ds.NumberOfTimeSlices = n_frames
    for f in range(n_frames):
        frame_start = series_start + dt.timedelta(seconds=float(starts_s[f] - starts_s[0]))
        ds.AcquisitionDate = _date(frame_start)
        ds.AcquisitionTime = _time(frame_start)
        ds.ActualFrameDuration = int(round(durations_s[f] * 1000))
        ds.FrameReferenceTime = format_ds(round(float(ref_ms[f]), 3))
        ds.DecayFactor = format_ds(round(float(factors[f]), 6))
        index = [f * n_slices + k + 1 for k in range(n_slices)]
        per_slice = [{"ImageIndex": i, "InstanceNumber": i, "RescaleSlope": slopes[f][k]}
                     for k, i in enumerate(index)]
        uids = [demo_uid(*uid_key, i) for i in index]
        write_slices(folder, ds, stored[f], vox2world, names[f * n_slices:(f + 1) * n_slices], uids,
                     per_slice)
