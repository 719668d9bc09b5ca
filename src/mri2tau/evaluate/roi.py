"""Regional SUVR agreement between real and synthetic tau PET (template space).

For every test subject the mean SUVR is taken in the Braak I-VI groupings of the
Desikan-Killiany atlas and the meta-temporal ROI (``mri2tau.templates.roi_masks``), then
real vs synthetic agreement per region: Pearson r, ICC(2,1) (two-way random effects,
absolute agreement, single rater; Shrout & Fleiss 1979) and mean absolute SUVR error.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
from scipy import stats


def roi_means(suvr: np.ndarray, masks: Mapping[str, np.ndarray]) -> dict[str, float]:
    """Mean SUVR of a template-space volume in each ROI mask (same grid)."""
    out = {}
    for name, mask in masks.items():
        if mask.shape != suvr.shape:
            raise ValueError(f"ROI {name}: mask shape {mask.shape} != volume shape {suvr.shape}")
        if not mask.any():
            raise ValueError(f"ROI {name} is empty on this grid")
        out[name] = float(np.nanmean(suvr[mask]))
    return out


def icc_2_1(ratings: np.ndarray) -> float:
    """ICC(2,1) of an (n subjects x k raters) array: two-way random, absolute agreement."""
    x = np.asarray(ratings, dtype=np.float64)
    n, k = x.shape
    if n < 2 or k < 2:
        raise ValueError("ICC needs at least 2 subjects and 2 raters")
    grand = x.mean()
    ss_rows = k * ((x.mean(axis=1) - grand) ** 2).sum()
    ss_cols = n * ((x.mean(axis=0) - grand) ** 2).sum()
    ss_err = ((x - grand) ** 2).sum() - ss_rows - ss_cols
    msr = ss_rows / (n - 1)
    msc = ss_cols / (k - 1)
    mse = ss_err / ((n - 1) * (k - 1))
    denom = msr + (k - 1) * mse + k * (msc - mse) / n
    return float((msr - mse) / denom) if denom != 0 else float("nan")


def agreement_table(real: pd.DataFrame, synth: pd.DataFrame) -> pd.DataFrame:
    """Per-ROI agreement between two (subjects x ROIs) tables of mean SUVR (same index/columns).

    Returns one row per ROI: n, real_mean, synth_mean, pearson_r, pearson_p, icc, mae.
    """
    real, synth = real.sort_index(), synth.sort_index()
    if not real.index.equals(synth.index):
        raise ValueError("real and synthetic ROI tables cover different subjects")
    rows = []
    for roi in real.columns:
        a, b = real[roi].to_numpy(float), synth[roi].to_numpy(float)
        if len(a) >= 3 and np.std(a) > 0 and np.std(b) > 0:
            r, p = stats.pearsonr(a, b)
        else:
            r, p = float("nan"), float("nan")
        rows.append(
            {
                "roi": roi,
                "n": len(a),
                "real_mean": float(a.mean()),
                "synth_mean": float(b.mean()),
                "pearson_r": float(r),
                "pearson_p": float(p),
                "icc": icc_2_1(np.column_stack([a, b])) if len(a) >= 2 else float("nan"),
                "mae": float(np.abs(a - b).mean()),
            }
        )
    return pd.DataFrame(rows)
