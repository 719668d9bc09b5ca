"""Rule ``evaluate``: real vs synthetic test PET for every model -> metric rows, paper tables,
ROI SUVR agreement and the inference table.

Inputs are template-space SUVR volumes (real: ``SUVR_TEMPLATE``, not standardized; synthetic:
``results/synth/<model>/..._space-<TPL>_desc-synth_pet.nii.gz``, already back in SUVR units).
When the slice stage masks the brain (``slices.mask_brain``, as the paper) the real PET is
multiplied by the template brain mask too, so both images show the same field.

Image metrics (:mod:`mri2tau.evaluate.metrics`) on intensities mapped to [0, 1] by one fixed
SUVR window (``evaluate.pet_window``, default the slice stage's ``slices.pet_window``):

* per slice, every model: the volume is padded to the slice stage's ``grid`` cube (as the
  models see it; zeros outside) and each evaluated axial slice (``evaluate.slices``: the
  paper's 14 positions, the central 100 or every slice covering the template) is scored whole
  and brain-masked -> ``slice_metrics.tsv`` and Tables I / III / IV;
* per volume (``evaluate.volume_metrics``: 3D models by default): 3D MSE/PSNR/SSIM on the
  template grid -> ``volume_metrics.tsv`` and ``table_volumes.{tsv,md}``.

Diagnosis groups (Table IV) come from the split's diagnoses: CN; SMC, EMCI, LMCI -> MCI; AD
(:data:`mri2tau.io.adni.DX_GROUPS`). ROI agreement: mean SUVR in Braak I-VI and the
meta-temporal ROI (each restricted to the template brain mask), real vs synthetic per model.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mri2tau.data.slices import SliceConfig, central_positions, read_splits, slice_positions, to_grid
from mri2tau.errors import PipelineInputError
from mri2tau.evaluate.metrics import image_metrics, slice_metrics, to_unit_range
from mri2tau.evaluate.roi import agreement_table, roi_means
from mri2tau.evaluate.tables import metric_table, paper_tables, write_formatted, write_table
from mri2tau.io.adni import DX_GROUPS
from mri2tau.io.atomic import write_tsv_atomic
from mri2tau.io.nifti import load_grid_image
from mri2tau.log import get_logger
from mri2tau.models.defaults import baselines_first
from mri2tau.paths import EVAL_METRICS_NAMES, TIMING_NAME, synth_name
from mri2tau.synthesize import axial_indices
from mri2tau.templates import TEMPLATE_NAME, roi_masks, template_grid

log = get_logger("evaluate")

STAGE = "evaluate"
GROUPS = ("CN", "MCI", "AD")
SLICE_SETS = ("paper", "central", "all")


@dataclass(frozen=True)
class EvalSettings:
    """Config section ``evaluate`` (figure keys are read by :mod:`mri2tau.evaluate.figures`).

    slices: which axial positions get per-slice metrics (``paper``: the slice stage's 14
    positions; ``central``: its central 100; ``all``: every slice covering the template).
    pet_window: SUVR window mapped to [0, 1] (None: ``slices.pet_window``).
    volume_metrics: ``3d`` (3D models), ``all`` or ``none``.
    """

    slices: str = "paper"
    pet_window: tuple[float, float] | None = None
    volume_metrics: str = "3d"

    @classmethod
    def from_config(cls, section: Mapping[str, Any] | None) -> EvalSettings:
        """Pick this dataclass's keys out of the section (lists become tuples)."""
        known = {k: tuple(v) if isinstance(v, list) else v
                 for k, v in (section or {}).items() if k in cls.__dataclass_fields__}
        out = cls(**known)
        if out.slices not in SLICE_SETS:
            raise ValueError(f"config key 'evaluate.slices': {out.slices!r} is not one of {SLICE_SETS}")
        return out


# ---------------------------------------------------------------- subjects and groups
def diagnosis_group(dx: str, dx_group: str = "", subject: str = "") -> str:
    """CN / MCI / AD for a split row: ``dx`` through the papers' grouping (SMC/EMCI/LMCI -> MCI),
    else an already grouped ``dx_group``."""
    group = DX_GROUPS.get(dx) or DX_GROUPS.get(dx_group)
    if group not in GROUPS:
        raise PipelineInputError(
            f"diagnosis {dx!r} (group {dx_group!r}) maps to none of {GROUPS}", subject=subject, stage=STAGE,
            fix="fix the baseline diagnosis (DX_bl: CN, SMC, EMCI, LMCI, AD) in the clinical CSV and rerun the split",
        )
    return group


def test_sessions(splits: str | Path) -> pd.DataFrame:
    """Test rows of ``splits.tsv`` (sub, ses, dx, manufacturer, ...) with ``dx_group`` = CN/MCI/AD."""
    table = read_splits(splits)
    test = table[table["split"] == "test"].sort_values(["sub", "ses"]).reset_index(drop=True)
    if test.empty:
        raise PipelineInputError("no test session in the split table", stage=STAGE, path=splits,
                                 fix="set split.test_fraction > 0 and rerun the split rule")
    test["dx_group"] = [diagnosis_group(r.dx, r.dx_group, f"sub-{r.sub}") for r in test.itertuples()]
    return test


def eval_positions(which: str, cfg: SliceConfig, template_shape: Sequence[int]) -> list[int]:
    """Axial indices on the ``cfg.grid`` cube to score (see :class:`EvalSettings`)."""
    if which == "paper":
        return slice_positions(cfg.grid, cfg.positions)
    if which == "central":
        return central_positions(cfg.grid, cfg.central)
    return axial_indices(template_shape, cfg.grid, None)


# ---------------------------------------------------------------- per session
@dataclass
class SessionImages:
    """One test session on the template grid: real SUVR, brain mask (bool) and its labels."""

    sub: str
    ses: str
    dx_group: str
    real: np.ndarray
    brain: np.ndarray


def read_session(row: Any, real_pattern: str, mask_pattern: str, resolution_mm: float,
                 mask_brain: bool) -> SessionImages:
    """Real SUVR (brain-masked when ``mask_brain``) and brain mask of one split row."""
    shape, affine = template_grid(resolution_mm)
    label = f"sub-{row.sub}_ses-{row.ses}"
    fmt = {"sub": row.sub, "ses": row.ses}
    real = np.nan_to_num(np.asarray(load_grid_image(real_pattern.format(**fmt), "real SUVR", label, shape, affine,
                                                    stage=STAGE).dataobj, np.float32))
    brain = np.asarray(load_grid_image(mask_pattern.format(**fmt), "brain mask", label, shape, affine,
                                       stage=STAGE).dataobj) > 0
    if mask_brain:
        real = np.where(brain, real, 0.0).astype(np.float32)
    return SessionImages(row.sub, row.ses, row.dx_group, real, brain)


def read_synthetic(synth_dir: str | Path, sub: str, ses: str, resolution_mm: float, model: str) -> np.ndarray:
    """A model's synthetic template-space SUVR for session ``sub``/``ses``."""
    shape, affine = template_grid(resolution_mm)
    path = Path(synth_dir) / synth_name(sub, ses, TEMPLATE_NAME)
    img = load_grid_image(path, f"synthetic PET of {model}", f"sub-{sub}_ses-{ses}", shape, affine,
                          stage=STAGE, fix=f"rerun the synthesize rule for {model}")
    return np.nan_to_num(np.asarray(img.dataobj, np.float32))


def session_slice_rows(
    session: SessionImages, synth: np.ndarray, window: tuple[float, float], grid: int, positions: Sequence[int],
) -> pd.DataFrame:
    """Per-slice metrics (whole + brain) of one session on the padded ``grid`` cube."""
    real_cube = to_grid(to_unit_range(session.real, window), grid)
    synth_cube = to_grid(to_unit_range(synth, window), grid)
    mask_cube = to_grid(session.brain, grid)
    return slice_metrics(real_cube, synth_cube, positions, mask_cube, axis=2)


def session_volume_row(session: SessionImages, synth: np.ndarray, window: tuple[float, float]) -> dict[str, float]:
    """3D metrics (whole + brain) of one session on the template grid."""
    return image_metrics(to_unit_range(session.real, window), to_unit_range(synth, window), session.brain)


# ---------------------------------------------------------------- outputs
def inference_table(timing_tsvs: Mapping[str, str | Path]) -> pd.DataFrame:
    """Per model: parameters, device, inference seconds per session (mean, sd), peak memory."""
    rows = []
    for model, path in timing_tsvs.items():
        t = pd.read_csv(path, sep="\t")
        rows.append({
            "model": model, "dims": int(t["dims"].iloc[0]) if "dims" in t else None,
            "n_parameters": int(t["n_parameters"].iloc[0]), "device": t["device"].iloc[0], "n": len(t),
            "inference_s_mean": float(t["inference_s"].mean()), "inference_s_std": float(t["inference_s"].std()),
            "total_s_mean": float(t["total_s"].mean()), "peak_rss_mb": float(t["peak_rss_mb"].max()),
            "peak_gpu_mb": float(t["peak_gpu_mb"].max()),
        })
    return pd.DataFrame(rows)


def inference_formatted(table: pd.DataFrame) -> pd.DataFrame:
    """Shown cells: parameters (M), inference seconds per session (mean ± sd), peak memory (MB)."""
    return pd.DataFrame({
        "model": table["model"],
        "parameters (M)": [f"{n / 1e6:.2f}" for n in table["n_parameters"]],
        "device": table["device"],
        "inference s / session": [f"{m:.3f} ± {s:.3f}" if s == s else f"{m:.3f}"
                                  for m, s in zip(table["inference_s_mean"], table["inference_s_std"])],
        "peak RSS (MB)": [f"{v:.0f}" for v in table["peak_rss_mb"]],
        "peak GPU (MB)": ["n/a" if v != v else f"{v:.0f}" for v in table["peak_gpu_mb"]],
    })


def roi_agreement(roi_rows: pd.DataFrame) -> pd.DataFrame:
    """Per model and ROI: agreement of real vs synthetic mean SUVR (from the long ROI table)."""
    wide = roi_rows.pivot_table(index=["source", "sub", "ses"], columns="roi", values="suvr").sort_index()
    real = wide.loc["real"]
    out = []
    for model in [m for m in roi_rows["source"].unique() if m != "real"]:
        table = agreement_table(real, wide.loc[model])
        out.append(table.assign(model=model))
    columns = ["model", "roi", "n", "real_mean", "synth_mean", "pearson_r", "pearson_p", "icc", "mae"]
    return pd.concat(out, ignore_index=True)[columns] if out else pd.DataFrame(columns=columns)


def evaluate_models(
    *,
    splits: str | Path,
    real_pattern: str,
    mask_pattern: str,
    synth_dirs: Mapping[str, str | Path],
    out_dir: str | Path,
    resolution_mm: float,
    slices_config: Mapping[str, Any],
    settings: Mapping[str, Any] | None = None,
) -> dict[str, pd.DataFrame]:
    """Rule ``evaluate``: write into ``out_dir`` ``slice_metrics.tsv``, ``volume_metrics.tsv``,
    ``table1_ablation``, ``table3_models``, ``table4_diagnosis``, ``table_volumes``,
    ``roi_agreement``, ``inference`` (each ``.tsv`` + ``.md``) and ``roi_suvr.tsv``.

    ``synth_dirs``: model -> its synthesis folder (synthetic NIfTIs + ``timing.tsv``).
    ``real_pattern`` / ``mask_pattern``: SUVR_TEMPLATE / BRAIN_MASK_TEMPLATE with ``{sub}``/``{ses}``.
    """
    cfg = EvalSettings.from_config(settings)
    slice_cfg = SliceConfig.from_config(dict(slices_config))
    window = tuple(cfg.pet_window or slice_cfg.pet_window)
    shape, _ = template_grid(resolution_mm)
    synth_dirs = {m: synth_dirs[m] for m in baselines_first(list(synth_dirs))}  # floor rows first
    positions = eval_positions(cfg.slices, slice_cfg, shape)
    timings = {m: Path(d) / TIMING_NAME for m, d in synth_dirs.items()}
    dims = {m: int(pd.read_csv(p, sep="\t")["dims"].iloc[0]) for m, p in timings.items()}
    masks = roi_masks(resolution_mm)
    test = test_sessions(splits)
    log.info("%d test sessions, %d models, %d slices each, SUVR window %s", len(test), len(synth_dirs),
             len(positions), window)
    slice_rows, volume_rows, roi_rows = [], [], []
    for row in test.itertuples():
        session = read_session(row, real_pattern, mask_pattern, resolution_mm, slice_cfg.mask_brain)
        keys = {"sub": session.sub, "ses": session.ses, "dx_group": session.dx_group}
        rois = {name: mask & session.brain for name, mask in masks.items()}
        roi_rows += [{"source": "real", **keys, "roi": k, "suvr": v} for k, v in roi_means(session.real, rois).items()]
        for model, synth_dir in synth_dirs.items():
            synth = read_synthetic(synth_dir, session.sub, session.ses, resolution_mm, model)
            rows = session_slice_rows(session, synth, window, slice_cfg.grid, positions)
            slice_rows.append(rows.assign(model=model, dims=dims[model], **keys))
            if cfg.volume_metrics == "all" or (cfg.volume_metrics == "3d" and dims[model] == 3):
                volume_rows.append({"model": model, **keys, **session_volume_row(session, synth, window)})
            roi_rows += [{"source": model, **keys, "roi": k, "suvr": v} for k, v in roi_means(synth, rois).items()]
    out = Path(out_dir)
    front = ["model", "dims", "sub", "ses", "dx_group"]
    slices = pd.concat(slice_rows, ignore_index=True)
    slices = slices[front + [c for c in slices.columns if c not in front]]
    volumes = pd.DataFrame(volume_rows, columns=["model", "sub", "ses", "dx_group", "mse", "psnr", "ssim",
                                                 "mse_brain", "psnr_brain", "ssim_brain"])
    roi_table = pd.DataFrame(roi_rows)
    for name, table in (("slice_metrics", slices), ("volume_metrics", volumes), ("roi_suvr", roi_table)):
        write_tsv_atomic(out / EVAL_METRICS_NAMES[name], table)
    tables = paper_tables(slices, out)
    tables["table_volumes"] = metric_table(volumes, ["model"]) if len(volumes) else pd.DataFrame(columns=["model", "n"])
    write_table(tables["table_volumes"], ["model"], out / "table_volumes",
                "Per-volume 3D metrics (mean ± sd over test volumes)")
    tables["roi_agreement"] = roi_agreement(roi_table)
    write_tsv_atomic(out / "roi_agreement.tsv", tables["roi_agreement"])
    write_formatted(tables["roi_agreement"].round(3), out / "roi_agreement",
                    "Regional SUVR agreement, real vs synthetic (Braak I-VI, meta-temporal)")
    tables["inference"] = inference_table(timings)
    write_tsv_atomic(out / "inference.tsv", tables["inference"])
    write_formatted(inference_formatted(tables["inference"]), out / "inference",
                    "Parameters and inference time per model")
    return {"slice_metrics": slices, "volume_metrics": volumes, "roi_suvr": roi_table, **tables}
