"""The learning stages in one process: split -> standardization -> slices / volumes -> training ->
synthesis -> evaluation -> classifier, each through the package function its Snakemake rule
calls (no parallel implementation), for ``bench/learning.py`` and the pairing-control test.

Inputs are a pairs table (``sub, ses, ptid, dx, dx_group, manufacturer``: what the split rule
reads) and template-space images at path patterns with ``{sub}``/``{ses}``: ``t1`` (the MRI
stage's T1_TEMPLATE), ``suvr`` (SUVR_TEMPLATE, reference mean 1) and ``mask``
(BRAIN_MASK_TEMPLATE). Settings come from a resolved config (preset + overrides, as the
workflow's). Everything is written below ``root`` (layout: :class:`LearningRun`).

:func:`summary` turns the evaluation outputs into one row per model: MSE / PSNR / SSIM whole and
brain (mean over the evaluated slices), brain MSE relative to the ``mean`` baseline, Pearson r and
ICC of regional SUVR (Braak I-VI, Braak I-II = the voxel-weighted union of I and II,
meta-temporal) and the classifier's accuracy and AUC on that model's synthetic test PET.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mri2tau.config import deep_merge, resolve_config
from mri2tau.evaluate.roi import agreement_table
from mri2tau.evaluate.tables import relative_to_floor
from mri2tau.io.atomic import write_tsv_atomic
from mri2tau.models.defaults import baselines_first, model_dims
from mri2tau.paths import slice_set_name, training_slice_stem
from mri2tau.templates import roi_masks

METRIC_COLUMNS = ("mse", "psnr", "ssim", "mse_brain", "psnr_brain", "ssim_brain")
BRAAK12 = "braak1_2"


def learning_config(overrides: Mapping[str, Any] | None = None, preset: str = "demo") -> dict[str, Any]:
    """The resolved config (``preset`` + ``overrides``) the in-process run reads its settings from."""
    return resolve_config(deep_merge({"preset": preset}, dict(overrides or {})))


@dataclass
class LearningRun:
    """One in-process run below ``root``: ``splits.tsv``, ``reference_mask.nii.gz``,
    ``harmonization.json``, ``std/`` (standardized SUVR), ``slices/``, ``volumes/``,
    ``models/<model>/``, ``synth/<model>/``, ``eval/``, ``classifier/``."""

    root: Path
    patterns: dict[str, str]
    config: dict[str, Any]
    threads: int = 1

    def __post_init__(self) -> None:
        self.root = Path(self.root)

    # ------------------------------------------------------------ paths
    @property
    def resolution_mm(self) -> float:
        return float(self.config["template"]["resolution_mm"])

    @property
    def splits(self) -> Path:
        return self.root / "splits.tsv"

    @property
    def harmonization(self) -> Path:
        return self.root / "harmonization.json"

    @property
    def reference(self) -> Path:
        return self.root / "reference_mask.nii.gz"

    @property
    def suvrstd_pattern(self) -> str:
        return str(self.root / "std" / "sub-{sub}_ses-{ses}_suvrstd.nii.gz")

    def model_dir(self, model: str) -> Path:
        return self.root / "models" / model

    def synth_dir(self, model: str) -> Path:
        return self.root / "synth" / model

    # ------------------------------------------------------------ stages
    def prepare(self, pairs: pd.DataFrame) -> pd.DataFrame:
        """Split, reference region, standardization (fit on train, apply to all), slices and
        volumes (rules split, pet_reference, harmonize_fit/apply, slices, volumes). Returns the splits."""
        from mri2tau.data.slices import build_slices
        from mri2tau.data.split import write_splits
        from mri2tau.data.volumes import build_volumes
        from mri2tau.preprocess.harmonize import fit_harmonization, harmonize_subject
        from mri2tau.preprocess.suvr import write_reference_mask

        cfg, res = self.config, self.resolution_mm
        self.root.mkdir(parents=True, exist_ok=True)
        write_tsv_atomic(self.root / "pairs.tsv", pairs)
        split = cfg["split"]
        splits = write_splits(self.root / "pairs.tsv", self.splits, test_fraction=split["test_fraction"],
                              seed=split["seed"], stratify_by=split["stratify_by"])
        pet, harm = cfg["pet"], cfg["harmonization"]
        write_reference_mask(self.reference, reference_region=pet["reference_region"], resolution_mm=res,
                             erosion_vox=pet["erosion_vox"])
        fit_harmonization(self.splits, self.patterns["suvr"], self.harmonization, method=harm["method"],
                          resolution_mm=res, robust_percentile=harm["robust_percentile"],
                          resolution_matching_settings=harm.get("resolution_matching"), reference_mask=self.reference,
                          trimmed_mean_percent=pet["trimmed_mean_percent"])
        for row in splits.itertuples():
            harmonize_subject(self.patterns["suvr"].format(sub=row.sub, ses=row.ses), self.harmonization, self.splits,
                              self.suvrstd_pattern.format(sub=row.sub, ses=row.ses), sub=row.sub, ses=row.ses,
                              resolution_mm=res, on_unknown=harm["on_unknown_manufacturer"],
                              reference_mask=self.reference)
        inputs = dict(t1_pattern=self.patterns["t1"], pet_pattern=self.suvrstd_pattern,
                      mask_pattern=self.patterns["mask"])
        build_slices(self.splits, **inputs, out_dir=self.root / "slices", config=cfg["slices"])
        volumes = {k: v for k, v in cfg["volumes"].items() if k != "augment"}
        build_volumes(self.splits, **inputs, out_dir=self.root / "volumes", slices_config=cfg["slices"],
                      volumes_config=volumes, resolution_mm=res)
        return splits

    def hparams(self, model: str) -> dict[str, Any]:
        """The model's resolved hyper-parameters under this run's config (as the train rules')."""
        from mri2tau.train.hparams import model_hparams, model_hparams_3d

        return (model_hparams if model_dims(model) == 2 else model_hparams_3d)(model, self.config)

    def train(self, model: str) -> Path:
        """Rule ``train_model`` / ``train_model_3d`` for ``model``; returns its ``model.pt``."""
        from mri2tau.train.runner import train_model

        settings = {**self.config["train"], "vgg_weights": self.config["perceptual"].get("vgg_weights", "imagenet"),
                    "threads": self.threads, "progress_bar": False}
        stem = training_slice_stem(self.config["train"]["slice_set"])
        data = self.root / "slices" / slice_set_name(stem) if model_dims(model) == 2 else self.root / "volumes"
        return train_model(model, data, self.model_dir(model), self.hparams(model), settings)

    def synthesize(self, model: str, splits: Path | None = None) -> pd.DataFrame:
        """Rule ``synthesize`` for ``model`` (template space only) on the test rows of ``splits``
        (default: this run's split); returns the timing table."""
        from mri2tau.synthesize import synthesize_model

        cfg = self.config
        return synthesize_model(
            model_file=self.model_dir(model) / "model.pt", splits=splits or self.splits, t1_pattern=self.patterns["t1"],
            mask_pattern=self.patterns["mask"], t1w_pattern=None, affine_pattern=None, invwarp_pattern=None,
            harmonization=self.harmonization, out_dir=self.synth_dir(model), resolution_mm=self.resolution_mm,
            settings=cfg["synthesize"], slices_config=cfg["slices"],
            volumes_config={k: v for k, v in cfg["volumes"].items() if k != "augment"},
            on_unknown_manufacturer=cfg["harmonization"]["on_unknown_manufacturer"], threads=self.threads)

    def evaluate(self, models: Sequence[str], splits: Path | None = None,
                 real_pattern: str | None = None) -> dict[str, pd.DataFrame]:
        """Rule ``evaluate`` over ``models`` (volume metrics for every model) on the test rows of
        ``splits`` against ``real_pattern`` (defaults: this run's split and SUVR)."""
        from mri2tau.evaluate.run import evaluate_models

        settings = {**self.config["evaluate"], "volume_metrics": "all"}
        return evaluate_models(splits=splits or self.splits, real_pattern=real_pattern or self.patterns["suvr"],
                               mask_pattern=self.patterns["mask"],
                               synth_dirs={m: self.synth_dir(m) for m in models}, out_dir=self.root / "eval",
                               resolution_mm=self.resolution_mm, slices_config=self.config["slices"], settings=settings)

    def classify(self, models: Sequence[str]) -> pd.DataFrame:
        """Rules ``classifier_train`` + ``classifier_test``: Table V for real and ``models``' PET."""
        from mri2tau.evaluate.diagnosis import test_stage, train_stage

        cfg, out = self.config, self.root / "classifier"
        train_stage(slices_npz=self.root / "slices" / "train_central.npz", out_model=out / "classifier.pt",
                    out_history=out / "history.tsv", settings=cfg["classifier"], threads=self.threads)
        return test_stage(model_file=out / "classifier.pt", real_npz=self.root / "slices" / "test_central.npz",
                          splits=self.splits, synth_dirs={m: self.synth_dir(m) for m in models},
                          mask_pattern=self.patterns["mask"], harmonization=self.harmonization,
                          resolution_mm=self.resolution_mm, slices_config=cfg["slices"],
                          out_table=out / "table5_classifier.tsv", out_decisions=out / "decisions.tsv",
                          settings=cfg["classifier"],
                          on_unknown_manufacturer=cfg["harmonization"]["on_unknown_manufacturer"],
                          threads=self.threads)


# ---------------------------------------------------------------- summary
def braak12_means(roi_suvr: pd.DataFrame, resolution_mm: float) -> pd.DataFrame:
    """Rows of the Braak I-II union ROI (voxel-weighted mean of the Braak I and II rows: the two
    regions are disjoint and evaluated inside the same template brain mask)."""
    from mri2tau.templates import load_template_mask

    brain = np.asarray(load_template_mask(resolution_mm).dataobj) > 0
    masks = roi_masks(resolution_mm)
    n1, n2 = int((masks["braak1"] & brain).sum()), int((masks["braak2"] & brain).sum())
    wide = roi_suvr.pivot_table(index=["source", "sub", "ses", "dx_group"], columns="roi", values="suvr").reset_index()
    wide["suvr"] = (n1 * wide["braak1"] + n2 * wide["braak2"]) / (n1 + n2)
    return wide[["source", "sub", "ses", "dx_group", "suvr"]].assign(roi=BRAAK12)


def summary(tables: Mapping[str, pd.DataFrame], table5: pd.DataFrame | None, resolution_mm: float) -> pd.DataFrame:
    """One row per model (baselines first) from :meth:`LearningRun.evaluate` / ``classify`` outputs."""
    slices = tables["slice_metrics"].replace([np.inf, -np.inf], np.nan)
    metrics = slices.groupby("model", sort=False)[list(METRIC_COLUMNS)].mean()
    rows = tables["roi_suvr"]
    rois = pd.concat([rows, braak12_means(rows, resolution_mm)], ignore_index=True)
    wide = rois.pivot_table(index=["source", "sub", "ses"], columns="roi", values="suvr").sort_index()
    out = []
    for model in baselines_first(list(metrics.index)):
        row: dict[str, Any] = {"model": model, **metrics.loc[model].to_dict()}
        agreement = agreement_table(wide.loc["real"], wide.loc[model]).set_index("roi")
        for roi in agreement.index:
            row[f"r_{roi}"] = agreement.loc[roi, "pearson_r"]
            row[f"icc_{roi}"] = agreement.loc[roi, "icc"]
        if table5 is not None:
            t5 = table5.set_index("source")
            row.update(accuracy=t5.loc[model, "accuracy"], auc=t5.loc[model, "auc"])
        out.append(row)
    table = pd.DataFrame(out)
    ratio = relative_to_floor(table, "mse_brain", ["model"])
    if ratio is not None:
        table.insert(7, "mse_brain_vs_mean", ratio)
    return table
