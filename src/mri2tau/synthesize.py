"""Synthetic tau PET from MRI with a trained generator (``results/models/<model>/model.pt``).

Spaces, units, scaling
----------------------
* Input: the template-space T1 (``T1_TEMPLATE``: N4, affine + SyN, brain-masked) and the
  template brain mask, both on the template grid (RAS+ voxel axes X = R, Y = A, Z = S).
* The T1 is scaled to [-1, 1] exactly as for training (:func:`mri2tau.data.slices.scale_t1`:
  brain percentiles, -1 outside the brain when ``mask_brain``), with the settings the model
  file carries (``info["data"]``: the slice/volume stage's meta) or, failing that, the config.
* 2D models run slice by slice: every axial slice of the padded ``grid`` cube that covers the
  template (or ``slice_range``, indices on the 256 reference grid as in the slice stage), in
  batches, display-oriented as in training. 3D models run on the volume box
  (:class:`mri2tau.data.geometry.VolumeGeometry`) with MONAI's sliding-window inferer (one window
  when the box equals the network's ``image_size``).
* Outputs (clipped to [-1, 1]) go back to standardized SUVR with the fixed SUVR window
  (:func:`mri2tau.data.slices.pet_from_unit`), 0 outside the brain when ``mask_brain``; then the
  by-manufacturer standardization is undone (the inverse of
  :func:`mri2tau.preprocess.harmonize.apply_map`) -> SUVR units. With
  ``harmonization.resolution_matching`` on, that SUVR stays at the matched resolution
  (``target_fwhm_mm``): the smoothing applied before standardization is not invertible.
* Written as NIfTI with the template's affine (``space-<TPL>``) and, through the inverse
  registration transforms (:func:`mri2tau.preprocess.registration.inverse_transforms`, linear
  interpolation), on the subject's native T1 grid (``space-T1w``).

Timing (``timing.tsv``): per session the generator's parameter count, seconds spent in the
network (``inference_s``, CUDA synchronised), the whole session (``total_s``), the process's peak resident memory (``peak_rss_mb``) and, on CUDA,
the peak allocated GPU memory (``peak_gpu_mb``).
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm import tqdm

from mri2tau.data.geometry import BACKGROUND, VolumeGeometry, volume_geometry
from mri2tau.data.slices import (
    REFERENCE_GRID,
    axial_slices,
    display_to_axial,
    from_grid,
    grid_offsets,
    pet_from_unit,
    read_splits,
    scale_t1,
    slice_positions,
    to_grid,
)
from mri2tau.errors import PipelineInputError
from mri2tau.io.atomic import atomic_path, write_tsv_atomic
from mri2tau.log import get_logger
from mri2tau.models.registry import count_parameters
from mri2tau.paths import TIMING_NAME, synth_name
from mri2tau.templates import TEMPLATE_NAME, template_grid

log = get_logger("synthesize")

STAGE = "synthesize"
TIMING_COLUMNS = ("model", "dims", "sub", "ses", "device", "n_parameters", "n_passes", "inference_s", "total_s",
                  "peak_rss_mb", "peak_gpu_mb")


# ---------------------------------------------------------------- settings
@dataclass(frozen=True)
class SynthSettings:
    """Config section ``synthesize`` (keys for models/resources are read by the workflow).

    batch_size: 2D slices per forward pass. slice_range: (first, last) axial indices on the 256
    reference grid (inclusive), or None for every slice covering the template.
    sw_overlap / sw_batch_size: MONAI sliding-window overlap and windows per pass (3D).
    device: ``auto`` (CUDA if available), ``cpu`` or ``cuda``. native_interpolation: ANTs
    interpolator for the template -> native resampling.
    """

    batch_size: int = 16
    slice_range: tuple[int, int] | None = None
    sw_overlap: float = 0.25
    sw_batch_size: int = 1
    device: str = "auto"
    native_interpolation: str = "linear"

    @classmethod
    def from_config(cls, section: dict[str, Any] | None) -> SynthSettings:
        """Pick this dataclass's keys out of the config section (lists become tuples)."""
        known = {k: tuple(v) if isinstance(v, list) else v
                 for k, v in (section or {}).items() if k in cls.__dataclass_fields__}
        return cls(**known)


@dataclass(frozen=True)
class ModelScaling:
    """How a model's inputs/outputs map to T1 and SUVR (from the model file's ``data`` meta).

    pet_window: SUVR mapped to [-1, 1]. t1_percentiles: brain percentiles mapped to -1 / 1.
    mask_brain: -1 (T1) / 0 SUVR (PET) outside the brain. grid: side of the padded cube (2D).
    geometry: the volume box on the template grid (3D).
    """

    pet_window: tuple[float, float]
    t1_percentiles: tuple[float, float]
    mask_brain: bool
    grid: int | None = None
    geometry: VolumeGeometry | None = None


@dataclass
class LoadedModel:
    """A generator in eval mode with its registry name, dimensionality, scaling and the model
    file's ``data`` meta (the slice/volume stage's settings)."""

    name: str
    dims: int
    generator: nn.Module
    hparams: dict[str, Any]
    scaling: ModelScaling
    device: torch.device
    data: dict[str, Any] = field(default_factory=dict)


def model_scaling(
    info: dict[str, Any], fallback: dict[str, Any], geometry: VolumeGeometry | None, path: str | Path | None = None,
) -> ModelScaling:
    """Scaling from the model file's (``path``) ``data`` meta, missing keys taken from ``fallback``
    (config section ``slices``). 3D: ``data["geometry"]`` if stored, else ``geometry``."""
    data = {**fallback, **(info.get("data") or {})}
    missing = [k for k in ("pet_window", "t1_percentiles") if k not in data]
    if missing:
        raise PipelineInputError(
            f"model file lacks the scaling settings {missing}", stage=STAGE, path=path,
            fix="retrain the model with the current pipeline, or pass the slices config section",
        )
    stored = data.get("geometry")
    if info["dims"] == 3:
        geometry = VolumeGeometry(**{k: tuple(v) for k, v in stored.items()}) if stored else geometry
        if geometry is None:
            raise PipelineInputError("3D model file stores no volume geometry", stage=STAGE, path=path,
                                     fix="pass the volumes config section (volume_geometry)")
    return ModelScaling(
        pet_window=tuple(float(v) for v in data["pet_window"]),  # type: ignore[arg-type]
        t1_percentiles=tuple(float(v) for v in data["t1_percentiles"]),  # type: ignore[arg-type]
        mask_brain=bool(data.get("mask_brain", True)),
        grid=int(data["grid"]) if info["dims"] == 2 else None,
        geometry=geometry if info["dims"] == 3 else None,
    )


def load_model(
    path: str | Path, device: str = "auto", fallback: dict[str, Any] | None = None,
    geometry: VolumeGeometry | None = None,
) -> LoadedModel:
    """Load a generator file (:func:`mri2tau.train.checkpoint.load_generator`) for inference."""
    from mri2tau.train.checkpoint import load_generator
    from mri2tau.train.loop import resolve_device

    dev = resolve_device(device)
    generator, info = load_generator(path, dev)
    scaling = model_scaling(info, fallback or {}, geometry, path)
    log.info("model %s (%dD) from %s on %s; scaling %s", info["model"], info["dims"], path, dev, scaling)
    return LoadedModel(info["model"], int(info["dims"]), generator, dict(info["hparams"]), scaling, dev,
                       dict(info.get("data") or {}))


# ---------------------------------------------------------------- inference
def _forward(generator: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Generator output clipped to [-1, 1] (VQGAN-family generators return ``(pet, vq_loss)``)."""
    out = generator(x)
    if isinstance(out, (tuple, list)):
        out = out[0]
    return out.float().clamp(-1.0, 1.0)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def t1_to_unit(t1: np.ndarray, brain: np.ndarray, scaling: ModelScaling) -> np.ndarray:
    """Template-grid T1 -> [-1, 1] as in training (-1 outside the brain when ``mask_brain``)."""
    unit = scale_t1(t1, brain, scaling.t1_percentiles)
    if scaling.mask_brain:
        unit[~brain] = BACKGROUND
    return unit


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


def unit_to_suvr(pet_unit: np.ndarray, brain: np.ndarray, scaling: ModelScaling) -> np.ndarray:
    """PET in [-1, 1] -> standardized SUVR (template grid); 0 outside the brain when ``mask_brain``."""
    suvr = pet_from_unit(pet_unit, scaling.pet_window)
    if scaling.mask_brain:
        suvr[~brain] = 0.0
    return suvr


def destandardize(suvr_std: np.ndarray, brain: np.ndarray, scale: float, offset: float) -> np.ndarray:
    """Undo the by-manufacturer map ``x' = scale * x + offset`` inside ``brain`` (SUVR units)."""
    from mri2tau.preprocess.harmonize import apply_map

    return apply_map(suvr_std, brain, 1.0 / scale, -offset / scale)


def template_to_native(
    volume: np.ndarray, template_affine: np.ndarray, native: nib.Nifti1Image, xfm_affine: str | Path,
    xfm_invwarp: str | Path, interpolation: str = "linear",
) -> np.ndarray:
    """Resample a template-grid volume onto the native T1 grid through the inverse transforms."""
    import ants

    from mri2tau.preprocess.mri import to_ants
    from mri2tau.preprocess.registration import inverse_transforms

    transforms, invert = inverse_transforms(xfm_affine, xfm_invwarp)
    moved = ants.apply_transforms(
        fixed=to_ants(nib.Nifti1Image(np.asarray(native.dataobj, np.float32).squeeze(), native.affine)),
        moving=to_ants(nib.Nifti1Image(volume.astype(np.float32), template_affine)),
        transformlist=transforms, whichtoinvert=invert, interpolator=interpolation,
    )
    return moved.numpy().astype(np.float32)


def save_nifti(data: np.ndarray, affine: np.ndarray, path: str | Path) -> None:
    """Write a float32 SUVR volume atomically (mm units)."""
    img = nib.Nifti1Image(np.asarray(data, np.float32), affine)
    img.header.set_xyzt_units("mm")
    img.header["descrip"] = b"mri2tau synthetic tau PET, SUVR"
    with atomic_path(path) as tmp:
        nib.save(img, tmp)


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (MB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


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


# ---------------------------------------------------------------- the rule
def _subject_map(params: dict | None, manufacturer: str, subject: str, on_unknown: str) -> tuple[float, float]:
    if params is None:
        return 1.0, 0.0
    from mri2tau.preprocess.harmonize import subject_map

    return subject_map(params, manufacturer, subject=subject, on_unknown=on_unknown)


def load_grid_image(
    path: str | Path, what: str, subject: str, shape: Sequence[int], affine: np.ndarray,
    stage: str = STAGE, fix: str = "rerun the mri/pet stages with the configured template.resolution_mm",
) -> nib.Nifti1Image:
    """A NIfTI that must exist and lie on the template grid (``shape``, ``affine``)."""
    path = Path(path)
    if not path.is_file():
        raise PipelineInputError(f"{what} is missing", subject=subject, stage=stage, path=path, fix=fix)
    img = nib.load(path)
    if img.shape[:3] != tuple(shape) or not np.allclose(img.affine, affine, atol=1e-3):
        raise PipelineInputError(f"{what} is not on the template grid ({img.shape} vs {tuple(shape)})",
                                 subject=subject, stage=stage, path=path, fix=fix)
    return img


def synthesize_model(
    *,
    model_file: str | Path,
    splits: str | Path,
    t1_pattern: str,
    mask_pattern: str,
    t1w_pattern: str | None,
    affine_pattern: str | None,
    invwarp_pattern: str | None,
    harmonization: str | Path | None,
    out_dir: str | Path,
    resolution_mm: float,
    settings: dict[str, Any],
    slices_config: dict[str, Any],
    volumes_config: dict[str, Any],
    on_unknown_manufacturer: str = "error",
    template_mask_path: str | None = None,
    threads: int | None = None,
) -> pd.DataFrame:
    """Rule ``synthesize``: every test session of ``splits`` -> ``out_dir`` (template + native
    SUVR NIfTIs and ``timing.tsv``). Patterns: the shared path patterns with ``{sub}``/``{ses}``
    (T1_TEMPLATE, BRAIN_MASK_TEMPLATE, T1W, XFM_AFFINE, XFM_INVWARP); ``t1w_pattern`` None writes
    the template-space volumes only (in-process benchmarks). Returns the timing table."""
    import json

    if threads:
        torch.set_num_threads(int(threads))
    cfg = SynthSettings.from_config(settings)
    geometry = volume_geometry(volumes_config, resolution_mm, template_mask_path)
    model = load_model(model_file, cfg.device, slices_config, geometry)
    shape, affine = template_grid(resolution_mm)
    params = json.loads(Path(harmonization).read_text()) if harmonization else None
    table = read_splits(splits)
    test = table[table["split"] == "test"].sort_values(["sub", "ses"])
    if test.empty:
        raise PipelineInputError("no test session in the split table", stage=STAGE, path=splits,
                                 fix="set split.test_fraction > 0 and rerun the split rule")
    out_dir = Path(out_dir)
    rows = []
    for row in tqdm(list(test.itertuples()), desc=f"synthesize {model.name}", disable=None):
        label = f"sub-{row.sub}_ses-{row.ses}"
        fmt = {"sub": row.sub, "ses": row.ses}
        start = time.perf_counter()
        t1_img = load_grid_image(t1_pattern.format(**fmt), "template-space T1", label, shape, affine)
        brain = np.asarray(load_grid_image(mask_pattern.format(**fmt), "brain mask", label, shape, affine).dataobj) > 0
        scale_offset = _subject_map(params, row.manufacturer, label, on_unknown_manufacturer)
        suvr, timing = synthesize_suvr(model, t1_img, brain, cfg, scale_offset)
        save_nifti(suvr, affine, out_dir / synth_name(row.sub, row.ses, TEMPLATE_NAME))
        if t1w_pattern is not None:
            native = nib.load(t1w_pattern.format(**fmt))
            native_suvr = template_to_native(suvr, affine, native, affine_pattern.format(**fmt),
                                             invwarp_pattern.format(**fmt), cfg.native_interpolation)
            save_nifti(native_suvr, native.affine, out_dir / synth_name(row.sub, row.ses, "T1w"))
        rows.append({"model": model.name, "dims": model.dims, "sub": row.sub, "ses": row.ses,
                     "device": model.device.type,
                     "n_parameters": count_parameters(model.generator), **timing,
                     "total_s": time.perf_counter() - start, "peak_rss_mb": peak_rss_mb()})
        log.info("%s: %s, %d passes, %.2f s inference", label, model.name, timing["n_passes"], timing["inference_s"])
    frame = pd.DataFrame(rows, columns=list(TIMING_COLUMNS))
    write_tsv_atomic(out_dir / TIMING_NAME, frame)
    return frame


# ---------------------------------------------------------------- one new scan (CLI)
def infer_resolution(model: LoadedModel) -> float:
    """Template resolution (mm) the model was trained at: stored ``resolution_mm``; else the 3D
    box's template grid; else the slice grid spanning the paper's 256 mm (256 / grid)."""
    if "resolution_mm" in model.data:
        return float(model.data["resolution_mm"])
    if model.dims == 3 and model.scaling.geometry is not None:
        for res in (1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 8.0):
            if template_grid(res)[0] == tuple(model.scaling.geometry.template_shape):
                return res
    return REFERENCE_GRID / float(model.scaling.grid or REFERENCE_GRID)


def synthesize_scan(
    t1: str | Path,
    model_file: str | Path,
    out: str | Path,
    *,
    manufacturer: str | None = None,
    harmonization: str | Path | None = None,
    resolution_mm: float | None = None,
    registration: dict[str, Any] | None = None,
    out_template: str | Path | None = None,
    settings: SynthSettings = SynthSettings(),
    progress: bool = True,
) -> Path:
    """A new T1 (native NIfTI) -> synthetic tau SUVR on the same native grid, without Snakemake.

    Steps: N4, affine + SyN to the template and brain mask (the MRI stage's
    :func:`mri2tau.preprocess.mri.preprocess_t1`), inference, back to native space. With
    ``manufacturer`` and ``harmonization`` (the training run's ``harmonization.json``) the
    standardization is undone; without them the output stays on the pooled standardized scale.
    """
    import json

    from mri2tau.preprocess.mri import preprocess_t1

    if (manufacturer is None) != (harmonization is None):
        raise PipelineInputError("--manufacturer and --harmonization go together", stage=STAGE,
                                 fix="pass both (the scanner maker and the training run's harmonization.json) "
                                     "or neither")
    t1, out = Path(t1), Path(out)
    label = t1.name.split(".")[0]
    steps = tqdm(total=4, desc="mri2tau synthesize", disable=not progress)
    steps.set_postfix_str("loading model")
    model = load_model(model_file, settings.device)
    res = float(resolution_mm or infer_resolution(model))
    scale_offset = (1.0, 0.0)
    if harmonization is not None:
        params = json.loads(Path(harmonization).read_text())
        scale_offset = _subject_map(params, manufacturer, label, "error")
    else:
        log.warning("no --manufacturer/--harmonization: output is standardized SUVR (pooled training scale)")
    steps.update()
    with tempfile.TemporaryDirectory(prefix="mri2tau_synth_") as wd:
        w = Path(wd)
        steps.set_postfix_str(f"N4 + registration to the {res:g} mm template")
        preprocess_t1(
            t1=t1, subject=label, session="scan", resolution_mm=res, registration=registration or {},
            t1_n4=w / "n4.nii.gz", t1_template=w / "t1_template.nii.gz", t1_template_json=w / "t1_template.json",
            brain_mask_template=w / "mask_template.nii.gz", brain_mask_native=w / "mask_native.nii.gz",
            xfm_affine=w / "affine.mat", xfm_warp=w / "warp.nii.gz", xfm_invwarp=w / "invwarp.nii.gz",
            qc_tsv=w / "qc.tsv", qc_png=w / "qc.png",
        )
        steps.update()
        steps.set_postfix_str("inference")
        t1_template = nib.load(w / "t1_template.nii.gz")
        brain = np.asarray(nib.load(w / "mask_template.nii.gz").dataobj) > 0
        suvr, timing = synthesize_suvr(model, t1_template, brain, settings, scale_offset)
        log.info("%s: inference %.2f s (%d passes)", label, timing["inference_s"], timing["n_passes"])
        steps.update()
        steps.set_postfix_str("back to native space")
        native = nib.load(t1)
        native_suvr = template_to_native(suvr, t1_template.affine, native, w / "affine.mat", w / "invwarp.nii.gz",
                                         settings.native_interpolation)
        save_nifti(native_suvr.reshape(native.shape[:3]), native.affine, out)
        if out_template is not None:
            save_nifti(suvr, t1_template.affine, out_template)
        steps.update()
    steps.close()
    return out


def _cli(args: argparse.Namespace) -> int:
    registration = None
    if args.config:
        from mri2tau.config import load_config

        registration = load_config(args.config).get("registration")
    settings = SynthSettings(batch_size=args.batch_size, device=args.device)
    torch.set_num_threads(max(int(args.threads), 1))
    out = synthesize_scan(
        args.t1, args.model, args.out, manufacturer=args.manufacturer, harmonization=args.harmonization,
        resolution_mm=args.resolution_mm, registration=registration, out_template=args.out_template,
        settings=settings,
    )
    print(out)
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """``mri2tau synthesize --t1 T1.nii.gz --model CKPT --out PET.nii.gz [...]``."""
    p = subparsers.add_parser(
        "synthesize", help="synthetic tau SUVR PET for one T1 (N4, registration, inference, native space)",
        description=synthesize_scan.__doc__.splitlines()[0],
    )
    p.add_argument("--t1", required=True, help="T1-weighted NIfTI (native space, skull on)")
    p.add_argument("--model", required=True, help="generator file: results/models/<model>/model.pt (or best.pt)")
    p.add_argument("--out", required=True, help="output SUVR NIfTI on the T1's grid")
    p.add_argument("--out-template", help="also write the template-space SUVR here")
    p.add_argument("--manufacturer", help="scanner manufacturer whose standardization to undo (e.g. Siemens)")
    p.add_argument("--harmonization", help="harmonization.json of the training run (with --manufacturer)")
    p.add_argument("--resolution-mm", type=float, help="template resolution the model was trained at "
                   "(default: stored in the model file, else inferred)")
    p.add_argument("--config", help="config.yaml whose `registration` section to use (default: built-in)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda (default auto)")
    p.add_argument("--batch-size", type=int, default=16, help="2D slices per forward pass (default 16)")
    p.add_argument("--threads", type=int, default=1, help="CPU threads for torch (default 1)")
    p.set_defaults(func=_cli)
