"""Checkpoints: atomic saves, RNG state capture, and the final generator file synthesis loads.

Two formats, both ``torch.save`` dicts loadable with ``weights_only=True``:

* training checkpoint (``last.pt``): everything :func:`mri2tau.train.loop.fit` needs to resume
  exactly (networks, optimizers, schedulers, grad scalers, RNG states, epoch, step, best), and the
  :func:`data_key` of the data it was trained on (a rerun on other data starts afresh).
* generator file (``model.pt``, ``best.pt``): ``{"format", "model", "family", "dims",
  "hparams", "state_dict", "epoch", "data"}``: the MRI -> PET generator's weights, its
  registry name and hyper-parameters (to rebuild it) and the slice stage's settings
  (``data``: grid, SUVR window, T1 percentiles) needed to map outputs back to SUVR.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from mri2tau.errors import PipelineInputError
from mri2tau.io.atomic import atomic_path
from mri2tau.models import registry

GENERATOR_FORMAT = "mri2tau-generator/1"
CHUNK_BYTES = 1 << 24  # arrays are hashed in ~16 MB pieces (memory-mapped sets stay on disk)


def data_key(arrays: Sequence[np.ndarray], *selections: Sequence[int]) -> str:
    """SHA-256 over the training arrays' shapes, dtypes and bytes and the selected row indices.

    Stored in ``last.pt``: a rerun resumes only on identical data (new subjects, another
    reference region or slice set re-trains from scratch instead of finishing a stale run).
    """
    digest = hashlib.sha256()
    for array in arrays:
        digest.update(f"{array.shape}{array.dtype.str}".encode())
        rows = max(1, CHUNK_BYTES // max(1, array[:1].nbytes))
        for start in range(0, len(array), rows):
            digest.update(np.ascontiguousarray(array[start:start + rows]).data)
    for selection in selections:
        digest.update(np.asarray(selection, dtype=np.int64).tobytes() + b"|")
    return digest.hexdigest()


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> None:
    """``torch.save(state)`` to ``path`` atomically: a crash mid-save leaves the old file intact."""
    with atomic_path(path, suffix=".pt") as tmp:
        torch.save(state, tmp)


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint written by :func:`save_checkpoint` (tensors, numbers, strings only)."""
    return torch.load(path, map_location=map_location, weights_only=True)


def rng_state() -> dict[str, Any]:
    """RNG states of torch (CPU and every CUDA device), numpy and ``random`` (weights-only safe)."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "gauss": float(gauss)},
        "random": {"version": version, "internal": list(internal), "gauss_next": gauss_next},
    }


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` captured (CUDA states only if the devices exist)."""
    torch.set_rng_state(state["torch"].cpu())
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])
    npy = state["numpy"]
    np.random.set_state((npy["kind"], npy["keys"].numpy().astype(np.uint32), npy["pos"], npy["has_gauss"], npy["gauss"]))
    rnd = state["random"]
    random.setstate((rnd["version"], tuple(rnd["internal"]), rnd["gauss_next"]))


def cpu_state_dict(module: nn.Module) -> dict[str, torch.Tensor]:
    """``module.state_dict()`` as contiguous CPU tensors (independent of device/memory format)."""
    return {key: value.detach().cpu().contiguous() for key, value in module.state_dict().items()}


def save_generator(
    path: str | Path,
    generator: nn.Module,
    model: str,
    hparams: dict[str, Any],
    epoch: int,
    data: dict[str, Any] | None = None,
) -> None:
    """Write the generator file (see module docstring) atomically."""
    spec = registry.get(model)
    save_checkpoint(path, {
        "format": GENERATOR_FORMAT,
        "model": model,
        "family": spec.family,
        "dims": spec.dims,
        "hparams": hparams,
        "state_dict": cpu_state_dict(generator),
        "epoch": int(epoch),
        "data": data or {},
    })


def load_generator(path: str | Path, device: str | torch.device = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the MRI -> PET generator of a generator file, in eval mode on ``device``.

    Returns ``(generator, info)``; ``info`` is the file's dict without ``state_dict``. The
    generator maps (B, 1, H, W) (2D) or (B, 1, X, Y, Z) (3D) MRI in [-1, 1] to PET in [-1, 1];
    VQGAN-family generators return ``(pet, vq_loss)``.
    """
    path = Path(path)
    if not path.is_file():
        raise PipelineInputError("model file is missing", stage="synthesize", path=path,
                                 fix="train the model first (snakemake results/models/<model>/model.pt)")
    saved = load_checkpoint(path)
    if saved.get("format") != GENERATOR_FORMAT:
        raise PipelineInputError(
            f"not an mri2tau generator file (format {saved.get('format')!r}, expected {GENERATOR_FORMAT!r})",
            stage="synthesize", path=path, fix="pass results/models/<model>/model.pt (or best.pt), not last.pt",
        )
    generator = registry.get(saved["model"]).build(saved["hparams"])["generator"]
    generator.load_state_dict(saved.pop("state_dict"))
    return generator.to(device).eval(), saved
