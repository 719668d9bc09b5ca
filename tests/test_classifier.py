"""Downstream classifier: architecture, focal loss, CN slice thinning, learning a separable task."""

import numpy as np
import pandas as pd
import pytest
import torch

from mri2tau.evaluate.diagnosis import slice_probabilities, subject_decisions, table_v_row
from mri2tau.losses.focal import binary_focal_loss
from mri2tau.models.slice_classifier import SliceClassifier
from mri2tau.train.classifier import ClassifierConfig, select_training_slices, train_classifier

torch.set_num_threads(1)


def test_architecture_shapes_and_parameters():
    model = SliceClassifier()
    assert model(torch.zeros(3, 1, 64, 64)).shape == (3,)
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [16, 16, 32, 32, 64, 64, 128, 128, 256, 256]
    assert sum(isinstance(m, torch.nn.MaxPool2d) for m in model.modules()) == 4
    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    assert [(l.in_features, l.out_features) for l in linears] == [(256, 128), (128, 64), (64, 1)]


def test_focal_loss_reduces_to_bce_and_downweights_easy_examples():
    logits = torch.tensor([2.0, -1.0, 0.5])
    targets = torch.tensor([1.0, 0.0, 0.0])
    bce = torch.nn.functional.binary_cross_entropy_with_logits(logits, targets)
    assert binary_focal_loss(logits, targets, alpha=0.5, gamma=0.0) == pytest.approx(0.5 * bce.item(), rel=1e-6)
    easy = binary_focal_loss(torch.tensor([5.0]), torch.tensor([1.0]))
    hard = binary_focal_loss(torch.tensor([-1.0]), torch.tensor([1.0]))
    assert easy < 1e-4 < hard


def test_cn_subjects_contribute_every_other_slice():
    index = pd.DataFrame({"sub": ["a"] * 4 + ["b"] * 4, "dx_group": ["CN"] * 4 + ["AD"] * 4})
    assert select_training_slices(index, 2).tolist() == [0, 2, 4, 5, 6, 7]


def _blobs(n_sub: int, seed: int) -> tuple[np.ndarray, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    slices, rows = [], []
    for s in range(n_sub):
        group = "AD" if s % 2 else "CN"
        for k in range(4):
            img = -0.8 + 0.05 * rng.standard_normal((1, 16, 16))
            if group == "AD":
                img[:, 4:12, 4:12] += 1.2  # "tau" uptake
            slices.append(img)
            rows.append({"sub": f"s{s}", "slice": k, "dx_group": group})
    return np.stack(slices).astype(np.float32), pd.DataFrame(rows)


def test_learns_a_separable_task_and_reports_table_v():
    pet, index = _blobs(8, 0)
    config = ClassifierConfig(epochs=15, channels=(4, 8, 8, 8, 8), augment=False, lr=3e-3)
    model, history = train_classifier(pet, index, config, progress=False)
    assert history["loss"].iloc[-1] < history["loss"].iloc[0]
    test_pet, test_index = _blobs(6, 1)
    decisions = subject_decisions(slice_probabilities(model, test_pet), test_index)
    row = table_v_row(decisions, "real")
    assert row["accuracy"] == 1.0 and row["auc"] == 1.0
    assert row["overall"] == "6/6 (100.0%)" and row["CN"] == "3/3 (100.0%)"
