"""CN vs MCI/AD slice classifier of the MCR-VQGAN paper (SPEC §4).

Five conv blocks (16, 32, 64, 128, 256 channels), each two 3x3 conv + BatchNorm + ReLU, with
2x2 max-pooling after the first four; global average pooling; FC 256 -> 128 -> 64 -> 1 with
dropout 0.5. Input (B, 1, H, W) PET slices scaled to [-1, 1]; output (B,) logits
(positive = MCI/AD).
"""

from __future__ import annotations

import torch
from torch import nn


class ConvBlock(nn.Module):
    """Two 3x3 conv + BN + ReLU: (B, C_in, H, W) -> (B, C_out, H, W)."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        layers = []
        for c_in in (in_channels, out_channels):
            layers += [nn.Conv2d(c_in, out_channels, 3, padding=1, bias=False), nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True)]
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class SliceClassifier(nn.Module):
    """5-block CNN -> one logit per slice."""

    def __init__(self, channels: tuple[int, ...] = (16, 32, 64, 128, 256), hidden: tuple[int, ...] = (128, 64), dropout: float = 0.5) -> None:
        super().__init__()
        blocks: list[nn.Module] = []
        c_in = 1
        for i, c in enumerate(channels):
            blocks.append(ConvBlock(c_in, c))
            if i < len(channels) - 1:
                blocks.append(nn.MaxPool2d(2))
            c_in = c
        self.features = nn.Sequential(*blocks, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        head: list[nn.Module] = []
        for h in hidden:
            head += [nn.Linear(c_in, h), nn.ReLU(inplace=True), nn.Dropout(dropout)]
            c_in = h
        head.append(nn.Linear(c_in, 1))
        self.head = nn.Sequential(*head)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x)).squeeze(1)
