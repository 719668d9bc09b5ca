"""The papers' tables from per-slice (or per-volume) metric rows.

Input rows: one per (model, subject, slice) with columns ``model, sub, dx_group, mse, psnr,
ssim`` and optionally ``mse_brain, psnr_brain, ssim_brain``. Cells are "mean ± sd" over rows
(as the MCR-VQGAN paper reports per test slice). With a ``mean`` baseline row, each table also
has ``<mse>_vs_mean``: a model's mean (brain) MSE over the floor's in the same group (< 1: the
model learned something from the MRI). Every table is written as TSV (numbers) and
Markdown and HTML (formatted cells; the HTML is what the Snakemake report shows).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from mri2tau.evaluate.html import write_html_table
from mri2tau.io.atomic import write_text_atomic, write_tsv_atomic
from mri2tau.models.defaults import baselines_first

METRICS = ("mse", "psnr", "ssim")
BRAIN_METRICS = ("mse_brain", "psnr_brain", "ssim_brain")
# Table I rows: the mean-image floor, the VQGAN baseline and the three MCR-VQGAN ablation steps.
ABLATION_ORDER = ("mean", "vqgan", "mcr_vqgan_ms", "mcr_vqgan_ms_res", "mcr_vqgan")
DX_ORDER = ("CN", "MCI", "AD")
_DECIMALS = {"mse": 5, "psnr": 2, "ssim": 4}
FLOOR_MODEL = "mean"  # the mean-image baseline (models/baseline.py): the floor of every table


def relative_to_floor(table: pd.DataFrame, column: str, by: list[str]) -> pd.Series | None:
    """``column`` over the ``mean`` model's value in the same group (the ``by`` columns other than
    ``model``); None when the table has no ``mean`` row."""
    floor = table[table["model"] == FLOOR_MODEL]
    if floor.empty:
        return None
    keys = [c for c in by if c != "model"]
    if not keys:
        return table[column] / float(floor[column].iloc[0])
    reference = table[keys].merge(floor[[*keys, column]], on=keys, how="left")[column].to_numpy()
    return table[column] / reference


def _with_floor_ratio(stats: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """Add ``mse_brain_vs_mean`` (or ``mse_vs_mean`` without brain columns) when there is a floor row."""
    metric = "mse_brain" if "mse_brain_mean" in stats else "mse"
    if "model" in by and f"{metric}_mean" in stats:
        ratio = relative_to_floor(stats, f"{metric}_mean", by)
        if ratio is not None:
            stats[f"{metric}_vs_mean"] = ratio.to_numpy()
    return stats


def _fmt(mean: float, sd: float, metric: str) -> str:
    d = _DECIMALS[metric.removesuffix("_brain")]
    sd_text = "n/a" if np.isnan(sd) else f"{sd:.{d}f}"
    return f"{mean:.{d}f} ± {sd_text}"


def metric_table(rows: pd.DataFrame, by: list[str], order: dict[str, tuple[str, ...]] | None = None) -> pd.DataFrame:
    """Mean, sd and n of every metric present, grouped by ``by``; optional row order per column."""
    metrics = [m for m in (*METRICS, *BRAIN_METRICS) if m in rows.columns]
    data = rows.replace([np.inf, -np.inf], np.nan)
    stats = data.groupby(by, sort=False)[metrics].agg(["mean", "std"])
    stats.columns = [f"{m}_{s}" for m, s in stats.columns]
    stats["n"] = data.groupby(by, sort=False).size()
    stats = stats.reset_index()
    for column, wanted in (order or {}).items():
        rank = {v: i for i, v in enumerate(wanted)}
        stats = stats[stats[column].isin(rank)] if wanted else stats
        stats = stats.sort_values(column, key=lambda s: s.map(rank), kind="stable")
    return _with_floor_ratio(stats.reset_index(drop=True), by)


def formatted(table: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """``by`` columns, n and a "mean ± sd" text column per metric in ``table``."""
    shown = table[by + ["n"]].copy()
    for metric in (*METRICS, *BRAIN_METRICS):
        if f"{metric}_mean" in table:
            shown[metric.upper().replace("_BRAIN", " (brain)")] = [
                _fmt(m, s, metric) for m, s in zip(table[f"{metric}_mean"], table[f"{metric}_std"])
            ]
    for metric in ("mse_brain", "mse"):
        if f"{metric}_vs_mean" in table:
            shown[f"{metric.upper().replace('_BRAIN', ' (brain)')} / mean"] = table[f"{metric}_vs_mean"].round(3)
    return shown


def write_formatted(shown: pd.DataFrame, stem: str | Path, title: str) -> None:
    """Write an already formatted table as ``<stem>.md`` (title line) and ``<stem>.html``."""
    write_text_atomic(f"{stem}.md", f"## {title}\n\n" + shown.to_markdown(index=False) + "\n")
    write_html_table(shown, title, f"{stem}.html")


def write_table(table: pd.DataFrame, by: list[str], stem: str | Path, title: str) -> None:
    """Write ``<stem>.tsv`` (numbers), ``<stem>.md`` and ``<stem>.html`` (formatted) atomically."""
    write_tsv_atomic(f"{stem}.tsv", table)
    write_formatted(formatted(table, by), stem, title)


def paper_tables(rows: pd.DataFrame, out_dir: str | Path) -> dict[str, pd.DataFrame]:
    """Tables I (ablation), III (all models) and IV (per diagnosis group) into ``out_dir``; the
    ``mean`` baseline is the first row of each (the floor a model must beat)."""
    out = Path(out_dir)
    tables = {
        "table1_ablation": (metric_table(rows, ["model"], {"model": ABLATION_ORDER}), ["model"],
                            "Table I - MCR-VQGAN ablation (mean ± sd over test slices)"),
        "table3_models": (metric_table(rows, ["model"]), ["model"], "Table III - all models"),
        "table4_diagnosis": (metric_table(rows, ["model", "dx_group"], {"dx_group": DX_ORDER}),
                             ["model", "dx_group"], "Table IV - per diagnosis group (CN / MCI / AD)"),
    }
    rank = {m: i for i, m in enumerate(baselines_first(list(dict.fromkeys(rows["model"]))))}
    written = {}
    for stem, (table, by, title) in tables.items():
        if stem != "table1_ablation":  # baselines first, then the models in the order they came
            table = table.sort_values(["model"], key=lambda s: s.map(rank), kind="stable").reset_index(drop=True)
        write_table(table, by, out / stem, title)
        written[stem] = table
    return written
