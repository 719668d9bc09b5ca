"""Classifier stage (rules ``classifier_train`` / ``classifier_test``): Table V.

Train the CN vs MCI/AD slice classifier (:mod:`mri2tau.evaluate.classifier`) on the REAL
training PET only: the slice stage's central-100 set (``results/slices/train_central.npz``:
standardized SUVR scaled to [-1, 1], brain-masked, display-oriented). Test it on the real test
set (``test_central.npz``) and on each model's synthetic test PET, brought into exactly the same
representation: synthetic template SUVR -> the subject's by-manufacturer standardization ->
[-1, 1] by the slice stage's SUVR window -> -1 outside the brain -> padded grid -> the same
central axial positions.

Outputs: ``classifier.pt`` (weights + settings), ``history.tsv`` (per-epoch focal loss, lr),
``table5_classifier.{tsv,md,html}`` (one row per source: real, then each model: correct counts and %
overall / CN / MCI-AD, accuracy, AUC) and ``decisions.tsv`` (per source and subject).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from mri2tau.data.datasets import open_slices
from mri2tau.data.slices import SliceConfig, axial_slices, central_positions, pet_to_unit, to_grid
from mri2tau.evaluate.classifier import (
    ClassifierConfig,
    slice_probabilities,
    subject_decisions,
    table_v_row,
    train_classifier,
)
from mri2tau.evaluate.run import diagnosis_group, read_synthetic, test_sessions
from mri2tau.evaluate.tables import write_formatted
from mri2tau.io.atomic import write_tsv_atomic
from mri2tau.log import get_logger
from mri2tau.models.classifier import SliceClassifier
from mri2tau.models.defaults import baselines_first
from mri2tau.preprocess.harmonize import apply_map, subject_map
from mri2tau.synthesize import load_grid_image
from mri2tau.templates import template_grid

log = get_logger("evaluate.classify")

STAGE = "classifier"
CLASSIFIER_FORMAT = "mri2tau-classifier/1"
RUN_KEYS = ("device", "threads")


def classifier_config(section: Mapping[str, Any] | None) -> ClassifierConfig:
    """:class:`ClassifierConfig` from config section ``classifier`` (resource keys ignored)."""
    names = {f.name for f in fields(ClassifierConfig)}
    return ClassifierConfig(**{k: tuple(v) if isinstance(v, list) else v
                               for k, v in (section or {}).items() if k in names})


def _device(section: Mapping[str, Any] | None) -> str:
    from mri2tau.train.loop import resolve_device

    return str(resolve_device(str((section or {}).get("device", "auto"))))


def _with_groups(index: pd.DataFrame) -> pd.DataFrame:
    """``dx_group`` recomputed from the split's ``diagnosis`` (SMC/EMCI/LMCI -> MCI)."""
    groups = [diagnosis_group(str(d), str(g), f"sub-{s}") for s, d, g in
              zip(index["sub"], index["diagnosis"], index["dx_group"])]
    return index.assign(dx_group=groups)


def train_stage(
    *, slices_npz: str | Path, out_model: str | Path, out_history: str | Path, settings: Mapping[str, Any] | None,
    threads: int = 1,
) -> pd.DataFrame:
    """Rule ``classifier_train``: fit on the real training central slices; write model + history."""
    from mri2tau.train.checkpoint import save_checkpoint

    torch.set_num_threads(max(int(threads), 1))
    cfg = classifier_config(settings)
    slices = open_slices(slices_npz, mmap=False)
    index = _with_groups(slices.index)
    log.info("classifier: %d real training slices of %d subjects, %d epochs", len(index), index["sub"].nunique(),
             cfg.epochs)
    model, history = train_classifier(np.asarray(slices.pet, np.float32), index, cfg, _device(settings), progress=False)
    save_checkpoint(out_model, {"format": CLASSIFIER_FORMAT, "config": asdict(cfg),
                                "state_dict": {k: v.cpu() for k, v in model.state_dict().items()}})
    write_tsv_atomic(out_history, history)
    return history


def load_classifier(path: str | Path, device: str = "cpu") -> SliceClassifier:
    """The classifier written by :func:`train_stage`, in eval mode."""
    from mri2tau.train.checkpoint import load_checkpoint

    saved = load_checkpoint(path)
    cfg = saved["config"]
    model = SliceClassifier(tuple(cfg["channels"]), dropout=cfg["dropout"])
    model.load_state_dict(saved["state_dict"])
    return model.to(device).eval()


def synthetic_slices(
    suvr: np.ndarray, brain: np.ndarray, scale_offset: tuple[float, float], cfg: SliceConfig,
    positions: list[int],
) -> np.ndarray:
    """Synthetic template SUVR -> the slice stage's representation at ``positions``:
    (len(positions), 1, grid, grid) float32 in [-1, 1] (standardized, windowed, brain-masked)."""
    unit = pet_to_unit(apply_map(suvr, brain, *scale_offset), cfg.pet_window)
    if cfg.mask_brain:
        unit[~brain] = -1.0
    cube = to_grid(unit + 1.0, cfg.grid) - 1.0
    return axial_slices(cube, positions)[:, None].astype(np.float32)


def test_stage(
    *,
    model_file: str | Path,
    real_npz: str | Path,
    splits: str | Path,
    synth_dirs: Mapping[str, str | Path],
    mask_pattern: str,
    harmonization: str | Path,
    resolution_mm: float,
    slices_config: Mapping[str, Any],
    out_table: str | Path,
    out_decisions: str | Path,
    settings: Mapping[str, Any] | None = None,
    on_unknown_manufacturer: str = "error",
    threads: int = 1,
) -> pd.DataFrame:
    """Rule ``classifier_test``: Table V for the real and every model's synthetic test PET
    (``out_table`` ``<stem>.tsv``; ``<stem>.md`` and ``<stem>.html`` are written beside it)."""
    torch.set_num_threads(max(int(threads), 1))
    device = _device(settings)
    model = load_classifier(model_file, device)
    slice_cfg = SliceConfig.from_config(dict(slices_config))
    positions = central_positions(slice_cfg.grid, slice_cfg.central)
    real = open_slices(real_npz, mmap=False)
    real_index = _with_groups(real.index)
    sources = {"real": (np.asarray(real.pet, np.float32), real_index)}
    params = json.loads(Path(harmonization).read_text())
    shape, affine = template_grid(resolution_mm)
    test = test_sessions(splits)
    for name in baselines_first(list(synth_dirs)):  # real, then the mean floor, then the models
        synth_dir = synth_dirs[name]
        stacks, index_rows = [], []
        for row in test.itertuples():
            label = f"sub-{row.sub}_ses-{row.ses}"
            brain = np.asarray(load_grid_image(mask_pattern.format(sub=row.sub, ses=row.ses), "brain mask", label,
                                               shape, affine, stage=STAGE).dataobj) > 0
            suvr = read_synthetic(synth_dir, row.sub, row.ses, resolution_mm, name)
            scale_offset = subject_map(params, row.manufacturer, subject=label, on_unknown=on_unknown_manufacturer)
            stacks.append(synthetic_slices(suvr, brain, scale_offset, slice_cfg, positions))
            index_rows += [{"sub": row.sub, "ses": row.ses, "slice": z, "dx_group": row.dx_group} for z in positions]
        sources[name] = (np.concatenate(stacks), pd.DataFrame(index_rows))
    rows, decisions = [], []
    for name, (pet, index) in sources.items():
        per_subject = subject_decisions(slice_probabilities(model, pet, device=device), index)
        rows.append(table_v_row(per_subject, name))
        decisions.append(per_subject.assign(source=name))
        log.info("%s: %s", name, rows[-1])
    table = pd.DataFrame(rows)
    write_tsv_atomic(out_table, table)
    shown = table.assign(accuracy=table["accuracy"].map("{:.3f}".format), auc=table["auc"].map("{:.3f}".format))
    write_formatted(shown, str(out_table).removesuffix(".tsv"),
                    "Table V - CN vs MCI/AD classifier trained on real PET, tested on real and synthetic test PET")
    write_tsv_atomic(out_decisions, pd.concat(decisions, ignore_index=True))
    return table
