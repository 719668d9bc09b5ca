"""ADNI's processed PET series beside a demo subject's raw series (look-alikes).

ADNI's PET core ships, for every raw AV-1451 scan, the same scan processed in four steps (same
scan date and LONI series ID, new image ID), which a download tree holds beside the raw folder:

1. ``AV1451 Co-registered Dynamic``: the frames rigidly moved onto the first one;
2. ``AV1451 Co-registered, Averaged``: their mean (one frame, Bq/mL);
3. ``AV1451 Coreg, Avg, Standardized Image and Voxel Size``: step 2 reoriented to a standard grid;
4. ``AV1451 Coreg, Avg, Std Img and Vox Siz, Uniform Resolution``: step 3 smoothed to 8 mm FWHM.

The look-alikes here start from the raw series as written (decoded from its DICOM files) and the
true head motion: step 1 = frames moved back with the true motion; 2 = their duration-weighted
mean; 3 = step 2 unchanged (no reorientation: only the name and header differ); 4 = step 2
smoothed from the vendor PSF to 8 mm. Headers are the raw series' (tracer, injection, dose) with
a new SeriesInstanceUID, SeriesDescription, ImageType DERIVED\\SECONDARY and one frame spanning
the scan (steps 2-4).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset

from mri2tau.demo.clinical import SubjectPlan
from mri2tau.demo.dicom_series import demo_uid, series_files, series_folder, write_pet_frames
from mri2tau.demo.pet import coregister_frames, quantise_per_slice, uniform_resolution
from mri2tau.io.dicom import parse_dt
from mri2tau.io.dicom_write import vox2world_from_dicom

STEP_DESCRIPTIONS = {1: "AV1451 Co-registered Dynamic", 2: "AV1451 Co-registered, Averaged",
                     3: "AV1451 Coreg, Avg, Standardized Image and Voxel Size",
                     4: "AV1451 Coreg, Avg, Std Img and Vox Siz, Uniform Resolution"}
_PER_SLICE_TAGS = ("SOPInstanceUID", "ImagePositionPatient", "SliceLocation", "ImageIndex", "InstanceNumber",
                   "RescaleSlope", "AcquisitionDate", "AcquisitionTime", "ActualFrameDuration",
                   "FrameReferenceTime", "DecayFactor")


def read_pet_frames(folder: Path) -> tuple[np.ndarray, Dataset, np.ndarray]:
    """Frames (n, i, j, k) in Bq/mL in the writer's layout (:mod:`mri2tau.io.dicom_write`), the
    first file's header and the vox2world (RAS mm) of a series written by :mod:`dicom_series`."""
    headers = [pydicom.dcmread(p) for p in sorted(folder.glob("*.dcm"))]
    headers.sort(key=lambda d: int(d.ImageIndex))
    n_slices = int(headers[0].NumberOfSlices)
    n_frames = len(headers) // n_slices
    frames = np.stack([d.pixel_array.T[:, ::-1] * float(d.RescaleSlope) for d in headers], axis=-1)
    frames = frames.reshape(*frames.shape[:2], n_frames, n_slices).transpose(2, 0, 1, 3).astype(np.float32)
    first, second = headers[0], headers[1]
    step = np.asarray(second.ImagePositionPatient, float) - np.asarray(first.ImagePositionPatient, float)
    vox2world = vox2world_from_dicom(first.ImageOrientationPatient, first.ImagePositionPatient, first.PixelSpacing,
                                     step, int(first.Rows))
    return frames, headers[0], vox2world


def _series_header(raw: Dataset, plan: SubjectPlan, seed: int, step: int, description: str) -> Dataset:
    ds = copy.deepcopy(raw)
    for tag in _PER_SLICE_TAGS + ("PixelData",):
        if tag in ds:
            delattr(ds, tag)
    ds.SeriesDescription = ds.ProtocolName = description
    ds.SeriesInstanceUID = demo_uid(seed, plan.ptid, "pet", "adni-step", step)
    ds.ImageType = ["DERIVED", "SECONDARY"]
    ds.SeriesNumber = 100 + step
    if step > 1:
        ds.SeriesType = ["STATIC", "IMAGE"]
    return ds


def write_processed_pet(root: Path, plan: SubjectPlan, seed: int, steps: Sequence[int],
                        motions: list[np.ndarray] | None = None, psf_fwhm_mm: float = 0.0,
                        descriptions: dict[int, str] | None = None) -> list[Path]:
    """Write ADNI processing steps ``steps`` (1-4) of the subject's raw PET beside it.

    ``motions``: the true frame-1 -> frame-k head motion (4x4, world mm; identity when ``None``);
    ``psf_fwhm_mm``: the scanner resolution step 4 starts from; ``descriptions``: other names for
    some steps (e.g. ``... Uniform 6mm Res``). Returns the series folders.
    """
    names_of = {**STEP_DESCRIPTIONS, **(descriptions or {})}
    raw_dir = series_folder(root, plan, plan.pet_series_description, plan.pet_series_datetime, plan.pet_image_uid)
    frames, raw, vox2world = read_pet_frames(raw_dir)
    n = len(frames)
    coregistered = coregister_frames(frames, motions or [np.eye(4)] * n, vox2world)
    start = parse_dt(str(raw.AcquisitionDate) + str(raw.AcquisitionTime)) or plan.pet_series_datetime
    durations = np.full(n, float(raw.ActualFrameDuration) / 1000.0)
    starts = (start - plan.injection_datetime).total_seconds() + np.concatenate([[0.0], np.cumsum(durations)[:-1]])
    averaged = np.tensordot(durations / durations.sum(), coregistered, axes=1)[None]
    voxel_mm = float(np.linalg.norm(vox2world[:3, 0]))
    images = {1: coregistered, 2: averaged, 3: averaged,
              4: uniform_resolution(averaged[0], voxel_mm, psf_fwhm_mm)[None] if 4 in steps else None}
    folders = []
    for step in sorted(steps):
        data = images[step]
        stored, slopes = quantise_per_slice(data)
        image_uid = plan.pet_image_uid + 100 * step
        folder, names = series_files(root, plan, "PT", names_of[step], plan.pet_series_datetime, plan.pet_series_id,
                                     image_uid, stored.shape[0] * stored.shape[3])
        step_starts, step_durations = (starts, durations) if step == 1 else (starts[:1], durations.sum(keepdims=True))
        header = _series_header(raw, plan, seed, step, names_of[step])
        write_pet_frames(folder, header, names, (seed, plan.ptid, "pet-step", step), stored, slopes, vox2world, start,
                         step_starts, step_durations)
        folders.append(folder)
    return folders
