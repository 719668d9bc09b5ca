"""Downstream CN vs MCI/AD classifier (MCR-VQGAN paper, Table V).

Trained on REAL training PET slices only; tested on real test PET and on each model's
synthetic test PET. Slices are 2D axial PET slices scaled to [-1, 1], shape (N, 1, H, W).
CN subjects contribute every other slice (class balance, as the paper); focal loss
(alpha 0.25, gamma 2); Adam lr 2e-4 with exponential decay 0.98 per epoch; batch 8; random
rotations, flips and small affine transforms. A subject's decision is the mean slice
probability >= 0.5 (positive = MCI/AD).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from sklearn.metrics import roc_auc_score
from torch.utils.data import DataLoader, TensorDataset
from torchvision.transforms import v2
from tqdm import tqdm

from mri2tau.log import get_logger
from mri2tau.losses.focal import binary_focal_loss
from mri2tau.models.classifier import SliceClassifier

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


def _seed_everything(seed: int) -> torch.Generator:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def train_classifier(
    pet: np.ndarray, index: pd.DataFrame, config: ClassifierConfig, device: str = "cpu", progress: bool = True
) -> tuple[SliceClassifier, pd.DataFrame]:
    """Train on real training slices ``pet`` (N, 1, H, W) described by ``index`` (sub, dx_group).

    Returns the model (eval mode) and a per-epoch history (epoch, loss, lr).
    """
    generator = _seed_everything(config.seed)
    rows = select_training_slices(index, config.cn_slice_stride)
    x = torch.as_tensor(pet[rows], dtype=torch.float32)
    y = torch.as_tensor(labels_from_groups(index["dx_group"].iloc[rows]))
    loader = DataLoader(TensorDataset(x, y), batch_size=config.batch_size, shuffle=True, generator=generator)
    model = SliceClassifier(config.channels, dropout=config.dropout).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    scheduler = torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=config.lr_decay)
    augment = _augmenter() if config.augment else None
    history = []
    for epoch in tqdm(range(config.epochs), desc="classifier", disable=not progress):
        model.train()
        total, count = 0.0, 0
        for xb, yb in loader:
            if augment is not None:
                xb = torch.stack([augment(img) for img in xb])
            xb, yb = xb.to(device), yb.to(device)
            loss = binary_focal_loss(model(xb), yb, config.focal_alpha, config.focal_gamma)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.item() * len(xb)
            count += len(xb)
        history.append({"epoch": epoch, "loss": total / max(count, 1), "lr": scheduler.get_last_lr()[0]})
        scheduler.step()
    model.eval()
    return model, pd.DataFrame(history)


@torch.no_grad()
def slice_probabilities(model: SliceClassifier, pet: np.ndarray, batch_size: int = 64, device: str = "cpu") -> np.ndarray:
    """Sigmoid probability of MCI/AD for each slice (N, 1, H, W) -> (N,)."""
    model.eval()
    out = []
    for start in range(0, len(pet), batch_size):
        xb = torch.as_tensor(pet[start : start + batch_size], dtype=torch.float32, device=device)
        out.append(torch.sigmoid(model(xb)).cpu().numpy())
    return np.concatenate(out) if out else np.zeros(0, np.float32)


def subject_decisions(probabilities: np.ndarray, index: pd.DataFrame) -> pd.DataFrame:
    """Per subject: mean slice probability, prediction (>= 0.5) and truth (columns below)."""
    frame = index[["sub", "dx_group"]].reset_index(drop=True).assign(prob=probabilities)
    per = frame.groupby("sub", sort=True).agg(dx_group=("dx_group", "first"), prob=("prob", "mean")).reset_index()
    per["label"] = labels_from_groups(per["dx_group"]).astype(int)
    per["pred"] = (per["prob"] >= 0.5).astype(int)
    per["correct"] = per["pred"] == per["label"]
    return per


def table_v_row(decisions: pd.DataFrame, source: str) -> dict[str, object]:
    """One Table V row: overall / CN / MCI-AD correct counts and %, plus subject-level AUC."""
    def part(frame: pd.DataFrame) -> str:
        n = len(frame)
        k = int(frame["correct"].sum())
        return f"{k}/{n} ({100.0 * k / n:.1f}%)" if n else "0/0"

    labels = decisions["label"].to_numpy()
    auc = roc_auc_score(labels, decisions["prob"]) if len(set(labels)) == 2 else float("nan")
    return {
        "source": source,
        "overall": part(decisions),
        "CN": part(decisions[decisions["label"] == 0]),
        "MCI/AD": part(decisions[decisions["label"] == 1]),
        "accuracy": float(decisions["correct"].mean()) if len(decisions) else float("nan"),
        "auc": float(auc),
    }
