"""Which torch device a stage runs on (training, synthesis, the classifier, benchmarks)."""

from __future__ import annotations

import torch


def resolve_device(name: str) -> torch.device:
    """``auto`` -> CUDA when available else CPU; ``cuda`` without a GPU is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"device is {name!r} but no CUDA device is available; use 'auto' or 'cpu'")
    return torch.device(name)
