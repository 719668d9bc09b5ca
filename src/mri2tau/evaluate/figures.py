"""Evaluation figures (matplotlib Agg, PNG): what the tables summarise, as pictures.

* :func:`comparison_grid` per model: for a few test subjects one axial slice (template space,
  world height ``z_mm``) of real SUVR | synthetic SUVR | |difference|, plus a zoomed patch of
  real and synthetic (the box drawn on the real image). Neurological convention: subject's
  left on the picture's left, anterior at the top.
* :func:`metrics_by_diagnosis`: per-slice MSE / PSNR / SSIM per model, one box per diagnosis
  group (CN / MCI / AD).
* :func:`loss_curves`: per model the per-epoch losses of ``results/models/<model>/metrics.csv``.
* :func:`roi_scatter`: per ROI, real vs synthetic mean SUVR per test subject, one colour per
  model, with the identity line.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402

from mri2tau.data.slices import SliceConfig, axial_to_display  # noqa: E402
from mri2tau.evaluate.run import GROUPS, read_session, read_synthetic, test_sessions  # noqa: E402
from mri2tau.io.atomic import atomic_path  # noqa: E402
from mri2tau.log import get_logger  # noqa: E402
from mri2tau.paths import FIGURE_NAMES, comparison_name  # noqa: E402
from mri2tau.templates import template_grid  # noqa: E402

log = get_logger("evaluate.figures")

METRIC_LABELS = {"mse": "MSE", "psnr": "PSNR (dB)", "ssim": "SSIM"}
# metrics.csv bookkeeping columns that are not losses
NOT_LOSSES = {"epoch", "step", "lr", "seconds", "best_l1"}


@dataclass(frozen=True)
class FigureSettings:
    """Figure keys of config section ``evaluate``.

    figure_subjects: test subjects per comparison grid (spread over diagnosis groups).
    figure_z_mm: world height (mm, template space) of the axial slice shown.
    zoom_fraction: side of the zoomed patch as a fraction of the slice, centred on the brain.
    """

    figure_subjects: int = 3
    figure_z_mm: float = -16.0
    zoom_fraction: float = 0.35

    @classmethod
    def from_config(cls, section: Mapping[str, Any] | None) -> FigureSettings:
        """Pick this dataclass's keys out of the section."""
        return cls(**{k: v for k, v in (section or {}).items() if k in cls.__dataclass_fields__})


def save_figure(fig: plt.Figure, path: str | Path) -> None:
    """Save ``fig`` as PNG atomically and close it."""
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=110, bbox_inches="tight")
    plt.close(fig)


# ---------------------------------------------------------------- comparison grid
def pick_subjects(test: pd.DataFrame, n: int) -> pd.DataFrame:
    """Up to ``n`` test rows taking diagnosis groups in turn (AD, MCI, CN, AD, ...)."""
    pools = {g: list(test[test["dx_group"] == g].itertuples(index=False)) for g in reversed(GROUPS)}
    picked = []
    while len(picked) < n and any(pools.values()):
        for group in pools:
            if pools[group] and len(picked) < n:
                picked.append(pools[group].pop(0))
    return pd.DataFrame(picked, columns=test.columns)


def axial_index(z_mm: float, affine: np.ndarray, n_slices: int) -> int:
    """Axial voxel index (RAS grid) nearest to world height ``z_mm``, clipped to the grid."""
    return int(np.clip(round((z_mm - affine[2, 3]) / affine[2, 2]), 0, n_slices - 1))


def zoom_box(brain_2d: np.ndarray, fraction: float) -> tuple[int, int, int]:
    """(row, col, side) of a square patch centred on the brain's centroid in a display slice."""
    side = max(int(round(fraction * min(brain_2d.shape))), 4)
    centre = np.argwhere(brain_2d).mean(axis=0) if brain_2d.any() else np.array(brain_2d.shape) / 2
    row, col = (int(np.clip(round(c - side / 2), 0, n - side)) for c, n in zip(centre, brain_2d.shape))
    return row, col, side


def comparison_grid(
    model: str,
    panels: Sequence[tuple[str, np.ndarray, np.ndarray, np.ndarray]],
    window: tuple[float, float],
    out_png: str | Path,
    zoom_fraction: float = 0.35,
) -> None:
    """Rows of (label, real, synthetic, brain) display slices (SUVR) -> real | synthetic |
    |difference| | zoomed real | zoomed synthetic."""
    columns = ("real", "synthetic", "|difference|", "real (zoom)", "synthetic (zoom)")
    fig, axes = plt.subplots(len(panels), 5, figsize=(14, 2.8 * len(panels)), squeeze=False,
                             layout="constrained")
    diff_max = (window[1] - window[0]) / 2
    for r, (label, real, synth, brain) in enumerate(panels):
        row, col, side = zoom_box(brain, zoom_fraction)
        crop = (slice(row, row + side), slice(col, col + side))
        images = (real, synth, np.abs(real - synth), real[crop], synth[crop])
        for c, image in enumerate(images):
            ax = axes[r, c]
            shown = ax.imshow(image, cmap="magma" if c == 2 else "inferno", interpolation="nearest",
                              vmin=0 if c == 2 else window[0], vmax=diff_max if c == 2 else window[1])
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(columns[c])
            if c in (1, 2):
                fig.colorbar(shown, ax=ax, fraction=0.046, pad=0.02, label="SUVR")
        axes[r, 0].add_patch(Rectangle((col - 0.5, row - 0.5), side, side, fill=False, edgecolor="cyan", lw=1.2))
        axes[r, 0].set_ylabel(label)
    fig.suptitle(f"{model}: real vs synthetic tau SUVR (axial, template space)")
    save_figure(fig, out_png)


# ---------------------------------------------------------------- metric and loss plots
def metrics_by_diagnosis(slice_metrics: pd.DataFrame, out_png: str | Path) -> None:
    """Per-slice whole-image MSE / PSNR / SSIM per model, one box per diagnosis group."""
    models = list(dict.fromkeys(slice_metrics["model"]))
    colors = dict(zip(GROUPS, ("tab:green", "tab:orange", "tab:red")))
    fig, axes = plt.subplots(1, 3, figsize=(max(9, 4.8 * len(models)), 4), squeeze=False, layout="constrained")
    width = 0.8 / len(GROUPS)
    for ax, (metric, label) in zip(axes[0], METRIC_LABELS.items()):
        data = slice_metrics.replace([np.inf, -np.inf], np.nan)
        for g, group in enumerate(GROUPS):
            values = [data[(data["model"] == m) & (data["dx_group"] == group)][metric].dropna().to_numpy()
                      for m in models]
            positions = np.arange(len(models)) + (g - 1) * width
            keep = [i for i, v in enumerate(values) if len(v)]
            if keep:
                boxes = ax.boxplot([values[i] for i in keep], positions=positions[keep], widths=width * 0.9,
                                   patch_artist=True, showfliers=False)
                for box in boxes["boxes"]:
                    box.set_facecolor(colors[group])
            ax.plot([], [], "s", color=colors[group], label=group)
        ax.set_xticks(np.arange(len(models)), models, rotation=30, ha="right")
        ax.set_ylabel(label)
    axes[0, 0].legend(title="diagnosis")
    fig.suptitle("Image metrics per test slice by diagnosis group ([0, 1]-scaled SUVR, whole image)")
    save_figure(fig, out_png)


def loss_curves(metrics_csvs: Mapping[str, str | Path], out_png: str | Path) -> None:
    """One panel per model: every per-epoch loss column of its ``metrics.csv`` against epoch."""
    models = list(metrics_csvs)
    n = max(len(models), 1)
    fig, axes = plt.subplots(1, n, figsize=(4.2 * n, 3.6), squeeze=False, layout="constrained")
    for ax, model in zip(axes[0], models):
        table = pd.read_csv(metrics_csvs[model])
        for column in table.columns:
            values = pd.to_numeric(table[column], errors="coerce")
            if column not in NOT_LOSSES and values.notna().any():
                ax.plot(table["epoch"], values, marker="." if len(table) < 30 else None, label=column)
        ax.set_title(model)
        ax.set_xlabel("epoch")
        ax.legend(fontsize=7)
    axes[0, 0].set_ylabel("loss (epoch mean)")
    fig.suptitle("Training losses per epoch")
    save_figure(fig, out_png)


def roi_scatter(roi_rows: pd.DataFrame, out_png: str | Path) -> None:
    """Per ROI: real (x) vs synthetic (y) mean SUVR per test session, one colour per model."""
    wide = roi_rows.pivot_table(index=["sub", "ses", "roi"], columns="source", values="suvr").reset_index()
    rois = list(dict.fromkeys(roi_rows["roi"]))
    models = [m for m in dict.fromkeys(roi_rows["source"]) if m != "real"]
    n_cols = min(len(rois), 4)
    n_rows = -(-len(rois) // n_cols)
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(3.4 * n_cols, 3.3 * n_rows), squeeze=False, layout="constrained")
    for ax, roi in zip(axes.ravel(), rois):
        part = wide[wide["roi"] == roi]
        for model in models:
            ax.scatter(part["real"], part[model], s=14, alpha=0.8, label=model)
        lims = [np.nanmin(part[["real", *models]].to_numpy()), np.nanmax(part[["real", *models]].to_numpy())]
        ax.plot(lims, lims, "k--", lw=0.8)
        ax.set_title(roi)
        ax.set_xlabel("real SUVR")
        ax.set_ylabel("synthetic SUVR")
    for ax in axes.ravel()[len(rois):]:
        ax.axis("off")
    axes[0, 0].legend(fontsize=7)
    fig.suptitle("Regional mean SUVR: real vs synthetic (test subjects)")
    save_figure(fig, out_png)


# ---------------------------------------------------------------- the rule
def make_figures(
    *,
    splits: str | Path,
    real_pattern: str,
    mask_pattern: str,
    synth_dirs: Mapping[str, str | Path],
    metrics_csvs: Mapping[str, str | Path],
    slice_metrics: str | Path,
    roi_suvr: str | Path,
    out_dir: str | Path,
    resolution_mm: float,
    slices_config: Mapping[str, Any],
    settings: Mapping[str, Any] | None = None,
) -> list[Path]:
    """Rule ``figures``: ``comparison_<model>.png`` per model, ``metrics_by_diagnosis.png``,
    ``loss_curves.png`` and ``roi_scatter.png`` in ``out_dir``; returns the paths written."""
    cfg = FigureSettings.from_config(settings)
    slice_cfg = SliceConfig.from_config(dict(slices_config))
    window = tuple((settings or {}).get("pet_window") or slice_cfg.pet_window)
    shape, affine = template_grid(resolution_mm)
    z = axial_index(cfg.figure_z_mm, affine, shape[2])
    out = Path(out_dir)
    chosen = pick_subjects(test_sessions(splits), cfg.figure_subjects)
    sessions = [read_session(row, real_pattern, mask_pattern, resolution_mm, slice_cfg.mask_brain)
                for row in chosen.itertuples()]
    written = []
    for model, synth_dir in synth_dirs.items():
        panels = []
        for s in sessions:
            synth = read_synthetic(synth_dir, s.sub, s.ses, resolution_mm, model)
            panels.append((f"sub-{s.sub} ({s.dx_group})", axial_to_display(s.real[:, :, z]),
                           axial_to_display(synth[:, :, z]), axial_to_display(s.brain[:, :, z])))
        comparison_grid(model, panels, window, out / comparison_name(model), cfg.zoom_fraction)
        written.append(out / comparison_name(model))
    figure = {key: out / name for key, name in FIGURE_NAMES.items()}
    metrics_by_diagnosis(pd.read_csv(slice_metrics, sep="\t", dtype={"sub": str, "ses": str}),
                         figure["by_diagnosis"])
    loss_curves(metrics_csvs, figure["losses"])
    roi_scatter(pd.read_csv(roi_suvr, sep="\t", dtype={"sub": str, "ses": str}), figure["roi_scatter"])
    written += list(figure.values())
    log.info("wrote %d figures to %s", len(written), out)
    return written
