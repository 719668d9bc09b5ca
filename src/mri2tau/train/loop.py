"""The one training loop for every registered model (2D slices or 3D volumes).

:func:`fit` builds the model from the registry, gives each of its family's optimizer groups
(:mod:`mri2tau.train.steps`) an optimizer (AdamW or Adam, ``hp["optimizer"]``) and a per-epoch
cosine schedule, and runs epochs of :meth:`Family.train_step`. It writes into ``out_dir``:

* ``last.pt``   every epoch, atomically: the full training state. With ``resume`` a rerun whose
  model name and hyper-parameters match continues from it and ends bit-identical (on CPU with
  ``deterministic``) to an uninterrupted run: networks, optimizers, schedulers, grad scalers,
  RNG states (torch/CUDA/numpy/random), epoch and step are restored; the shuffling order is a
  pure function of (seed, epoch) (the loader's generator is re-seeded every epoch).
* ``best.pt``   generator file of the epoch with the lowest monitored L1 ([-1, 1] units):
  validation L1 when ``val_data`` is given, else the epoch's mean training L1 |G(mri) − pet|.
* ``model.pt``  generator file after the last epoch (what synthesis loads by default).
* ``metrics.csv`` one row per epoch (means of every loss the family reports, lr, seconds,
  monitored L1; rewritten from rows kept in ``last.pt``, so it survives a resume), and
  TensorBoard events in ``tensorboard/`` (per ``log_every`` steps and per epoch).
  A tqdm bar shows batches when stderr is a terminal (``progress_bar``).

On CUDA: autocast (``amp``: bf16 default, fp16 with GradScaler, or none), channels-last memory
format for 2D models, cuDNN benchmark unless ``deterministic``. On CPU everything runs in fp32.
"""

from __future__ import annotations

import contextlib
import json
import math
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from mri2tau.device import resolve_device
from mri2tau.io.atomic import atomic_path
from mri2tau.log import get_logger
from mri2tau.models import registry
from mri2tau.paths import BEST_MODEL_NAME, LAST_CHECKPOINT_NAME, METRICS_NAME, MODEL_NAME
from mri2tau.train.checkpoint import (
    load_checkpoint,
    rng_state,
    save_checkpoint,
    save_generator,
    set_rng_state,
)
from mri2tau.train.epoch import run_epoch, seed_everything
from mri2tau.train.steps import Family, StepContext, get_family

log = get_logger("train")

AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass(frozen=True)
class RunSettings:
    """How to run (not what to learn): config section ``train`` minus model lists.

    device: ``auto`` (CUDA if available), ``cpu`` or ``cuda``. amp: ``bf16``/``fp16``/``none``
    (CUDA only). deterministic: ``torch.use_deterministic_algorithms`` (exact resume on CPU).
    resume: continue from ``last.pt`` when it matches. log_every: steps between TensorBoard points.
    progress_bar: tqdm bar over batches (only when stderr is a terminal).
    max_steps_per_epoch: cap batches per epoch (smoke tests and benchmarks; None = all).
    threads: torch CPU threads (None: leave torch's default).
    """

    device: str = "auto"
    amp: str = "bf16"
    num_workers: int = 0
    seed: int = 0
    deterministic: bool = False
    resume: bool = True
    log_every: int = 50
    progress_bar: bool = True
    max_steps_per_epoch: int | None = None
    threads: int | None = None

    @classmethod
    def from_config(cls, section: dict[str, Any]) -> RunSettings:
        """Pick this dataclass's keys out of the ``train`` config section."""
        return cls(**{k: v for k, v in section.items() if k in cls.__dataclass_fields__})


# ---------------------------------------------------------------- set-up helpers
def make_optimizer(params: list[nn.Parameter], hp: dict[str, Any]) -> torch.optim.Optimizer:
    """AdamW (VQGANs; weight decay ``weight_decay``, default 0.01) or Adam (others), lr/betas from ``hp``."""
    kind = str(hp.get("optimizer", "adam")).lower()
    betas = tuple(hp.get("betas", (0.5, 0.999)))
    if kind == "adamw":
        return torch.optim.AdamW(params, lr=hp["lr"], betas=betas, weight_decay=hp.get("weight_decay", 0.01))
    if kind == "adam":
        return torch.optim.Adam(params, lr=hp["lr"], betas=betas, weight_decay=hp.get("weight_decay", 0.0))
    raise ValueError(f"hyper-parameter optimizer must be 'adamw' or 'adam', got {kind!r}")


def make_scheduler(optimizer: torch.optim.Optimizer, hp: dict[str, Any]) -> torch.optim.lr_scheduler.LRScheduler:
    """Per-epoch schedule: ``cosine`` annealing to 0 over ``epochs`` (default) or ``constant``."""
    kind = hp.get("scheduler", "cosine")
    if kind == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(int(hp["epochs"]), 1))
    if kind == "constant":
        return torch.optim.lr_scheduler.ConstantLR(optimizer, factor=1.0, total_iters=0)
    raise ValueError(f"hyper-parameter scheduler must be 'cosine' or 'constant', got {kind!r}")


def _autocast_factory(device: torch.device, amp: str) -> Callable[[], AbstractContextManager]:
    if device.type != "cuda" or amp == "none":
        return contextlib.nullcontext
    if amp not in AMP_DTYPES:
        raise ValueError(f"train.amp must be one of bf16, fp16, none; got {amp!r}")
    return lambda: torch.autocast("cuda", dtype=AMP_DTYPES[amp])


def _same_hparams(a: dict[str, Any], b: dict[str, Any]) -> bool:
    def canon(x: dict[str, Any]) -> str:
        return json.dumps(x, sort_keys=True, default=list)

    return canon(a) == canon(b)


def _memory_format(device: torch.device, dims: int) -> torch.memory_format:
    return torch.channels_last if device.type == "cuda" and dims == 2 else torch.contiguous_format


# ---------------------------------------------------------------- training parts
@dataclass
class TrainingParts:
    """Everything one optimisation step needs (built by :func:`build_parts`)."""

    nets: dict[str, nn.Module]
    family: Family
    optimizers: dict[str, torch.optim.Optimizer]
    schedulers: dict[str, torch.optim.lr_scheduler.LRScheduler]
    scalers: dict[str, torch.amp.GradScaler]
    autocast: Callable[[], AbstractContextManager]
    memory_format: torch.memory_format

    def context(self, progress: float, step: int) -> StepContext:
        """The :class:`StepContext` for one batch."""
        return StepContext(self.optimizers, self.scalers, self.autocast, progress, step)


def build_parts(model: str, hp: dict[str, Any], device: torch.device, amp: str = "bf16",
                extra_loss: nn.Module | None = None) -> TrainingParts:
    """Networks on ``device`` (channels-last for 2D on CUDA), the family step, one optimizer,
    cosine schedule and grad scaler per optimizer group, and the autocast factory."""
    spec = registry.get(model)
    fmt = _memory_format(device, spec.dims)
    nets = {k: v.to(device=device, memory_format=fmt) for k, v in spec.build(hp).items()}
    if extra_loss is not None:
        extra_loss = extra_loss.to(device)
    family = get_family(spec.family)(nets, hp, dims=spec.dims, extra_loss=extra_loss)
    optimizers = {
        group: make_optimizer([p for n in names for p in nets[n].parameters()], hp)
        for group, names in family.optimizer_groups.items()
    }
    use_scaler = device.type == "cuda" and amp == "fp16"
    return TrainingParts(
        nets=nets,
        family=family,
        optimizers=optimizers,
        schedulers={group: make_scheduler(opt, hp) for group, opt in optimizers.items()},
        scalers={group: torch.amp.GradScaler(device.type, enabled=use_scaler) for group in optimizers},
        autocast=_autocast_factory(device, amp),
        memory_format=fmt,
    )


# ---------------------------------------------------------------- state
@dataclass
class Progress:
    """Where training stands: completed epochs, global step, best monitored L1."""

    epoch: int = 0
    step: int = 0
    best: float = math.inf


def _training_state(
    model: str, hp: dict[str, Any], nets: dict[str, nn.Module], family: Family,
    optimizers: dict, schedulers: dict, scalers: dict, progress: Progress, metrics: list[dict[str, Any]],
    data_key: str | None,
) -> dict[str, Any]:
    return {
        "model": model,
        "hparams": hp,
        "data_key": data_key,
        "nets": {k: v.state_dict() for k, v in nets.items()},
        "optimizers": {k: v.state_dict() for k, v in optimizers.items()},
        "schedulers": {k: v.state_dict() for k, v in schedulers.items()},
        "scalers": {k: v.state_dict() for k, v in scalers.items()},
        "family": family.state_dict(),
        "progress": asdict(progress),
        "metrics": metrics,
        "rng": rng_state(),
    }


def _restore(state: dict[str, Any], nets: dict, family: Family, optimizers: dict, schedulers: dict,
             scalers: dict) -> Progress:
    for name, net in nets.items():
        net.load_state_dict(state["nets"][name])
    for group in optimizers:
        optimizers[group].load_state_dict(state["optimizers"][group])
        schedulers[group].load_state_dict(state["schedulers"][group])
        scalers[group].load_state_dict(state["scalers"][group])
    family.load_state_dict(state["family"])
    set_rng_state(state["rng"])
    return Progress(**state["progress"])


# ---------------------------------------------------------------- epoch pieces
def _loader(data: Dataset, batch_size: int, shuffle: bool, settings: RunSettings, device: torch.device,
            generator: torch.Generator) -> DataLoader:
    return DataLoader(
        data, batch_size=batch_size, shuffle=shuffle, generator=generator, num_workers=settings.num_workers,
        drop_last=shuffle and len(data) >= batch_size, pin_memory=device.type == "cuda",
        persistent_workers=False,
    )


def _to_device(batch: dict[str, torch.Tensor], device: torch.device, fmt: torch.memory_format) -> tuple:
    return tuple(batch[k].to(device, non_blocking=True, memory_format=fmt) for k in ("mri", "pet"))


@torch.no_grad()
def validation_l1(family: Family, loader: DataLoader, device: torch.device, fmt: torch.memory_format,
                  autocast: Callable[[], AbstractContextManager]) -> float:
    """Mean |G(mri) − pet| over ``loader`` (generator in eval mode; [-1, 1] units)."""
    gen = family.nets["generator"]
    was_training = gen.training
    gen.eval()
    total, count = 0.0, 0
    for batch in loader:
        mri, pet = _to_device(batch, device, fmt)
        with autocast():
            fake = family.generate(mri)
        total += (fake.float() - pet).abs().sum().item()
        count += pet.numel()
    gen.train(was_training)
    return total / max(count, 1)


# ---------------------------------------------------------------- the loop
def fit(
    model: str,
    hp: dict[str, Any],
    train_data: Dataset,
    out_dir: str | Path,
    settings: RunSettings = RunSettings(),
    val_data: Dataset | None = None,
    extra_loss: nn.Module | None = None,
    data_info: dict[str, Any] | None = None,
    data_key: str | None = None,
) -> Path:
    """Train registry model ``model`` with hyper-parameters ``hp``; return the path of ``model.pt``.

    ``train_data``/``val_data`` yield ``{"mri", "pet"}`` tensors (1, H, W) or (1, X, Y, Z).
    ``extra_loss``: optional extra generator term handed to the family (see
    :mod:`mri2tau.train.steps`: VGG perceptual for 2D, the 3D synthesis objective for 3D).
    ``data_info`` is stored in the generator files (e.g. the slice stage's meta); ``data_key``
    (:func:`mri2tau.train.checkpoint.data_key`) in ``last.pt``: resuming needs the same key.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    spec = registry.get(model)
    device = resolve_device(settings.device)
    seed_everything(settings.seed, settings.deterministic)
    if settings.threads:
        torch.set_num_threads(int(settings.threads))
    epochs, batch_size = int(hp["epochs"]), int(hp["batch_size"])

    parts = build_parts(model, hp, device, settings.amp, extra_loss)
    nets, family, optimizers, schedulers, scalers, autocast = (
        parts.nets, parts.family, parts.optimizers, parts.schedulers, parts.scalers, parts.autocast)
    fmt = parts.memory_format

    progress, rows = Progress(), []
    last = out_dir / LAST_CHECKPOINT_NAME
    if settings.resume and last.is_file():
        state = load_checkpoint(last, map_location=device)
        if state["model"] == model and _same_hparams(state["hparams"], hp) and state.get("data_key") == data_key:
            progress = _restore(state, nets, family, optimizers, schedulers, scalers)
            rows = list(state["metrics"])
            log.info("%s: resuming after epoch %d (step %d) from %s", model, progress.epoch, progress.step, last)
        else:
            log.warning("%s: %s belongs to other hyper-parameters or other training data; starting afresh",
                        model, last)
        del state

    loader_gen = torch.Generator()
    train_loader = _loader(train_data, batch_size, True, settings, device, loader_gen)
    val_loader = (_loader(val_data, batch_size, False, settings, device, torch.Generator())
                  if val_data is not None and len(val_data) else None)
    n_batches = len(train_loader) if settings.max_steps_per_epoch is None else min(
        len(train_loader), settings.max_steps_per_epoch)
    if n_batches == 0:
        raise ValueError(f"{model}: no training batches ({len(train_data)} samples, batch size {batch_size})")
    metrics_path = out_dir / METRICS_NAME
    writer = _summary_writer(out_dir / "tensorboard", purge_step=progress.step if progress.epoch else None)
    log.info("%s: %s family, %d epochs x %d batches of %d on %s (amp %s)", model, spec.family, epochs,
             n_batches, batch_size, device, settings.amp if device.type == "cuda" else "off")

    def train_batch(batch: dict[str, torch.Tensor], i: int) -> tuple[dict[str, torch.Tensor], int]:
        mri, pet = _to_device(batch, device, fmt)
        losses = family.train_step(mri, pet, parts.context((epoch + i / n_batches) / epochs, progress.step))
        if settings.log_every and progress.step % settings.log_every == 0:
            for key, value in losses.items():
                writer.add_scalar(f"step/{key}", float(value), progress.step)
        progress.step += 1
        return losses, 1

    for epoch in range(progress.epoch, epochs):
        start = time.perf_counter()
        loader_gen.manual_seed(settings.seed * 100003 + epoch)
        schedule_info = family.set_epoch(epoch)
        for net in nets.values():
            net.train()
        bar = tqdm(train_loader, total=n_batches, desc=f"{model} {epoch + 1}/{epochs}", leave=False,
                   disable=None if settings.progress_bar else True, mininterval=5.0)
        means = run_epoch(bar, train_batch, n_batches)
        bar.close()
        lr = optimizers["generator"].param_groups[0]["lr"]
        for group in family.stepped_groups():
            schedulers[group].step()
        val_l1 = validation_l1(family, val_loader, device, fmt, autocast) if val_loader is not None else None
        monitored = val_l1 if val_l1 is not None else means["l1"]
        progress.epoch = epoch + 1
        if monitored < progress.best:
            progress.best = monitored
            save_generator(out_dir / BEST_MODEL_NAME, nets["generator"], model, hp, progress.epoch, data_info)
        row = {"epoch": progress.epoch, "step": progress.step, "lr": lr, **means,
               "val_l1": val_l1, "monitored_l1": monitored, "best_l1": progress.best,
               "seconds": time.perf_counter() - start, **schedule_info}
        rows.append(row)
        save_checkpoint(last, _training_state(model, hp, nets, family, optimizers, schedulers, scalers, progress, rows,
                                              data_key))
        _write_metrics(metrics_path, rows)
        for key, value in row.items():
            if isinstance(value, (int, float)) and key != "epoch":
                writer.add_scalar(f"epoch/{key}", value, progress.step)
        log.info("%s epoch %d/%d: %s", model, progress.epoch, epochs,
                 ", ".join(f"{k} {v:.4g}" for k, v in row.items() if isinstance(v, float)))
    writer.close()
    final = out_dir / MODEL_NAME
    save_generator(final, nets["generator"], model, hp, progress.epoch, data_info)
    if not metrics_path.is_file():
        _write_metrics(metrics_path, rows)
    return final


def _write_metrics(path: Path, rows: list[dict[str, Any]]) -> None:
    """Rewrite the per-epoch metrics table (comma-separated) atomically."""
    with atomic_path(path) as tmp:
        pd.DataFrame(rows).to_csv(tmp, index=False)


def _summary_writer(log_dir: Path, purge_step: int | None):
    from torch.utils.tensorboard import SummaryWriter

    return SummaryWriter(str(log_dir), purge_step=purge_step)
