"""The cohort's regional SUVR by diagnosis (rule ``regional_figure``, in the Snakemake report).

One panel per value (SUVR, and the partial-volume corrected SUVR when the table has it): for
Braak I, II, III/IV, V/VI and the meta-temporal ROI one box per diagnosis group (CN / MCI / AD,
every session of the cohort's wide table), with the sessions as dots. Matplotlib Agg, PNG.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from mri2tau.io.atomic import atomic_path  # noqa: E402

ROIS = {"BRAAK1": "Braak I", "BRAAK2": "Braak II", "BRAAK34": "Braak III/IV", "BRAAK56": "Braak V/VI",
        "META_TEMPORAL": "meta-temporal"}
GROUP_COLORS = {"CN": "tab:green", "MCI": "tab:orange", "AD": "tab:red"}
VALUES = {"SUVR": "SUVR", "SUVR_PVC": "SUVR, partial-volume corrected (GTM)"}


def regional_by_diagnosis(wide_tsv: str | Path, out_png: str | Path) -> None:
    """Box plots of the Braak-ROI SUVR per diagnosis group from the cohort's wide table."""
    table = pd.read_csv(wide_tsv, sep="\t", na_values=["n/a"])
    values = [v for v in VALUES if f"BRAAK1_{v}" in table]
    groups = [g for g in GROUP_COLORS if g in set(table["dx_group"])]
    width = 0.8 / max(len(groups), 1)
    fig, axes = plt.subplots(1, len(values), figsize=(6.5 * len(values), 4.2), squeeze=False, layout="constrained")
    rng = np.random.default_rng(0)
    for ax, value in zip(axes[0], values):
        for g, group in enumerate(groups):
            rows = table[table["dx_group"] == group]
            positions = np.arange(len(ROIS)) + (g - (len(groups) - 1) / 2) * width
            data = [rows[f"{roi}_{value}"].dropna().to_numpy() for roi in ROIS]
            boxes = ax.boxplot(data, positions=positions, widths=width * 0.85, patch_artist=True, showfliers=False,
                               medianprops={"color": "k"})
            for box in boxes["boxes"]:
                box.set_facecolor(GROUP_COLORS[group])
                box.set_alpha(0.5)
            for x, y in zip(positions, data):
                ax.plot(x + rng.uniform(-0.15, 0.15, len(y)) * width, y, ".", color="k", ms=3)
            ax.plot([], [], "s", color=GROUP_COLORS[group], alpha=0.5, label=f"{group} (n = {len(rows)})")
        ax.axhline(1.0, color="0.6", lw=0.8, ls="--")
        ax.set_xticks(np.arange(len(ROIS)), list(ROIS.values()))
        ax.set_ylabel(VALUES[value])
        ax.legend(title="diagnosis", fontsize=8)
    reference = table["REFERENCE_REGION"].iloc[0] if len(table) else "?"
    fig.suptitle(f"Regional tau SUVR by diagnosis, {len(table)} sessions (reference: {reference})")
    with atomic_path(out_png, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=110, bbox_inches="tight")
    plt.close(fig)
