"""Binary focal loss (Lin et al. 2017) for the CN vs MCI/AD slice classifier."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def binary_focal_loss(logits: torch.Tensor, targets: torch.Tensor, alpha: float = 0.25, gamma: float = 2.0) -> torch.Tensor:
    """Mean focal loss of logits (any shape) against 0/1 targets (same shape).

    FL = -alpha_t (1 - p_t)^gamma log(p_t), alpha_t = alpha for positives, 1 - alpha for negatives.
    ``gamma = 0`` and ``alpha = 0.5`` give half the binary cross-entropy.
    """
    targets = targets.to(logits.dtype)
    bce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    p = torch.sigmoid(logits)
    p_t = p * targets + (1 - p) * (1 - targets)
    alpha_t = alpha * targets + (1 - alpha) * (1 - targets)
    return (alpha_t * (1 - p_t) ** gamma * bce).mean()
