"""Convert one selected session (T1 + tau PET DICOM series) to raw BIDS NIfTI + JSON sidecars."""

from __future__ import annotations

import contextlib
import json
import shutil
import tempfile
from pathlib import Path

import nibabel as nib

from mri2tau.convert.dcm2niix import run_dcm2niix
from mri2tau.errors import PipelineInputError
from mri2tau.io.atomic import atomic_path
from mri2tau.io.bids import deidentify_sidecar, pet_sidecar, phi_values, read_sidecar, verify_no_phi
from mri2tau.io.dicom import SeriesInfo, read_header, validate_series
from mri2tau.io.dicom_groups import files_of_series, series_folder_view
from mri2tau.log import get_logger

log = get_logger("convert.session")


def _check_shape(image: Path, info: SeriesInfo, *, subject: str, series_dir: str | Path) -> None:
    """The NIfTI has the series' in-plane size, slice count and (PET) frame count."""
    shape = nib.load(image).shape
    spatial = shape[:3]
    frames = shape[3] if len(shape) > 3 else 1
    if sorted(spatial) != sorted((info.rows, info.columns, info.n_slices)) or frames != info.n_frames:
        raise PipelineInputError(
            f"dcm2niix output shape {shape} does not match the DICOM series "
            f"({info.rows}x{info.columns}, {info.n_slices} slices, {info.n_frames} frame(s))",
            subject=subject, stage="convert", path=series_dir,
            fix="check the series with `dcm2niix -v y`; it may mix acquisitions")


def convert_series(series_dir: str | Path, work_dir: str | Path, info: SeriesInfo, *,
                   subject: str, pet_input: dict | None = None) -> tuple[Path, dict]:
    """dcm2niix one validated series into ``work_dir``; return (NIfTI path, de-identified sidecar).

    Only ``info.files`` are converted (a folder of links when the folder holds more). PET sidecars
    (``info.n_frames`` from a PET series) get the BIDS-PET keys from :func:`mri2tau.io.bids.pet_sidecar`
    plus ``pet_input`` (e.g. ``{"PETInput": "averaged", "ADNIProcessingStep": 2}``); others only lose
    their identifying keys.
    """
    with series_folder_view(series_dir, info.files) as view:
        image, sidecar = run_dcm2niix(view, work_dir, subject=subject)
    _check_shape(image, info, subject=subject, series_dir=series_dir)
    meta = read_sidecar(sidecar)
    is_pet = info.modality.upper() in ("PT", "PET") or info.injection_datetime is not None
    return image, {**pet_sidecar(meta, info), **(pet_input or {})} if is_pet else deidentify_sidecar(meta)


def convert_session(*, sub: str, ses: str, t1_dir: str | Path, pet_dir: str | Path, t1w: str | Path,
                    t1w_json: str | Path, pet: str | Path, pet_json: str | Path, expected_frames: int,
                    t1_uid: str | None = None, pet_uid: str | None = None, pet_input: str = "raw",
                    pet_step: int = 0) -> None:
    """Validate both series, convert them with dcm2niix and write de-identified BIDS files.

    ``t1_uid``/``pet_uid``: the SeriesInstanceUIDs selected (pairs.tsv), so a folder that also
    holds stray files of another series converts only its own. ``pet_input``/``pet_step``: what
    the PET is (raw, or ADNI processing step 2-4), written to the PET sidecar as ``PETInput`` and
    ``ADNIProcessingStep``. Outputs (all or none): ``t1w``/``t1w_json`` (anat) and
    ``pet``/``pet_json`` (4D, or 3D for one frame; Bq/mL; BIDS-PET timing relative to the
    injection). Raises :class:`PipelineInputError` naming the subject and the offending file for
    corrupt, incomplete or wrong-frame-count series.
    """
    subject = f"sub-{sub} ses-{ses}"
    t1_files = files_of_series(t1_dir, t1_uid, subject=subject)
    pet_files = files_of_series(pet_dir, pet_uid, subject=subject)
    t1_info = validate_series(t1_dir, subject=subject, files=t1_files)
    pet_info = validate_series(pet_dir, subject=subject, expected_frames=expected_frames, files=pet_files)
    log.info("%s: T1 %s (%s, %d slices); PET %s (%s, %s, %d frames x %d slices)", subject,
             t1_info.series_description, t1_info.manufacturer, t1_info.n_slices, pet_info.series_description,
             pet_input, pet_info.manufacturer, pet_info.n_frames, pet_info.n_slices)
    phi = phi_values(read_header(t1_files[0], subject=subject)) | phi_values(read_header(pet_files[0], subject=subject))
    with tempfile.TemporaryDirectory(prefix="mri2tau-convert-") as tmp, contextlib.ExitStack() as stack:
        t1_nii, t1_meta = convert_series(t1_dir, Path(tmp) / "anat", t1_info, subject=subject)
        pet_nii, pet_meta = convert_series(pet_dir, Path(tmp) / "pet", pet_info, subject=subject,
                                           pet_input={"PETInput": pet_input, "ADNIProcessingStep": int(pet_step)})
        written = []
        for target, source in ((t1w, t1_nii), (pet, pet_nii), (t1w_json, t1_meta), (pet_json, pet_meta)):
            tmp_out = stack.enter_context(atomic_path(target))
            if isinstance(source, dict):
                tmp_out.write_text(json.dumps(source, indent=2) + "\n", encoding="utf-8")
            else:
                shutil.copyfile(source, tmp_out)
            written.append(tmp_out)
        verify_no_phi(written, phi, subject=subject)
    log.info("%s: wrote %s and %s", subject, t1w, pet)
