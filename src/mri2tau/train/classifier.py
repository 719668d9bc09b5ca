"""Training the downstream CN vs MCI/AD slice classifier (MCR-VQGAN paper, Table V;
architecture :class:`mri2tau.models.slice_classifier.SliceClassifier`, evaluation
:mod:`mri2tau.evaluate.diagnosis`).

Trained on REAL training PET slices only: 2D axial PET slices scaled to [-1, 1], shape
(N, 1, H, W). CN subjects contribute every other slice (class balance, as the paper); focal loss
(alpha 0.25, gamma 2); Adam lr 2e-4 with exponential decay 0.98 per epoch; batch 8; random
rotations, flips and small affine transforms. Seeding and the epoch of optimisation steps are the
generators' (:mod:`mri2tau.train.epoch`, :class:`mri2tau.train.steps.StepContext`).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader, TensorDataset
from torchvision.transforms import v2
from tqdm import tqdm

from mri2tau.log import get_logger
from mri2tau.losses.focal import binary_focal_loss
from mri2tau.models.slice_classifier import SliceClassifier
from mri2tau.train.epoch import run_epoch, seed_rngs
from mri2tau.train.steps import StepContext

log = get_logger("classifier")

POSITIVE_GROUPS = ("MCI", "AD")


@dataclass
class ClassifierConfig:
    """Training settings (paper: 200 epochs, batch 8, lr 2e-4, decay 0.98, focal 0.25 / 2)."""

    epochs: int = 200
    batch_size: int = 8
    lr: float = 2e-4
    lr_decay: float = 0.98
    focal_alpha: float = 0.25
    focal_gamma: float = 2.0
    channels: tuple[int, ...] = (16, 32, 64, 128, 256)
    dropout: float = 0.5
    cn_slice_stride: int = 2
    augment: bool = True
    seed: int = 0


def labels_from_groups(groups: pd.Series | list[str]) -> np.ndarray:
    """1 for MCI/AD (SMC/EMCI/LMCI are grouped as MCI upstream), 0 for CN."""
    groups = pd.Series(list(groups))
    unknown = set(groups) - {"CN", *POSITIVE_GROUPS}
    if unknown:
        raise ValueError(f"unknown diagnosis group(s) {sorted(unknown)}; expected CN, MCI or AD")
    return groups.isin(POSITIVE_GROUPS).to_numpy(np.float32)


def select_training_slices(index: pd.DataFrame, cn_stride: int = 2) -> np.ndarray:
    """Row positions to train on: every slice of MCI/AD subjects, every ``cn_stride``-th of CN."""
    keep = []
    for _, rows in index.reset_index(drop=True).groupby("sub", sort=False):
        positions = rows.index.to_numpy()
        if rows["dx_group"].iloc[0] == "CN":
            positions = positions[::cn_stride]
        keep.append(positions)
    return np.sort(np.concatenate(keep)) if keep else np.array([], int)


def _augmenter() -> v2.Compose:
    return v2.Compose(
        [
            v2.RandomHorizontalFlip(),
            v2.RandomVerticalFlip(),
            v2.RandomAffine(degrees=10, translate=(0.05, 0.05), scale=(0.95, 1.05), fill=-1.0),
        ]
    )


def train_classifier(
    pet: np.ndarray, index: pd.DataFrame, config: ClassifierConfig, device: str = "cpu", progress: bool = True
) -> tuple[SliceClassifier, pd.DataFrame]:
    """Train on real training slices ``pet`` (N, 1, H, W) described by ``index`` (sub, dx_group).

    Returns the model (eval mode) and a per-epoch history (epoch, loss, lr).
    """
    seed_rngs(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    rows = select_training_slices(index, config.cn_slice_stride)
    x = torch.as_tensor(pet[rows], dtype=torch.float32)
    y = torch.as_tensor(labels_from_groups(index["dx_group"].iloc[rows]))
    loader = DataLoader(TensorDataset(x, y), batch_size=config.batch_size, shuffle=True, generator=generator)
    model = SliceClassifier(config.channels, dropout=config.dropout).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    scheduler = torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=config.lr_decay)
    augment = _augmenter() if config.augment else None
    context = StepContext({"classifier": optimizer}, {"classifier": torch.amp.GradScaler(enabled=False)},
                          contextlib.nullcontext, 0.0, 0)

    def train_batch(batch: list[torch.Tensor], _: int) -> tuple[dict[str, float], int]:
        xb, yb = batch
        if augment is not None:
            xb = torch.stack([augment(img) for img in xb])
        xb, yb = xb.to(device), yb.to(device)
        loss = binary_focal_loss(model(xb), yb, config.focal_alpha, config.focal_gamma)
        context.update("classifier", loss)
        return {"loss": loss.item()}, len(xb)  # mean focal loss per slice

    history = []
    for epoch in tqdm(range(config.epochs), desc="classifier", disable=not progress):
        model.train()
        means = run_epoch(loader, train_batch)
        history.append({"epoch": epoch, "loss": means.get("loss", 0.0), "lr": scheduler.get_last_lr()[0]})
        scheduler.step()
    model.eval()
    return model, pd.DataFrame(history)

