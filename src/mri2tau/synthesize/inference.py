"""Inference: template-grid T1 in [-1, 1] -> PET in [-1, 1] with a 2D (slice by slice) or 3D
(sliding window) generator, and one session T1 -> synthetic SUVR with timing."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence

import nibabel as nib
import numpy as np
import torch
from torch import nn

from mri2tau.data.geometry import BACKGROUND
from mri2tau.data.slices import axial_slices, display_to_axial, from_grid, grid_offsets, slice_positions, to_grid
from mri2tau.synthesize.loading import LoadedModel, SynthSettings
from mri2tau.synthesize.spaces import destandardize, t1_to_unit, unit_to_suvr


def _forward(generator: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Generator output clipped to [-1, 1] (VQGAN-family generators return ``(pet, vq_loss)``)."""
    out = generator(x)
    if isinstance(out, (tuple, list)):
        out = out[0]
    return out.float().clamp(-1.0, 1.0)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def axial_indices(template_shape: Sequence[int], grid: int, slice_range: tuple[int, int] | None) -> list[int]:
    """Axial indices of the ``grid`` cube that hold template voxels (within ``slice_range``,
    given on the 256 reference grid, when set)."""
    offset = grid_offsets(template_shape, grid)[2]
    covered = set(range(max(offset, 0), min(offset + template_shape[2], grid)))
    if slice_range is not None:
        first, last = slice_range
        covered &= set(slice_positions(grid, range(first, last + 1)))
    return sorted(covered)


def _chunks(items: Sequence[int], size: int) -> Iterator[list[int]]:
    for start in range(0, len(items), size):
        yield list(items[start : start + size])


@torch.no_grad()
def infer_2d(model: LoadedModel, t1_unit: np.ndarray, settings: SynthSettings) -> tuple[np.ndarray, int]:
    """2D model over axial slices: template-grid T1 in [-1, 1] -> PET in [-1, 1] (same grid).

    Returns (PET, number of forward passes). Slices not run are background (-1).
    """
    grid = model.scaling.grid
    cube = to_grid(t1_unit - BACKGROUND, grid) + BACKGROUND
    out = np.full(cube.shape, BACKGROUND, np.float32)
    positions = axial_indices(t1_unit.shape, grid, settings.slice_range)
    passes = 0
    for batch in _chunks(positions, max(int(settings.batch_size), 1)):
        x = torch.from_numpy(axial_slices(cube, batch)[:, None]).to(model.device)
        y = _forward(model.generator, x)[:, 0].cpu().numpy()
        out[:, :, batch] = np.moveaxis(display_to_axial(y), 0, -1)
        passes += 1
    return from_grid(out - BACKGROUND, t1_unit.shape) + BACKGROUND, passes


@torch.no_grad()
def infer_3d(model: LoadedModel, t1_unit: np.ndarray, settings: SynthSettings) -> tuple[np.ndarray, int]:
    """3D model on the volume box (sliding window of the network's ``image_size``):
    template-grid T1 in [-1, 1] -> PET in [-1, 1]. Returns (PET, number of windows)."""
    from monai.inferers import sliding_window_inference

    geometry = model.scaling.geometry
    box = geometry.to_network(t1_unit, fill=BACKGROUND)
    roi = tuple(int(n) for n in model.hparams.get("image_size", geometry.shape))
    x = torch.from_numpy(np.ascontiguousarray(box))[None, None].to(model.device)
    windows = 0

    def predictor(patch: torch.Tensor) -> torch.Tensor:
        nonlocal windows
        windows += 1
        return _forward(model.generator, patch)

    y = sliding_window_inference(x, roi, int(settings.sw_batch_size), predictor, overlap=float(settings.sw_overlap),
                                 mode="gaussian", padding_mode="constant", cval=BACKGROUND)
    pet_box = torch.as_tensor(y)[0, 0].float().clamp(-1.0, 1.0).cpu().numpy()
    return geometry.to_template(pet_box, fill=BACKGROUND), windows


def synthesize_suvr(
    model: LoadedModel, t1_template: nib.Nifti1Image, brain: np.ndarray, settings: SynthSettings,
    scale_offset: tuple[float, float] = (1.0, 0.0),
) -> tuple[np.ndarray, dict[str, float]]:
    """One T1 (template grid) -> synthetic SUVR (template grid) and timing (``n_passes``,
    ``inference_s``, ``peak_gpu_mb``). ``scale_offset``: the subject's standardization map."""
    t1 = np.nan_to_num(np.asarray(t1_template.dataobj, np.float32))
    if t1.shape != brain.shape:
        raise ValueError(f"T1 grid {t1.shape} differs from the brain mask grid {brain.shape}")
    t1_unit = t1_to_unit(t1, brain, model.scaling)
    if model.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(model.device)
    _sync(model.device)
    start = time.perf_counter()
    infer = infer_2d if model.dims == 2 else infer_3d
    pet_unit, passes = infer(model, t1_unit, settings)
    _sync(model.device)
    seconds = time.perf_counter() - start
    gpu_mb = torch.cuda.max_memory_allocated(model.device) / 2**20 if model.device.type == "cuda" else float("nan")
    suvr = destandardize(unit_to_suvr(pet_unit, brain, model.scaling), brain, *scale_offset)
    return suvr, {"n_passes": passes, "inference_s": seconds, "peak_gpu_mb": gpu_mb}
