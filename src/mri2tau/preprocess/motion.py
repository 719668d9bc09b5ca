"""Tau PET frame motion correction: every frame rigidly to frame 1, the weighted frame mean.

Spaces and units
* ``native PET``: the grid and world (mm, RAS+) of frame 1 of the 4D PET, activity in Bq/mL.

Motion parameters (TSV) describe frame k relative to frame 1 in world RAS axes: a head point at
``p`` in frame 1 sits at ``R (p - c) + c + t`` in frame k, ``c`` the centre of the PET field of
view; columns ``trans_{x,y,z}_mm`` = t, ``rot_{x,y,z}_deg`` = extrinsic x-y-z Euler angles of R
(``R = Rz @ Ry @ Rx``), plus framewise displacement (Power et al., 50 mm sphere).

Backends: FSL MCFLIRT (nipype, fslpy for its matrices) when installed, else antspyx rigid
(:func:`mri2tau.preprocess.registration.rigid_registration`, Mattes MI).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
from scipy.spatial.transform import Rotation

from mri2tau.errors import PipelineInputError
from mri2tau.io.atomic import write_tsv_atomic
from mri2tau.io.bids import sidecar_frames
from mri2tau.io.derivatives import bids_uri, pet_sidecar_meta, write_sidecar
from mri2tau.io.nifti import read_nifti, write_nifti
from mri2tau.log import get_logger
from mri2tau.preprocess.registration import rigid_registration, set_threads
from mri2tau.preprocess.transforms import ants_linear_to_ras, to_ants

log = get_logger("preprocess.motion")

MOTION_COLUMNS = ["frame", "trans_x_mm", "trans_y_mm", "trans_z_mm", "rot_x_deg", "rot_y_deg", "rot_z_deg"]
FD_RADIUS_MM = 50.0
# Frame-to-frame rigid schedule: the full-resolution level costs ~3x the rest and adds nothing
# measurable (error 0.02-0.03 mm / deg either way on the 2 mm demo PET), so it stops at shrink 2.
MOTION_SCHEDULE = {"aff_shrink_factors": (6, 4, 2), "aff_smoothing_sigmas": (3, 2, 1),
                   "aff_iterations": (2100, 1200, 1200)}


def fov_centre(shape: Sequence[int], affine: np.ndarray) -> np.ndarray:
    """World (RAS mm) position of the centre of a grid's field of view."""
    centre_vox = (np.asarray(shape[:3], dtype=float) - 1.0) / 2.0
    return affine[:3, :3] @ centre_vox + affine[:3, 3]


# ---------------------------------------------------------------- input checks
def load_pet_frames(
    pet_path: str | Path, *, subject: str, expected_frames: int
) -> tuple[list[np.ndarray], np.ndarray]:
    """Frames (3D float32 arrays, Bq/mL) and the voxel->RAS affine of a dynamic PET.

    Fails with :class:`PipelineInputError` (stage ``pet_motion``) on a wrong number of frames,
    non-finite voxels, an empty (all-zero) frame, or a file that cannot be read.
    """
    img, data = read_nifti(pet_path, what="dynamic PET", subject=subject, stage="pet_motion",
                           fix="reconvert the PET series (delete the BIDS session and rerun conversion); "
                               "or list the subject in data.exclude_subjects if the DICOM export is corrupt")
    if data.ndim == 3:
        data = data[..., None]
    n_frames = data.shape[3] if data.ndim == 4 else -1
    if n_frames != expected_frames:
        raise PipelineInputError(
            f"PET has {n_frames} frames (shape {data.shape}), expected {expected_frames}",
            subject=subject, stage="pet_motion", path=pet_path,
            fix="check the PET series selection, or set data.pet_n_frames to the frames your protocol has",
        )
    n_bad = int(np.size(data) - np.count_nonzero(np.isfinite(data)))
    if n_bad:
        raise PipelineInputError(
            f"PET has {n_bad} NaN/infinite voxels",
            subject=subject, stage="pet_motion", path=pet_path,
            fix="reconvert the PET series; list the subject in data.exclude_subjects if the scanner export is corrupt",
        )
    frames = [np.ascontiguousarray(data[..., k]) for k in range(n_frames)]
    totals = np.array([float(np.abs(f).sum()) for f in frames])
    empty = [k + 1 for k, total in enumerate(totals) if total <= 1e-3 * max(np.median(totals), 1e-30)]
    if empty:
        raise PipelineInputError(
            f"PET frame(s) {empty} carry no activity (total {totals.min():.3g} vs median {np.median(totals):.3g})",
            subject=subject, stage="pet_motion", path=pet_path,
            fix="reconvert the PET series or list the subject in data.exclude_subjects",
        )
    return frames, img.affine


def frame_weights(sidecar: str | Path | None, n_frames: int) -> np.ndarray:
    """Frame weights summing to 1: ``FrameDuration`` of the BIDS sidecar, or equal weights."""
    durations = None
    if sidecar and Path(sidecar).exists():
        durations = json.loads(Path(sidecar).read_text()).get("FrameDuration")
    if not durations or len(durations) != n_frames:
        durations = [1.0] * n_frames
    w = np.asarray(durations, dtype=float)
    return w / w.sum()


# ---------------------------------------------------------------- motion correction
def motion_parameters(motions: Sequence[np.ndarray], centre: np.ndarray) -> pd.DataFrame:
    """Table of motion parameters from per-frame 4x4 RAS head-motion matrices (frame 1 = identity).

    ``motions[k]`` maps a head point in frame 1 to its position in frame k+1 (world mm).
    """
    rows = []
    for k, m in enumerate(motions):
        t = m[:3, :3] @ centre + m[:3, 3] - centre
        angles = Rotation.from_matrix(m[:3, :3]).as_euler("xyz", degrees=True)
        rows.append([k + 1, *t, *angles])
    table = pd.DataFrame(rows, columns=MOTION_COLUMNS)
    table["framewise_displacement_mm"] = framewise_displacement(table)
    return table


def framewise_displacement(table: pd.DataFrame) -> np.ndarray:
    """Power framewise displacement (mm) between consecutive frames; 0 for frame 1."""
    trans = table[["trans_x_mm", "trans_y_mm", "trans_z_mm"]].to_numpy()
    rots = np.deg2rad(table[["rot_x_deg", "rot_y_deg", "rot_z_deg"]].to_numpy()) * FD_RADIUS_MM
    diffs = np.abs(np.diff(np.hstack([trans, rots]), axis=0)).sum(axis=1)
    return np.concatenate([[0.0], diffs])


def motion_correct_ants(frames: Sequence[np.ndarray], affine: np.ndarray) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Rigidly register every frame to frame 1 (antspyx, Mattes MI).

    Returns the frames resampled onto frame 1 (linear interpolation) and the head-motion
    matrices (4x4 RAS, frame 1 -> frame k, identity for frame 1).
    """
    fixed = to_ants(frames[0], affine)
    corrected, motions = [frames[0]], [np.eye(4)]
    for frame in frames[1:]:
        warped, transform = rigid_registration(
            fixed, to_ants(frame, affine), initial_transform="Identity", **MOTION_SCHEDULE
        )
        motions.append(ants_linear_to_ras(transform))
        corrected.append(warped.numpy())
    return corrected, motions


def mcflirt_available() -> bool:
    """True when FSL's ``mcflirt`` can run (``FSLDIR`` set and the binary on PATH)."""
    return bool(os.environ.get("FSLDIR")) and shutil.which("mcflirt") is not None


def mcflirt_interface(pet_path: str | Path, out_file: str | Path):  # -> nipype MCFLIRT
    """nipype MCFLIRT set up to register every frame to frame 1 and save the per-frame matrices."""
    from nipype.interfaces import fsl

    return fsl.MCFLIRT(
        in_file=str(pet_path), out_file=str(out_file), ref_vol=0,
        save_mats=True, save_plots=True, output_type="NIFTI_GZ",
    )


def flirt_to_motion(flirt_matrix: np.ndarray, frame_img: nib.Nifti1Image) -> np.ndarray:
    """Head-motion matrix (RAS, frame 1 -> frame k) from MCFLIRT's frame-k -> frame-1 FLIRT matrix."""
    from fsl.data.image import Image
    from fsl.transform.flirt import fromFlirt

    frame = Image(frame_img)
    world_k_to_1 = fromFlirt(flirt_matrix, frame, frame, from_="world", to="world")
    return np.linalg.inv(world_k_to_1)


def motion_correct_fsl(pet_path: str | Path, affine: np.ndarray) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """MCFLIRT (FSL) to frame 1: corrected frames and head-motion matrices, as :func:`motion_correct_ants`."""
    with tempfile.TemporaryDirectory() as tmp:
        result = mcflirt_interface(pet_path, Path(tmp) / "mc.nii.gz").run()
        corrected_img = nib.load(result.outputs.out_file)
        corrected = np.asarray(corrected_img.dataobj, dtype=np.float32)
        frame_img = nib.Nifti1Image(corrected[..., 0], affine)
        motions = [flirt_to_motion(np.loadtxt(m), frame_img) for m in result.outputs.mat_file]
    return [corrected[..., k] for k in range(corrected.shape[3])], motions


def choose_motion_method(method: str) -> str:
    """Resolve ``auto`` to ``fsl`` when MCFLIRT is installed, else ``ants``; check ``fsl`` is usable."""
    if method == "auto":
        return "fsl" if mcflirt_available() else "ants"
    if method == "fsl" and not mcflirt_available():
        raise RuntimeError(
            "pet.motion_correction is 'fsl' but FSL's mcflirt is not installed (FSLDIR/mcflirt). "
            "Fix: install FSL, or set pet.motion_correction: ants (or auto)."
        )
    if method not in ("fsl", "ants"):
        raise ValueError(f"pet.motion_correction: unknown method {method!r} (auto|fsl|ants)")
    return method


def correct_motion(
    pet: str | Path,
    pet_mean_out: str | Path,
    motion_out: str | Path,
    *,
    subject: str,
    expected_frames: int,
    method: str = "auto",
    sidecar: str | Path | None = None,
    mean_json: str | Path | None = None,
    threads: int = 1,
) -> pd.DataFrame:
    """Rule ``pet_motion``: motion-correct frames to frame 1, write the weighted frame mean and motion TSV.

    ``pet``: 4D PET (Bq/mL). Writes ``pet_mean_out`` (3D, native PET grid, Bq/mL) and
    ``motion_out`` (TSV, :data:`MOTION_COLUMNS` + ``framewise_displacement_mm``). ``sidecar``: the BIDS JSON
    (``FrameDuration`` weights the mean; ``PETInput`` averaged/uniform: 1 frame, no motion correction).
    ``mean_json``: the mean image's derivative sidecar (``MotionCorrection`` = the method used)."""
    set_threads(threads)
    frames, affine = load_pet_frames(pet, subject=subject, expected_frames=sidecar_frames(sidecar, expected_frames))
    method = choose_motion_method(method) if len(frames) > 1 else "none (one frame)"
    log.info("%s: motion correction of %d frame(s): %s", subject, len(frames), method)
    if method == "fsl":
        corrected, motions = motion_correct_fsl(pet, affine)
    else:  # one frame: no registration, motion = identity
        corrected, motions = motion_correct_ants(frames, affine)
    weights = frame_weights(sidecar, len(frames))
    mean = np.tensordot(weights, np.stack(corrected), axes=1).astype(np.float32)
    table = motion_parameters(motions, fov_centre(frames[0].shape, affine))
    log.info("%s: max |translation| %.2f mm, max |rotation| %.2f deg", subject,
             table.filter(like="trans_").abs().to_numpy().max(), table.filter(like="rot_").abs().to_numpy().max())
    write_nifti(pet_mean_out, mean, affine, time_unit="sec")
    write_tsv_atomic(motion_out, table.round(6))
    if mean_json is not None:
        write_sidecar(pet_mean_out, pet_sidecar_meta("mean", sources=[bids_uri(pet)], MotionCorrection=method),
                      mean_json)
    return table
