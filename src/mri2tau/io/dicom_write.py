"""Write a 3D volume as a classic single-frame DICOM series (one file per slice).

Geometry convention (the one dcm2niix reproduces, checked in ``tests/test_demo_cohort.py``):
a volume is held as a NIfTI-style array ``V[i, j, k]`` with a 4x4 ``vox2world`` (voxel index ->
world mm, RAS+). Slice ``k`` becomes one DICOM image whose pixel ``[row r, column c]`` is
``V[c, n_j - 1 - r, k]``: columns run along +i, rows along -j, slices along +k. Hence

* ImageOrientationPatient = (+i direction, -j direction) as LPS unit vectors,
* ImagePositionPatient of slice k = LPS of voxel ``(0, n_j - 1, k)``,
* the slice normal (row x column) points along +k when ``det(vox2world) < 0`` (the usual
  dcm2niix "LAS-like" storage); callers build ``vox2world`` that way.

DICOM world is LPS; NIfTI world is RAS: the two differ by ``diag(-1, -1, 1)`` (:data:`mri2tau.io.nifti.LPS`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_data_element, write_file_meta_info
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, ExplicitVRLittleEndian

from mri2tau.io.nifti import LPS

MR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.4"
PET_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.128"


def format_ds(value: float) -> str:
    """A DICOM DS string (<= 16 characters) for ``value``; decode with ``float()``."""
    for digits in range(12, 3, -1):
        text = f"{value:.{digits}g}"
        if len(text) <= 16:
            return text
    raise ValueError(f"cannot format {value!r} as DICOM DS")


def slice_geometry(vox2world: np.ndarray, shape: Sequence[int]) -> dict[str, Any]:
    """DICOM geometry of a volume ``V[i, j, k]`` with ``vox2world`` (RAS mm).

    Returns ``iop`` (6 floats, LPS), ``ipp`` (n_k x 3, LPS mm), ``pixel_spacing``
    ([row spacing, column spacing] mm), ``slice_spacing`` (mm), ``normal`` (LPS unit vector,
    row x column) and ``slice_location`` (mm, IPP projected on the normal).
    """
    m = np.asarray(vox2world, dtype=float)
    steps = np.linalg.norm(m[:3, :3], axis=0)
    row_dir = LPS[:3, :3] @ (m[:3, 0] / steps[0])
    col_dir = LPS[:3, :3] @ (-m[:3, 1] / steps[1])
    normal = np.cross(row_dir, col_dir)
    k = np.arange(shape[2])
    corners = np.stack([np.zeros_like(k), np.full_like(k, shape[1] - 1), k, np.ones_like(k)])
    ipp = (LPS[:3, :3] @ (m @ corners)[:3]).T
    return {
        "iop": [*row_dir.tolist(), *col_dir.tolist()],
        "ipp": ipp,
        "pixel_spacing": [float(steps[1]), float(steps[0])],
        "slice_spacing": float(steps[2]),
        "normal": normal,
        "slice_location": ipp @ normal,
    }


def vox2world_from_dicom(
    iop: Sequence[float], ipp_first: Sequence[float], pixel_spacing: Sequence[float],
    slice_step_lps: Sequence[float], n_rows: int,
) -> np.ndarray:
    """Inverse of :func:`slice_geometry`: NIfTI-style vox2world (RAS mm) from DICOM tags.

    ``ipp_first``: ImagePositionPatient of the first slice (LPS mm); ``slice_step_lps``: the
    vector from one slice's IPP to the next (LPS mm); ``n_rows``: Rows.
    """
    row_dir = np.asarray(iop[:3], float)
    col_dir = np.asarray(iop[3:], float)
    m = np.eye(4)
    m[:3, 0] = LPS[:3, :3] @ row_dir * float(pixel_spacing[1])
    m[:3, 1] = LPS[:3, :3] @ (-col_dir) * float(pixel_spacing[0])
    m[:3, 2] = LPS[:3, :3] @ np.asarray(slice_step_lps, float)
    # IPP is voxel (0, n_rows - 1, 0): step back along +j to voxel (0, 0, 0)
    m[:3, 3] = LPS[:3, :3] @ np.asarray(ipp_first, float) - m[:3, 1] * (n_rows - 1)
    return m


def slice_pixels(volume: np.ndarray, k: int) -> np.ndarray:
    """Pixel array (rows, columns) of slice ``k`` of ``volume[i, j, k]`` (C-contiguous)."""
    return np.ascontiguousarray(volume[:, ::-1, k].T)


def new_dataset(sop_class_uid: str) -> Dataset:
    """An empty dataset with file meta for ``sop_class_uid`` (explicit VR little endian)."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = sop_class_uid
    return ds


def _encode(ds: Dataset) -> dict[int, bytes]:
    """Explicit-VR little-endian bytes of each top-level element of ``ds``, by tag."""
    out = {}
    for elem in ds:
        fp = DicomBytesIO()
        fp.is_little_endian = True
        fp.is_implicit_VR = False
        write_data_element(fp, elem)
        out[int(elem.tag)] = fp.getvalue()
    return out


def _file_meta_bytes(meta: FileMetaDataset) -> bytes:
    fp = DicomBytesIO()
    fp.is_little_endian = True
    fp.is_implicit_VR = False
    write_file_meta_info(fp, meta, enforce_standard=True)
    return b"\0" * 128 + b"DICM" + fp.getvalue()


def write_slices(
    folder: str | Path,
    base: Dataset,
    volume: np.ndarray,
    vox2world: np.ndarray,
    file_names: Sequence[str],
    sop_instance_uids: Sequence[str],
    per_slice: Sequence[Mapping[str, Any]] | None = None,
) -> list[Path]:
    """Write ``volume[i, j, k]`` (16-bit integer storage values) as one DICOM file per slice.

    ``base`` carries the series-level tags (it gets the image-pixel and orientation tags);
    each slice adds its geometry, pixel data, ``SOPInstanceUID`` and the tags in
    ``per_slice[k]`` (e.g. InstanceNumber, RescaleSlope). The constant elements are encoded
    once (explicit VR little endian) and reused, which is ~20x faster than ``dcmwrite`` per
    file for the same bytes. Returns the written paths (slice order).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    geom = slice_geometry(vox2world, volume.shape)
    signed = np.issubdtype(volume.dtype, np.signedinteger)
    if volume.dtype.itemsize != 2 or not np.issubdtype(volume.dtype, np.integer):
        raise ValueError(f"DICOM writer expects 16-bit integer storage, got {volume.dtype}")
    base.SamplesPerPixel = 1
    base.PhotometricInterpretation = "MONOCHROME2"
    base.Rows = int(volume.shape[1])
    base.Columns = int(volume.shape[0])
    base.BitsAllocated = 16
    base.BitsStored = 16
    base.HighBit = 15
    base.PixelRepresentation = 1 if signed else 0
    base.PixelSpacing = [format_ds(v) for v in geom["pixel_spacing"]]
    base.SliceThickness = format_ds(geom["slice_spacing"])
    base.ImageOrientationPatient = [format_ds(round(v, 8)) for v in geom["iop"]]
    constant = _encode(base)
    storage = "<i2" if signed else "<u2"
    paths = []
    for k in range(volume.shape[2]):
        item = Dataset()
        for key, value in (per_slice[k] if per_slice is not None else {}).items():
            setattr(item, key, value)
        item.SOPInstanceUID = sop_instance_uids[k]
        item.ImagePositionPatient = [format_ds(round(v, 6)) for v in geom["ipp"][k]]
        item.SliceLocation = format_ds(round(float(geom["slice_location"][k]), 6))
        item.PixelData = slice_pixels(volume, k).astype(storage, copy=False).tobytes()
        item["PixelData"].VR = "OW"
        elements = {**constant, **_encode(item)}
        base.file_meta.MediaStorageSOPInstanceUID = sop_instance_uids[k]
        body = b"".join(elements[tag] for tag in sorted(elements))
        path = folder / file_names[k]
        path.write_bytes(_file_meta_bytes(base.file_meta) + body)
        paths.append(path)
    return paths
