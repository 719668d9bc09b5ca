"""By-manufacturer standardization of template-space SUVR, fitted on training subjects only.

Statistics are taken over the template brain mask (:func:`mri2tau.templates.load_template_mask`)
of every TRAINING subject's SUVR (``results/splits.tsv``), per scanner manufacturer and pooled
over all training subjects. Each manufacturer gets a linear map ``x' = scale * x + offset`` that
takes its distribution onto the pooled training distribution:

* ``zscore`` (default): ``(x - mean_m) / sd_m * sd_pool + mean_pool`` (voxel mean/sd over the
  manufacturer's training brain voxels);
* ``minmax``: ``(x - lo_m) / (hi_m - lo_m) * (hi_pool - lo_pool) + lo_pool`` with lo/hi the
  ``robust_percentile`` / ``100 - robust_percentile`` percentiles of brain SUVR, averaged over
  the manufacturer's training subjects (0 = true min/max);
* ``none``: identity (the output is a copy, so downstream paths do not change).

The map is applied to brain-mask voxels; voxels outside the brain keep their SUVR (the
statistics say nothing about them). A manufacturer without training subjects fails
(``on_unknown_manufacturer: error``) or keeps its SUVR unchanged (``identity``: treated as
already on the pooled scale).

Resolution matching (optional, ``harmonization.resolution_matching``; ADNI's "uniform
resolution" processing): before the statistics are fitted and before the map is applied, each
manufacturer's SUVR is smoothed with an isotropic Gaussian of FWHM
``sqrt(target_fwhm_mm**2 - scanner_fwhm_mm[manufacturer]**2)`` (mm; template grid, whole
volume, 0 beyond the grid) and divided again by its mean in the PET reference region, which
equals smoothing the PET and then taking SUVR. Every manufacturer then shows the same effective
resolution (``target_fwhm_mm``), so what is left between them is an intensity difference the
linear map can undo; without it a PSF difference survives in small ROIs. Smoothing cannot be
inverted: the standardized SUVR, and synthetic PET mapped back with the inverse of
:func:`apply_map`, stay at the matched resolution.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pandas as pd
from scipy import ndimage

from mri2tau.errors import PipelineInputError
from mri2tau.io.atomic import write_json_atomic
from mri2tau.io.derivatives import bids_uri, pet_sidecar_meta, write_sidecar
from mri2tau.io.nifti import write_nifti
from mri2tau.log import get_logger
from mri2tau.preprocess.suvr import reference_mean
from mri2tau.templates import TEMPLATE_NAME, template_brain

log = get_logger("preprocess.harmonize")

METHODS = ("zscore", "minmax", "none")
FWHM_TO_SIGMA = 1.0 / (2.0 * np.sqrt(2.0 * np.log(2.0)))


def matching_kernel_fwhm_mm(target_fwhm_mm: float, scanner_fwhm_mm: float) -> float:
    """FWHM (mm) of the Gaussian that takes a scanner's PSF to ``target_fwhm_mm``: sqrt(t^2 - s^2)."""
    if scanner_fwhm_mm > target_fwhm_mm:
        raise ValueError(
            f"config key 'harmonization.resolution_matching.target_fwhm_mm': {target_fwhm_mm} mm is finer than a "
            f"scanner's {scanner_fwhm_mm} mm; smoothing cannot sharpen, set the target >= the largest scanner FWHM"
        )
    return float(np.sqrt(target_fwhm_mm**2 - scanner_fwhm_mm**2))


def smooth_fwhm(volume: np.ndarray, fwhm_mm: float, voxel_mm: float) -> np.ndarray:
    """Isotropic Gaussian smoothing of a template-grid volume (FWHM and voxel size in mm; 0 beyond the grid)."""
    data = np.nan_to_num(volume.astype(np.float32))
    if fwhm_mm <= 0:
        return data
    return ndimage.gaussian_filter(data, fwhm_mm * FWHM_TO_SIGMA / voxel_mm, mode="constant", cval=0.0)


@dataclass(frozen=True)
class ResolutionMatching:
    """Per-manufacturer smoothing of template-space SUVR to ``target_fwhm_mm`` (all FWHM in mm).

    ``reference``: the PET reference region (bool, template grid) whose mean (trimmed by
    ``trimmed_mean_percent`` per tail, as the ``suvr`` rule) is 1 again after smoothing.
    """

    target_fwhm_mm: float
    scanner_fwhm_mm: Mapping[str, float]
    voxel_mm: float
    reference: np.ndarray
    trimmed_mean_percent: float = 0.0

    def __post_init__(self) -> None:
        for fwhm in self.scanner_fwhm_mm.values():
            matching_kernel_fwhm_mm(self.target_fwhm_mm, fwhm)  # fails early on a target finer than a scanner

    def kernel_fwhm_mm(self, manufacturer: str) -> float | None:
        """Smoothing FWHM (mm) for a manufacturer; ``None`` when its scanner FWHM is not configured."""
        if manufacturer not in self.scanner_fwhm_mm:
            return None
        return matching_kernel_fwhm_mm(self.target_fwhm_mm, self.scanner_fwhm_mm[manufacturer])

    def apply(self, suvr: np.ndarray, kernel_fwhm_mm: float, *, subject: str, stage: str,
              suvr_path: str | Path) -> np.ndarray:
        """SUVR smoothed by ``kernel_fwhm_mm`` and renormalised to a reference mean of 1 (float32)."""
        smoothed = smooth_fwhm(suvr, kernel_fwhm_mm, self.voxel_mm)
        mean, _ = reference_mean(smoothed, self.reference, self.trimmed_mean_percent)
        if not mean > 0:
            raise PipelineInputError("reference region has no positive SUVR after resolution matching",
                                     subject=subject, stage=stage, path=suvr_path,
                                     fix="check the PET covers the cerebellum (rules suvr, pet_reference)")
        return (smoothed / mean).astype(np.float32)

    def describe(self) -> dict[str, Any]:
        """The settings and per-manufacturer kernels, for the params JSON."""
        return {"enabled": True, "target_fwhm_mm": self.target_fwhm_mm, "scanner_fwhm_mm": dict(self.scanner_fwhm_mm),
                "kernel_fwhm_mm": {m: self.kernel_fwhm_mm(m) for m in self.scanner_fwhm_mm},
                "reference_trimmed_mean_percent": self.trimmed_mean_percent}


def resolution_matching(
    settings: Mapping[str, Any] | None, voxel_mm: float, reference_mask: str | Path | None,
    trimmed_mean_percent: float = 0.0,
) -> ResolutionMatching | None:
    """From ``harmonization.resolution_matching`` (or a params JSON's record of it): ``None`` when off.

    ``reference_mask``: the ``pet_reference`` NIfTI (template grid); needed when matching is on.
    """
    if not settings or not settings.get("enabled", True):
        return None
    if reference_mask is None:
        raise ValueError("resolution matching needs the PET reference-region mask (rule pet_reference)")
    reference = np.asarray(nib.load(reference_mask).dataobj) > 0
    return ResolutionMatching(float(settings["target_fwhm_mm"]), dict(settings["scanner_fwhm_mm"]), voxel_mm,
                              reference, float(trimmed_mean_percent))


@dataclass
class BrainStats:
    """Running brain-voxel statistics of SUVR over several subjects."""

    n_subjects: int = 0
    n_voxels: int = 0
    total: float = 0.0
    total_sq: float = 0.0
    lows: list[float] = field(default_factory=list)
    highs: list[float] = field(default_factory=list)

    def add(self, values: np.ndarray, robust_percentile: float) -> None:
        """Add one subject's brain-voxel SUVR values."""
        v = values.astype(np.float64)
        self.n_subjects += 1
        self.n_voxels += v.size
        self.total += float(v.sum())
        self.total_sq += float(np.square(v).sum())
        lo, hi = np.percentile(v, [robust_percentile, 100.0 - robust_percentile])
        self.lows.append(float(lo))
        self.highs.append(float(hi))

    def summary(self) -> dict[str, float]:
        """mean, sd (voxels pooled), lo, hi (mean of per-subject percentiles), counts."""
        mean = self.total / self.n_voxels
        var = max(self.total_sq / self.n_voxels - mean**2, 0.0)
        return {"n_subjects": self.n_subjects, "n_voxels": self.n_voxels, "mean": mean, "sd": float(np.sqrt(var)),
                "lo": float(np.mean(self.lows)), "hi": float(np.mean(self.highs))}


def linear_map(method: str, stats: dict[str, float], pooled: dict[str, float]) -> tuple[float, float]:
    """(scale, offset) taking a manufacturer's distribution onto the pooled one."""
    if method == "zscore":
        scale = pooled["sd"] / stats["sd"]
        return scale, pooled["mean"] - scale * stats["mean"]
    if method == "minmax":
        scale = (pooled["hi"] - pooled["lo"]) / (stats["hi"] - stats["lo"])
        return scale, pooled["lo"] - scale * stats["lo"]
    if method == "none":
        return 1.0, 0.0
    raise ValueError(f"harmonization.method must be one of {METHODS}, got {method!r}")


def brain_values(data: np.ndarray, brain: np.ndarray, *, subject: str, stage: str, suvr_path: str | Path) -> np.ndarray:
    """Brain-voxel SUVR of one subject; fails on a grid mismatch or non-finite values."""
    if data.shape != brain.shape:
        raise PipelineInputError(
            f"SUVR grid {data.shape} differs from the template grid {brain.shape}",
            subject=subject, stage=stage, path=suvr_path, fix="rerun the PET stage at template.resolution_mm",
        )
    values = data[brain]
    n_bad = int(values.size - np.count_nonzero(np.isfinite(values)))
    if n_bad:
        raise PipelineInputError(f"SUVR has {n_bad} non-finite brain voxels", subject=subject, stage=stage,
                                 path=suvr_path, fix="rerun the suvr rule for this subject")
    return values


def matched_suvr(
    data: np.ndarray, manufacturer: str, matching: ResolutionMatching | None, *, subject: str, stage: str,
    suvr_path: str | Path, on_unknown: str = "error",
) -> np.ndarray:
    """SUVR at the matched resolution (unchanged when matching is off).

    A manufacturer without a configured scanner FWHM fails, or (``on_unknown: identity``) is
    left at its own resolution.
    """
    if matching is None:
        return data
    kernel = matching.kernel_fwhm_mm(manufacturer)
    if kernel is None:
        if on_unknown == "identity":
            log.warning("%s: no scanner FWHM for manufacturer %r; SUVR left at its own resolution", subject, manufacturer)
            return data
        raise PipelineInputError(
            f"manufacturer {manufacturer!r} has no scanner FWHM for resolution matching "
            f"(configured: {sorted(matching.scanner_fwhm_mm)})", subject=subject, stage=stage, path=suvr_path,
            fix=f"add harmonization.resolution_matching.scanner_fwhm_mm.{manufacturer} (mm)",
        )
    return matching.apply(data, kernel, subject=subject, stage=stage, suvr_path=suvr_path)


def fit_harmonization_params(
    training: Iterable[tuple[str, str, str | Path]],
    brain: np.ndarray,
    *,
    method: str = "zscore",
    robust_percentile: float = 1.0,
    matching: ResolutionMatching | None = None,
) -> dict:
    """Parameters from training subjects given as ``(subject id, manufacturer, SUVR path)``.

    With ``matching`` each SUVR is first brought to the matched resolution (:func:`matched_suvr`).
    """
    per_vendor: dict[str, BrainStats] = {}
    pooled = BrainStats()
    subjects = []
    for subject, manufacturer, path in training:
        data = np.asarray(nib.load(path).dataobj, dtype=np.float32)
        brain_values(data, brain, subject=subject, stage="harmonize_fit", suvr_path=path)
        data = matched_suvr(data, manufacturer, matching, subject=subject, stage="harmonize_fit", suvr_path=path)
        values = data[brain]
        per_vendor.setdefault(manufacturer, BrainStats()).add(values, robust_percentile)
        pooled.add(values, robust_percentile)
        subjects.append(subject)
    if not subjects:
        raise PipelineInputError("no training subject to fit the standardization on", stage="harmonize_fit",
                                 fix="check results/splits.tsv (split.test_fraction < 1)")
    pooled_summary = pooled.summary()
    manufacturers = {}
    for name, stats in sorted(per_vendor.items()):
        summary = stats.summary()
        scale, offset = linear_map(method, summary, pooled_summary)
        manufacturers[name] = {**summary, "scale": scale, "offset": offset}
        log.info("%s: %d training subjects, brain SUVR mean %.4f sd %.4f -> scale %.4f offset %.4f",
                 name, summary["n_subjects"], summary["mean"], summary["sd"], scale, offset)
    return {"method": method, "robust_percentile": robust_percentile, "region": "template brain mask",
            "resolution_matching": matching.describe() if matching else None,
            "training_subjects": subjects, "pooled": pooled_summary, "manufacturers": manufacturers}


def training_rows(splits: str | Path) -> pd.DataFrame:
    """Training rows of ``splits.tsv`` (sub, ses, manufacturer, ...)."""
    table = pd.read_csv(splits, sep="\t", dtype=str, keep_default_na=False)
    return table[table["split"] == "train"]


def fit_harmonization(
    splits: str | Path,
    suvr_pattern: str,
    out: str | Path,
    *,
    method: str = "zscore",
    resolution_mm: float,
    robust_percentile: float = 1.0,
    template_mask: str | None = None,
    resolution_matching_settings: Mapping[str, Any] | None = None,
    reference_mask: str | Path | None = None,
    trimmed_mean_percent: float = 0.0,
) -> dict:
    """Rule ``harmonize_fit``: fit on the training rows of ``splits`` and write the params JSON.

    ``suvr_pattern``: the SUVR path with ``{sub}``/``{ses}`` fields (SUVR_TEMPLATE).
    ``resolution_matching_settings``: ``harmonization.resolution_matching`` (``enabled``,
    ``target_fwhm_mm``, ``scanner_fwhm_mm``); ``reference_mask`` (PET_REFERENCE_MASK) and
    ``trimmed_mean_percent`` (``pet.trimmed_mean_percent``) renormalise the smoothed SUVR.
    The settings are recorded in the JSON, so applying needs only the JSON and the mask.
    """
    brain = template_brain(resolution_mm, template_mask)
    matching = resolution_matching(resolution_matching_settings, resolution_mm, reference_mask, trimmed_mean_percent)
    rows = training_rows(splits)
    training = [(f"sub-{r.sub}_ses-{r.ses}", r.manufacturer, suvr_pattern.format(sub=r.sub, ses=r.ses))
                for r in rows.itertuples()]
    params = fit_harmonization_params(training, brain, method=method, robust_percentile=robust_percentile,
                                      matching=matching)
    params["resolution_mm"] = resolution_mm
    write_json_atomic(out, params)
    return params


def subject_map(params: dict, manufacturer: str, *, subject: str, on_unknown: str = "error") -> tuple[float, float]:
    """(scale, offset) for a manufacturer; unknown ones fail or map to identity (``on_unknown``)."""
    known = params["manufacturers"]
    if manufacturer in known:
        return known[manufacturer]["scale"], known[manufacturer]["offset"]
    if on_unknown == "identity" or params["method"] == "none":
        log.warning("%s: manufacturer %r has no training subjects; SUVR left unchanged", subject, manufacturer)
        return 1.0, 0.0
    raise PipelineInputError(
        f"manufacturer {manufacturer!r} has no training subject (fitted: {sorted(known)})",
        subject=subject, stage="harmonize_apply",
        fix="put subjects of that manufacturer into training, or set harmonization.on_unknown_manufacturer: identity",
    )


def apply_map(suvr: np.ndarray, brain: np.ndarray, scale: float, offset: float) -> np.ndarray:
    """``scale * SUVR + offset`` inside ``brain``; unchanged outside (float32)."""
    out = suvr.astype(np.float32, copy=True)
    out[brain] = scale * out[brain] + offset
    return out


def harmonize_subject(
    suvr: str | Path,
    params_json: str | Path,
    splits: str | Path,
    out: str | Path,
    *,
    sub: str,
    ses: str,
    resolution_mm: float,
    on_unknown: str = "error",
    template_mask: str | None = None,
    reference_mask: str | Path | None = None,
    sidecar_out: str | Path | None = None,
) -> tuple[float, float]:
    """Rule ``harmonize_apply``: write the standardized SUVR of one session; return (scale, offset).

    Resolution matching, when the params JSON records it, runs first (``reference_mask``:
    PET_REFERENCE_MASK); then the linear map inside the brain. ``sidecar_out``: its BIDS sidecar.
    """
    params = json.loads(Path(params_json).read_text())
    table = pd.read_csv(splits, sep="\t", dtype=str, keep_default_na=False)
    row = table[(table["sub"] == sub) & (table["ses"] == ses)]
    if row.empty:
        raise PipelineInputError(f"sub-{sub} ses-{ses} is not in the splits table", subject=sub,
                                 stage="harmonize_apply", path=splits, fix="rerun the split rule")
    manufacturer = row["manufacturer"].iloc[0]
    scale, offset = subject_map(params, manufacturer, subject=sub, on_unknown=on_unknown)
    record = params.get("resolution_matching")
    matching = resolution_matching(record, resolution_mm, reference_mask,
                                   record["reference_trimmed_mean_percent"] if record else 0.0)
    img = nib.load(suvr)
    brain = template_brain(resolution_mm, template_mask)
    data = np.asarray(img.dataobj, dtype=np.float32)
    brain_values(data, brain, subject=sub, stage="harmonize_apply", suvr_path=suvr)
    data = matched_suvr(data, manufacturer, matching, subject=sub, stage="harmonize_apply", suvr_path=suvr,
                        on_unknown=on_unknown)
    write_nifti(out, apply_map(data, brain, scale, offset), img.affine, space_unit=None)
    if sidecar_out is not None:
        kernel = matching.kernel_fwhm_mm(manufacturer) if matching else None
        write_sidecar(out, pet_sidecar_meta(
            "suvrstd", sources=[bids_uri(suvr, ""), bids_uri(params_json, "")], template=TEMPLATE_NAME,
            resolution_mm=resolution_mm, Manufacturer=manufacturer, Scale=scale, Offset=offset,
            ResolutionMatchingKernelFwhmMm=kernel), sidecar_out)
    return scale, offset
