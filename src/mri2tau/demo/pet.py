"""Synthetic dynamic tau PET: 6 x 5 min frames from 75 min post-injection, Bq/mL.

Geometry of frame k (world mm, RAS; "PET world" = scanner coordinates of the PET session):
a head point at ``p`` in frame 1 sits at ``motion[k] @ p`` in frame k, so the value of frame k
at world ``x`` is ``A_ref * S(native_to_template(pet_to_t1 @ motion[k]^-1 @ x))`` plus noise,
where ``S`` is the vendor-blurred SUVR on the template grid and ``A_ref`` the reference-region
activity concentration (Bq/mL, decay-corrected to the series start).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from mri2tau.demo.deform import SubjectDeformation, rigid_matrix, sample_template
from mri2tau.io.dicom_write import format_ds

F18_HALF_LIFE_S = 6586.2
FRAME_START_S = 75 * 60.0
FRAME_DURATION_S = 5 * 60.0
N_FRAMES = 6
ADNI_UNIFORM_FWHM_MM = 8.0  # ADNI processing step 4: every scanner smoothed to this resolution
_FWHM_TO_SIGMA = 1.0 / (2.0 * np.sqrt(2.0 * np.log(2.0)))


def frame_timing(n_frames: int = N_FRAMES, start_s: float = FRAME_START_S,
                 duration_s: float = FRAME_DURATION_S) -> tuple[np.ndarray, np.ndarray]:
    """Frame start times (s after injection) and durations (s)."""
    starts = start_s + duration_s * np.arange(n_frames)
    return starts, np.full(n_frames, duration_s)


def decay_terms(starts_s: np.ndarray, durations_s: np.ndarray, series_start_s: float
                ) -> tuple[np.ndarray, np.ndarray]:
    """Per frame: DICOM DecayFactor (to the series start, incl. decay during the frame) and
    FrameReferenceTime (ms after the series start, decay-weighted mid-frame)."""
    lam = np.log(2.0) / F18_HALF_LIFE_S
    in_frame = lam * durations_s / (1.0 - np.exp(-lam * durations_s))
    factor = np.exp(lam * (starts_s - series_start_s)) * in_frame
    ref_ms = 1000.0 * (starts_s - series_start_s + np.log(in_frame) / lam)
    return factor, ref_ms


def random_motion(rng: np.random.Generator, n_frames: int, max_trans_mm: float = 1.5,
                  max_rot_deg: float = 1.5) -> np.ndarray:
    """Per-frame rigid parameters (n, 6): trans x/y/z mm, rot x/y/z deg; frame 1 = 0.

    A drift plus jitter, clipped to the maxima (< 2 mm, < 2 deg).
    """
    steps = rng.normal(0.0, 1.0, (n_frames, 6)) * np.array([0.5] * 3 + [0.4] * 3)
    params = np.cumsum(steps, axis=0)
    params -= params[0]
    limits = np.array([max_trans_mm] * 3 + [max_rot_deg] * 3)
    return np.clip(params, -limits, limits)


def motion_matrices(params: np.ndarray, centre_mm: np.ndarray) -> list[np.ndarray]:
    """4x4 frame-1 world -> frame-k world per frame (rotation about ``centre_mm``)."""
    return [rigid_matrix(p[3:], p[:3], centre_mm) for p in params]


def render_frames(deformation: SubjectDeformation, pet_to_t1: np.ndarray, suvr_blurred: np.ndarray,
                  template_affine: np.ndarray, shape: tuple[int, int, int], vox2world: np.ndarray,
                  motions: list[np.ndarray], reference_bqml: float, rng: np.random.Generator,
                  noise_fraction: float = 0.06) -> np.ndarray:
    """Frames (n, *shape) float32 in Bq/mL.

    Noise is Poisson-like: Gaussian with sd ``noise_fraction * sqrt(a * reference_bqml)``
    (``a``: the noise-free activity), then clipped at 0.
    """
    frames = np.empty((len(motions), *shape), np.float32)
    for k, motion in enumerate(motions):
        vox2native = pet_to_t1 @ np.linalg.inv(motion) @ vox2world
        tpl_world = deformation.native_to_template_grid(shape, vox2native)
        activity = sample_template(suvr_blurred, template_affine, tpl_world) * reference_bqml
        np.maximum(activity, 0.0, out=activity)
        sd = noise_fraction * np.sqrt(activity * reference_bqml)
        noisy = activity + sd * rng.standard_normal(shape, dtype=np.float32)
        frames[k] = np.maximum(noisy, 0.0)
    return frames


def quantise_per_slice(frames: np.ndarray) -> tuple[np.ndarray, list[list[str]]]:
    """int16 storage of (n, i, j, k) frames with one RescaleSlope per frame and slice.

    Returns (stored int16 array, slopes[frame][slice] as DICOM DS strings); decoded value =
    stored * float(slope).
    """
    stored = np.empty(frames.shape, np.int16)
    slopes: list[list[str]] = []
    for f in range(frames.shape[0]):
        row = []
        for k in range(frames.shape[3]):
            peak = float(np.abs(frames[f, :, :, k]).max())
            slope = format_ds(peak / 32000.0) if peak > 0 else "1"
            stored[f, :, :, k] = np.rint(frames[f, :, :, k] / float(slope))
            row.append(slope)
        slopes.append(row)
    return stored, slopes


def coregister_frames(frames: np.ndarray, motions: list[np.ndarray], vox2world: np.ndarray) -> np.ndarray:
    """Frames (n, i, j, k) moved back onto frame 1's head position (ADNI step 1 look-alike).

    ``motions[k]``: frame-1 world -> frame-k world (4x4 mm); the value at the frame-1 voxel with
    world ``x`` is frame k read (trilinear) at ``motions[k] @ x``.
    """
    out = np.empty(frames.shape, np.float32)
    inverse = np.linalg.inv(vox2world)
    for k, (frame, motion) in enumerate(zip(frames, motions, strict=True)):
        a = inverse @ motion @ vox2world
        out[k] = ndimage.affine_transform(frame, a[:3, :3], a[:3, 3], order=1, mode="constant", cval=0.0)
    return out


def uniform_resolution(volume: np.ndarray, voxel_mm: float, psf_fwhm_mm: float,
                       target_fwhm_mm: float = ADNI_UNIFORM_FWHM_MM) -> np.ndarray:
    """``volume`` smoothed from ``psf_fwhm_mm`` to ``target_fwhm_mm`` (ADNI step 4 look-alike):
    a Gaussian of FWHM sqrt(target^2 - psf^2), none when the scanner is already that blurry."""
    fwhm = np.sqrt(max(target_fwhm_mm ** 2 - psf_fwhm_mm ** 2, 0.0))
    return ndimage.gaussian_filter(volume, fwhm * _FWHM_TO_SIGMA / voxel_mm) if fwhm > 0 else volume.copy()
