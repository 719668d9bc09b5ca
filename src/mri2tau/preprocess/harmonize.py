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
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd

from mri2tau.errors import PipelineInputError
from mri2tau.io.atomic import atomic_path, write_json_atomic
from mri2tau.log import get_logger
from mri2tau.templates import load_template_mask

log = get_logger("preprocess.harmonize")

METHODS = ("zscore", "minmax", "none")


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


def fit_harmonization_params(
    training: Iterable[tuple[str, str, str | Path]],
    brain: np.ndarray,
    *,
    method: str = "zscore",
    robust_percentile: float = 1.0,
) -> dict:
    """Parameters from training subjects given as ``(subject id, manufacturer, SUVR path)``."""
    per_vendor: dict[str, BrainStats] = {}
    pooled = BrainStats()
    subjects = []
    for subject, manufacturer, path in training:
        data = np.asarray(nib.load(path).dataobj, dtype=np.float32)
        values = brain_values(data, brain, subject=subject, stage="harmonize_fit", suvr_path=path)
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
) -> dict:
    """Rule ``harmonize_fit``: fit on the training rows of ``splits`` and write the params JSON.

    ``suvr_pattern``: the SUVR path with ``{sub}``/``{ses}`` fields (SUVR_TEMPLATE).
    """
    brain = np.asarray(load_template_mask(resolution_mm, template_mask).dataobj) > 0
    rows = training_rows(splits)
    training = [(f"sub-{r.sub}_ses-{r.ses}", r.manufacturer, suvr_pattern.format(sub=r.sub, ses=r.ses))
                for r in rows.itertuples()]
    params = fit_harmonization_params(training, brain, method=method, robust_percentile=robust_percentile)
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
) -> tuple[float, float]:
    """Rule ``harmonize_apply``: write the standardized SUVR of one session; return (scale, offset)."""
    params = json.loads(Path(params_json).read_text())
    table = pd.read_csv(splits, sep="\t", dtype=str, keep_default_na=False)
    row = table[(table["sub"] == sub) & (table["ses"] == ses)]
    if row.empty:
        raise PipelineInputError(f"sub-{sub} ses-{ses} is not in the splits table", subject=sub,
                                 stage="harmonize_apply", path=splits, fix="rerun the split rule")
    scale, offset = subject_map(params, row["manufacturer"].iloc[0], subject=sub, on_unknown=on_unknown)
    img = nib.load(suvr)
    brain = np.asarray(load_template_mask(resolution_mm, template_mask).dataobj) > 0
    data = np.asarray(img.dataobj, dtype=np.float32)
    brain_values(data, brain, subject=sub, stage="harmonize_apply", suvr_path=suvr)
    with atomic_path(out) as tmp:
        nib.save(nib.Nifti1Image(apply_map(data, brain, scale, offset), img.affine), tmp)
    return scale, offset
