"""Pairing control: a small model trained briefly on correctly paired demo data beats the ``mean``
baseline; the same run with the training MRI and PET shuffled across subjects does not.

Everything between the images and the scores is the package's code (``LearningRun``: split,
standardization, ``build_slices`` / ``build_volumes``, the training loop, ``synthesize_model``,
``evaluate_models``), so a subject, slice or volume paired with another one's anywhere from the
slice/volume stage to synthesis makes the paired model lose to the mean (and this test fail).
The 2D model (cgan's U-Net, L1) must beat the mean when paired and not when shuffled; the brief 3D
run (unet3d) does not reach the mean yet on a CPU budget, so for the volume path pairing must
cut its error to < 0.65 x the shuffled run's.

The control is about pairing, not generalisation: models are scored on the subjects they were
trained on (a split table relabelled so they are the "test" rows), against those subjects' own
real PET. A correctly paired model has learned each subject's MRI -> PET; a model trained on
shuffled pairs predicts another subject's PET (or the average) and cannot beat the mean of the
training PET. Held-out performance is measured by bench/learning.py. Images: 10 CN and AD demo
subjects on an 8 mm template grid straight from the generator (:mod:`mri2tau.demo.template_space`),
four axial positions per subject for the 2D model.
"""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import pandas as pd
import pytest
import torch

from mri2tau.demo.template_space import PATTERNS, write_template_cohort
from mri2tau.evaluate.learning import LearningRun, learning_config

#: cohort indices: CN and AD subjects of the demo cohort (all three vendors), 8 train / 2 test
INDICES = [0, 2, 4, 6, 8, 10, 12, 14, 16, 20]
VOXEL_MM = 8.0  # coarse grid: 32-px slices, 32^3 volumes
SMALL = {  # small, briefly trained models (the registry's architectures, narrower and shallower)
    "cgan": {"epochs": 300, "lambda_adv": 0.0, "ngf": 16, "lr": 0.001, "num_downs": 4},
    "unet3d": {"epochs": 150, "lr": 0.003, "channels": [16, 32, 64], "strides": [2, 2], "dropout": 0.0},
}
CONFIG = {
    "template": {"resolution_mm": VOXEL_MM},
    "slices": {"grid": 32, "positions": [116, 126, 136, 146]},
    "split": {"test_fraction": 0.2},
    "train": {"device": "cpu", "overrides": SMALL, "slice_set": "paper"},  # the four positions above
    "perceptual": {"kind": "none", "beta": 0.0},  # 3D objective: MSE only (fast on a CPU)
    "volumes": {"augment": {"enabled": False}},
}


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def cohort(tmp_path_factory) -> tuple[Path, pd.DataFrame]:
    root = tmp_path_factory.mktemp("control_cohort")
    return root, write_template_cohort(root, 30, seed=0, voxel_mm=VOXEL_MM, indices=INDICES)


def shuffled_cohort(root: Path, out: Path, training: list[str]) -> dict[str, str]:
    """Patterns whose SUVR of training subject k is that of training subject k+1 (a cycle: no
    subject keeps its own); T1s, masks and the other subjects' SUVR unchanged."""
    patterns = {k: str(root / v) for k, v in PATTERNS.items()}
    shuffled = str(out / PATTERNS["suvr"])
    subjects = sorted({p.parent.parent.name.removeprefix("sub-") for p in root.glob("sub-*/ses-*/suvr_template.nii.gz")})
    moved = dict(zip(training, training[1:] + training[:1]))
    for sub in subjects:
        target = Path(shuffled.format(sub=sub, ses="bl"))
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(patterns["suvr"].format(sub=moved.get(sub, sub), ses="bl"), target)
    return {**patterns, "suvr": shuffled}


def in_sample_splits(run: LearningRun) -> Path:
    """The run's split with the training subjects as the "test" rows (the others dropped)."""
    table = pd.read_csv(run.splits, sep="\t", dtype=str, keep_default_na=False)
    table = table[table["split"] == "train"].assign(split="test")
    path = run.root / "splits_in_sample.tsv"
    table.to_csv(path, sep="\t", index=False)
    return path


def brain_mse(run: LearningRun, real_pattern: str) -> pd.Series:
    """Mean brain MSE per model (paper slice positions) on the training subjects."""
    splits = in_sample_splits(run)
    models = ["mean", *SMALL]
    for model in models:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            run.train(model)
        run.synthesize(model, splits)
    tables = run.evaluate(models, splits, real_pattern)
    return tables["slice_metrics"].groupby("model")["mse_brain"].mean()


@pytest.mark.slow
def test_paired_models_beat_the_mean_and_shuffled_ones_do_not(cohort, tmp_path):
    root, pairs = cohort
    paired = LearningRun(tmp_path / "paired", {k: str(root / v) for k, v in PATTERNS.items()},
                         learning_config(CONFIG))
    splits = paired.prepare(pairs)
    training = sorted(splits.loc[splits["split"] == "train", "sub"])
    assert len(training) == 8 and set(splits.loc[splits["split"] == "train", "dx_group"]) == {"CN", "AD"}
    real = str(root / PATTERNS["suvr"])
    good = brain_mse(paired, real)

    shuffled = LearningRun(tmp_path / "shuffled", shuffled_cohort(root, tmp_path / "shuffled_suvr", training),
                           learning_config(CONFIG))
    assert list(shuffled.prepare(pairs)["split"]) == list(splits["split"])
    bad = brain_mse(shuffled, real)  # scored against each subject's own real PET

    # slices -> 2D model -> synthesis: beats the mean when paired, not when shuffled
    assert good["cgan"] < 0.92 * good["mean"], good.to_dict()  # measured 0.86
    assert bad["cgan"] > bad["mean"], bad.to_dict()
    # volumes -> 3D model -> synthesis: pairing roughly halves the error (measured 0.55; the brief 3D
    # run does not reach the mean yet: 600 epochs do, 0.78 x the mean, too slow for a test)
    assert good["unet3d"] < 0.65 * bad["unet3d"] and bad["unet3d"] > bad["mean"], (good.to_dict(), bad.to_dict())
