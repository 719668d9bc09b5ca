"""io.dicom / io.bids on small hand-made pydicom series and on real DICOM from ../shared/data."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from mri2tau.errors import PipelineInputError
from mri2tau.io import bids, dicom

INJECTION = dt.datetime(2020, 3, 4, 9, 0, 0)
SCAN_START_S = 75 * 60
FRAME_S = 300


def _write_slice(path: Path, *, position, orientation=(1, 0, 0, 0, 1, 0), series_uid: str, rows=8,
                 modality="MR", extra: dict | None = None) -> None:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.4" if modality == "MR" else "1.2.840.10008.5.1.4.1.1.128"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.Modality = modality
    ds.Manufacturer = "SIEMENS"
    ds.SeriesDescription = "Accelerated_Sagittal_MPRAGE" if modality == "MR" else "ADNI Brain PET: Raw"
    ds.PatientName = "Doe^Jane"
    ds.PatientID = "PLANTED-ID-42"
    ds.PatientBirthDate = "19411225"
    ds.SeriesInstanceUID = series_uid
    ds.SeriesDate = ds.AcquisitionDate = ds.StudyDate = INJECTION.strftime("%Y%m%d")
    ds.SeriesTime = ds.AcquisitionTime = "101500"
    ds.Rows = ds.Columns = rows
    ds.PixelSpacing = [2.0, 2.0]
    ds.ImageOrientationPatient = list(orientation)
    ds.ImagePositionPatient = list(position)
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 0
    ds.PixelData = (np.arange(rows * rows, dtype=np.uint16) + int(position[2])).tobytes()
    for key, value in (extra or {}).items():
        setattr(ds, key, value)
    ds.save_as(path, enforce_file_format=True)


def make_mr_series(folder: Path, n_slices: int = 6, spacing: float = 2.0) -> Path:
    """An axial MR series: ``n_slices`` files of 8x8 pixels, ``spacing`` mm apart."""
    folder.mkdir(parents=True, exist_ok=True)
    uid = generate_uid()
    for k in range(n_slices):
        _write_slice(folder / f"slice{k:03d}.dcm", position=(0.0, 0.0, k * spacing), series_uid=uid,
                     extra={"InstanceNumber": k + 1})
    return folder


def make_pet_series(folder: Path, n_frames: int = 3, n_slices: int = 4, declared: int | None = None,
                    injection_as_datetime: bool = True, tracer: str = "AV1451") -> Path:
    """A dynamic PET series: frames of ``n_slices`` slices, 5 min each from 75 min post-injection."""
    folder.mkdir(parents=True, exist_ok=True)
    uid = generate_uid()
    radio = Dataset()
    radio.Radiopharmaceutical = tracer
    radio.RadionuclideTotalDose = "370000000"
    radio.RadionuclideHalfLife = "6586.2"
    if injection_as_datetime:
        radio.RadiopharmaceuticalStartDateTime = INJECTION.strftime("%Y%m%d%H%M%S.000000")
    radio.RadiopharmaceuticalStartTime = INJECTION.strftime("%H%M%S")
    for f in range(n_frames):
        start = INJECTION + dt.timedelta(seconds=SCAN_START_S + f * FRAME_S)
        for s in range(n_slices):
            extra = {
                "ImageIndex": f * n_slices + s + 1, "NumberOfSlices": n_slices,
                "NumberOfTimeSlices": declared or n_frames, "ActualFrameDuration": FRAME_S * 1000,
                "AcquisitionTime": start.strftime("%H%M%S"), "Units": "BQML", "DecayCorrection": "ADMIN",
                "SeriesTime": (INJECTION + dt.timedelta(seconds=SCAN_START_S)).strftime("%H%M%S"),
                "FrameReferenceTime": (f * FRAME_S + FRAME_S / 2) * 1000, "SeriesType": ["DYNAMIC", "IMAGE"],
                "RadiopharmaceuticalInformationSequence": Sequence([radio]), "InstanceNumber": f * n_slices + s + 1,
            }
            _write_slice(folder / f"f{f}s{s}.dcm", position=(0.0, 0.0, 3.0 * s), series_uid=uid, modality="PT",
                         extra=extra)
    return folder


# ------------------------------------------------------------------ validation: good series
def test_mr_series_validates(tmp_path):
    info = dicom.validate_series(make_mr_series(tmp_path / "t1", n_slices=6, spacing=2.5), subject="sub-X")
    assert (info.rows, info.columns, info.n_slices, info.n_frames) == (8, 8, 6, 1)
    assert info.slice_spacing_mm == pytest.approx(2.5)
    assert info.manufacturer == "Siemens"
    assert info.series_datetime == dt.datetime(2020, 3, 4, 10, 15)


def test_pet_series_frames_and_timing(tmp_path):
    info = dicom.validate_series(make_pet_series(tmp_path / "pet", n_frames=3), subject="sub-X", expected_frames=3)
    assert (info.n_frames, info.n_slices) == (3, 4)
    assert info.injection_datetime == INJECTION
    assert info.injected_activity_bq == pytest.approx(3.7e8)
    timing = bids.pet_timing(info, {})
    assert timing["TimeZero"] == "09:00:00" and timing["InjectionStart"] == 0
    assert timing["FrameTimesStart"] == [4500, 4800, 5100]
    assert timing["FrameDuration"] == [300, 300, 300]
    assert timing["ScanStart"] == 4500
    assert timing["ImageDecayCorrected"] is True and timing["ImageDecayCorrectionTime"] == 0


def test_pet_timing_falls_back_to_dcm2niix_frame_times(tmp_path):
    """Vendors that repeat one AcquisitionTime for all frames: dcm2niix's times (from SeriesTime) shifted."""
    info = dicom.validate_series(make_pet_series(tmp_path / "pet", n_frames=3), expected_frames=3)
    info = dataclasses.replace(info, frame_starts=None)
    timing = bids.pet_timing(info, {"FrameTimesStart": [0, 300, 600]})
    assert timing["FrameTimesStart"] == [4500, 4800, 5100]


# ------------------------------------------------------------------ validation: bad series
def _raises(folder: Path, match: str, **kwargs) -> PipelineInputError:
    with pytest.raises(PipelineInputError, match=match) as err:
        dicom.validate_series(folder, subject="sub-002S0413", **kwargs)
    assert "sub-002S0413" in str(err.value)
    return err.value


def test_missing_slice_is_named(tmp_path):
    folder = make_mr_series(tmp_path / "t1", n_slices=6)
    (folder / "slice003.dcm").unlink()
    err = _raises(folder, "missing slice")
    assert "4.000 mm" in err.reason and "2.000 mm" in err.reason
    assert err.path == str(folder)


def test_zero_byte_file_is_named(tmp_path):
    folder = make_mr_series(tmp_path / "t1")
    (folder / "slice002.dcm").write_bytes(b"")
    err = _raises(folder, "zero-byte")
    assert err.path.endswith("slice002.dcm")


def test_corrupt_file_is_named(tmp_path):
    folder = make_mr_series(tmp_path / "t1")
    (folder / "slice004.dcm").write_bytes(np.random.default_rng(0).bytes(600))
    err = _raises(folder, "unreadable DICOM")
    assert err.path.endswith("slice004.dcm") and err.fix


def test_truncated_file_is_named(tmp_path):
    folder = make_mr_series(tmp_path / "t1")
    data = (folder / "slice001.dcm").read_bytes()
    (folder / "slice001.dcm").write_bytes(data[:-40])
    err = _raises(folder, "truncated")
    assert err.path.endswith("slice001.dcm")


def test_pet_wrong_frame_count(tmp_path):
    _raises(make_pet_series(tmp_path / "a", n_frames=5), r"5 frame\(s\).*expected 6", expected_frames=6)
    # a frame deleted from a series that declares 6
    folder = make_pet_series(tmp_path / "b", n_frames=6)
    for path in folder.glob("f2s*.dcm"):
        path.unlink()
    _raises(folder, "NumberOfTimeSlices = 6", expected_frames=6)


def test_pet_missing_slice_in_one_frame(tmp_path):
    folder = make_pet_series(tmp_path / "pet", n_frames=3)
    (folder / "f1s2.dcm").unlink()
    _raises(folder, "frame 2 has 3 slices", expected_frames=3)


def test_mixed_orientation(tmp_path):
    folder = make_mr_series(tmp_path / "t1")
    uid = str(pydicom.dcmread(folder / "slice000.dcm").SeriesInstanceUID)
    _write_slice(folder / "slice001.dcm", position=(0, 0, 2.0), orientation=(0, 1, 0, 0, 0, -1), series_uid=uid)
    _raises(folder, "inconsistent ImageOrientationPatient")


# ------------------------------------------------------------------ header parsing
def test_injection_time_forms():
    ds = Dataset()
    ds.SeriesDate, ds.SeriesTime = "20200304", "001500"
    item = Dataset()
    item.RadiopharmaceuticalStartTime = "231000.50"  # before midnight: previous day
    ds.RadiopharmaceuticalInformationSequence = Sequence([item])
    assert dicom.injection_datetime(ds) == dt.datetime(2020, 3, 3, 23, 10, 0, 500000)
    item.RadiopharmaceuticalStartDateTime = "20200303231001.000000+0100"
    assert dicom.injection_datetime(ds) == dt.datetime(2020, 3, 3, 23, 10, 1)
    assert dicom.injection_datetime(Dataset()) is None


@pytest.mark.parametrize("raw, vendor", [("SIEMENS", "Siemens"), ("GE MEDICAL SYSTEMS", "GE"),
                                         ("Philips Medical Systems", "Philips"), ("", "unknown")])
def test_manufacturer_names(raw, vendor):
    assert dicom.normalize_manufacturer(raw) == vendor


def test_phi_values_and_search(tmp_path):
    ds = Dataset()
    ds.PatientName, ds.PatientID, ds.PatientBirthDate = "Doe^Jane", "PLANTED-ID-42", "19411225"
    ds.InstitutionName = "REMOVED"
    values = bids.phi_values(ds)
    assert {"Doe^Jane", "Jane", "PLANTED-ID-42", "19411225"} <= values and "REMOVED" not in values
    img = nib.Nifti1Image(np.zeros((2, 2, 2), np.int16), np.eye(4))
    img.header["descrip"] = b"id=planted-id-42"
    img.to_filename(tmp_path / "x.nii.gz")
    (tmp_path / "x.json").write_text(json.dumps({"SeriesDescription": "MPRAGE"}))
    hits = bids.find_phi([tmp_path / "x.nii.gz", tmp_path / "x.json"], values)
    assert [(p.name, v) for p, v in hits] == [("x.nii.gz", "PLANTED-ID-42")]


def test_deidentify_and_pet_sidecar(tmp_path):
    info = dicom.validate_series(make_pet_series(tmp_path / "pet", n_frames=2), expected_frames=2)
    raw = {"PatientName": "Doe^Jane", "InstitutionName": "Clinic", "DeviceSerialNumber": "123",
           "AcquisitionDateTime": "2020-03-04T10:15:00", "Manufacturer": "Siemens", "Units": "Bq/mL",
           "ReconMethodParameterLabels": ["subsets", "iterations"], "ReconMethodParameterValues": [8, 2]}
    meta = bids.pet_sidecar(raw, info)
    assert not bids.PHI_SIDECAR_KEYS & set(meta)
    for key in ("TracerName", "TracerRadionuclide", "InjectedRadioactivity", "InjectedRadioactivityUnits",
                "InjectedMass", "SpecificRadioactivity", "ModeOfAdministration", "TimeZero", "ScanStart",
                "InjectionStart", "FrameTimesStart", "FrameDuration", "AcquisitionMode", "ImageDecayCorrected",
                "ImageDecayCorrectionTime", "ReconMethodName", "ReconFilterType", "AttenuationCorrection",
                "ManufacturersModelName"):
        assert key in meta, key
    assert meta["InjectedRadioactivity"] == pytest.approx(370.0)
    assert meta["ReconMethodParameterUnits"] == ["none", "none"]
    assert meta["AcquisitionMode"] == "dynamic"


def test_bids_label():
    assert bids.bids_label("002_S_0413") == "002S0413"
    with pytest.raises(ValueError):
        bids.bids_label("__")


# ------------------------------------------------------------------ real DICOM (../shared/data)

def test_ge_phantom_headers(shared_data):
    info = dicom.validate_series(shared_data / "ge_signa_ir_spgr_phantom" / "In", subject="phantom")
    assert info.manufacturer == "GE"
    assert (info.rows, info.columns, info.n_slices) == (256, 256, 196)
    assert info.slice_spacing_mm == pytest.approx(1.2, abs=1e-3)


def test_xa30_enhanced_multiframe_geometry(shared_data):
    info = dicom.validate_series(shared_data / "siemens_xa30_enhanced_t1" / "In" / "5_anat-T1w_acq-tfl")
    assert (info.manufacturer, info.n_slices, info.slice_spacing_mm) == ("Siemens", 96, pytest.approx(2.0))


def test_tcia_pet_header(shared_data):
    ds = dicom.read_header(shared_data / "tcia_pet_slices" / "2.dcm")
    assert dicom.injection_datetime(ds) == dt.datetime(1960, 1, 14, 11, 19, 59)
    assert dicom.acquisition_datetime(ds) > dicom.injection_datetime(ds)
    assert "ACRIN-FLT-Breast_028" in bids.phi_values(ds)


def test_pet_header_metadata_injection_times(shared_data):
    """RadiopharmaceuticalStartDateTime (with trailing space) and the time-only form agree."""
    folder = shared_data / "pet_header_metadata"
    for name in ("SIEMENS-instances.json", "RADIOPHARM_DATETIME_UNDEFINED-instances.json"):
        inst = json.loads((folder / name).read_text())[0]
        ds = Dataset()
        ds.SeriesDate, ds.SeriesTime = inst["SeriesDate"], inst["SeriesTime"]
        item = Dataset()
        item.RadiopharmaceuticalStartTime = inst["RadiopharmaceuticalStartTime"]
        if "RadiopharmaceuticalStartDateTime" in inst:
            item.RadiopharmaceuticalStartDateTime = inst["RadiopharmaceuticalStartDateTime"]
        ds.RadiopharmaceuticalInformationSequence = Sequence([item])
        expected = dt.datetime.combine(dicom.parse_da(inst["SeriesDate"]),
                                       dicom.parse_tm(inst["RadiopharmaceuticalStartTime"]))
        assert dicom.injection_datetime(ds) == expected
