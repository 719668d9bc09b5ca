"""Axial slice sets from template-space T1 and standardized SUVR volumes (SPEC §3).

Geometry
--------
Template volumes are RAS+ arrays ``vol[x, y, z]`` on the template grid
(:func:`mri2tau.templates.template_grid`). Each volume is centre padded (zeros) or centre
cropped to a cube of ``grid`` voxels (paper: 256, as the paper's 256x256x256); along each
axis the volume starts at ``(grid - n) // 2`` (negative: cropped).

Slice positions are indices on the padded z axis. The paper's 14 slices (76, 86, ..., 166
plus 124, 128, 130, 132) and the classifier's central 100 (76-175) are defined on a 256 grid;
on another grid, index ``i`` becomes ``floor(i * grid / 256 + 0.5)`` (round half up), and
positions that collapse onto the same index are kept once. The positions correspond
anatomically when the grid spans the paper's 256 mm (``grid * resolution_mm == 256``: 256 at
1 mm, 64 at 4 mm); otherwise they are the same *fraction* of the padded field of view.

Display orientation
-------------------
An axial slice ``vol[:, :, z]`` (X, Y) is stored as ``np.rot90(vol[:, :, z])`` (H = Y, W = X):
row 0 is the most anterior row, column 0 the subject's left (neurological convention, as
FSLeyes/nilearn show axial slices). :func:`display_to_axial` inverts it.

Intensities
-----------
T1 -> [-1, 1] by robust per-subject percentiles inside the brain mask (default 0.5 / 99.5),
clipped. SUVR -> [-1, 1] by a fixed window (default [0, 3.5] SUVR), clipped. With
``mask_brain`` (paper: a binary brain mask is applied to the images) voxels outside the mask
are -1 in both. :func:`pet_from_unit` maps model outputs back to SUVR.

Storage
-------
One ``.npz`` per split and slice set (uncompressed, so :func:`mri2tau.data.datasets.open_slices`
can memory-map it): ``mri`` and ``pet`` (N, 1, H, W) float16/float32 in [-1, 1] and ``meta``
(a JSON string with the settings above), plus an index TSV with one row per slice:
``sub, ses, slice, diagnosis, dx_group, manufacturer`` (``slice`` = z index on the grid).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd

from mri2tau.errors import PipelineInputError
from mri2tau.io.atomic import atomic_path, write_tsv_atomic
from mri2tau.log import get_logger
from mri2tau.paths import index_name, slice_set_name, slice_set_stem

log = get_logger("slices")

STAGE = "slices"
REFERENCE_GRID = 256
#: The MCR-VQGAN paper's 14 axial slice indices on a 256 grid (every 10th of 76-166, plus 4).
PAPER_POSITIONS = (76, 86, 96, 106, 116, 126, 136, 146, 156, 166, 124, 128, 130, 132)
#: First and last (inclusive) of the central 100 axial slices on a 256 grid (classifier).
CENTRAL_RANGE = (76, 175)
INDEX_COLUMNS = ("sub", "ses", "slice", "diagnosis", "dx_group", "manufacturer")
SPLIT_COLUMNS = ("sub", "ses", "dx", "dx_group", "manufacturer", "split")


@dataclass(frozen=True)
class SliceConfig:
    """Settings of the slice stage (config section ``slices``).

    grid: side of the padded cube (voxels); paper 256.
    positions: axial indices on a 256 grid for the training set (paper's 14).
    central: first/last axial index (inclusive, 256 grid) of the classifier set.
    pet_window: SUVR mapped to [-1, 1] (lower, upper), clipped.
    t1_percentiles: per-subject brain percentiles mapped to -1 and 1.
    mask_brain: set voxels outside the brain mask to -1 in T1 and PET.
    dtype: storage dtype, ``float16`` or ``float32``.
    """

    grid: int = REFERENCE_GRID
    positions: tuple[int, ...] = PAPER_POSITIONS
    central: tuple[int, int] = CENTRAL_RANGE
    pet_window: tuple[float, float] = (0.0, 3.5)
    t1_percentiles: tuple[float, float] = (0.5, 99.5)
    mask_brain: bool = True
    dtype: str = "float16"
    splits: tuple[str, ...] = field(default=("train", "test"))

    @classmethod
    def from_config(cls, section: dict) -> SliceConfig:
        """Build from the ``slices`` config section (lists become tuples; resource keys ignored)."""
        return cls(**{key: tuple(value) if isinstance(value, list) else value
                      for key, value in section.items() if key in cls.__dataclass_fields__})


# ---------------------------------------------------------------- positions
def scale_position(index: int, grid: int) -> int:
    """Index ``index`` on the 256 grid -> the corresponding index on ``grid`` (round half up)."""
    return int(np.floor(index * grid / REFERENCE_GRID + 0.5))


def slice_positions(grid: int, positions: Sequence[int] = PAPER_POSITIONS) -> list[int]:
    """Sorted unique axial indices on ``grid`` for ``positions`` given on the 256 grid."""
    out = sorted({scale_position(i, grid) for i in positions})
    if out and (out[0] < 0 or out[-1] >= grid):
        raise ValueError(f"slice positions {out} fall outside a {grid} grid")
    return out


def central_positions(grid: int, central: Sequence[int] = CENTRAL_RANGE) -> list[int]:
    """Axial indices on ``grid`` spanning ``central`` (inclusive, 256 grid): 76..175 at 256."""
    first, last = central
    return slice_positions(grid, range(first, last + 1))


# ---------------------------------------------------------------- geometry
def grid_offsets(shape: Sequence[int], grid: int) -> tuple[int, int, int]:
    """Where the volume starts inside the ``grid`` cube per axis (negative: it is cropped)."""
    return tuple((grid - n) // 2 for n in shape)  # type: ignore[return-value]


def _overlap(shape: Sequence[int], grid: int) -> tuple[tuple[slice, ...], tuple[slice, ...]]:
    """Index ranges (in the volume, in the cube) of the voxels a volume and its grid cube share."""
    in_volume, in_cube = [], []
    for n, offset in zip(shape, grid_offsets(shape, grid)):
        lo, hi = max(offset, 0), min(offset + n, grid)
        in_cube.append(slice(lo, hi))
        in_volume.append(slice(lo - offset, hi - offset))
    return tuple(in_volume), tuple(in_cube)


def to_grid(volume: np.ndarray, grid: int) -> np.ndarray:
    """Centre pad (zeros) / crop a 3D template volume (X, Y, Z) to (grid, grid, grid)."""
    in_volume, in_cube = _overlap(volume.shape, grid)
    out = np.zeros((grid,) * 3, dtype=volume.dtype)
    out[in_cube] = volume[in_volume]
    return out


def from_grid(cube: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """Inverse of :func:`to_grid`: the (grid, grid, grid) cube back to template ``shape``
    (voxels cropped away by :func:`to_grid` come back as zeros)."""
    in_volume, in_cube = _overlap(shape, cube.shape[0])
    out = np.zeros(tuple(shape), dtype=cube.dtype)
    out[in_volume] = cube[in_cube]
    return out


def axial_to_display(axial: np.ndarray) -> np.ndarray:
    """(..., X, Y) axial slice(s) -> display (..., Y, X): anterior at top, left at left."""
    return np.rot90(axial, k=1, axes=(-2, -1))


def display_to_axial(display: np.ndarray) -> np.ndarray:
    """Inverse of :func:`axial_to_display`: (..., Y, X) -> (..., X, Y) = ``vol[:, :, z]``."""
    return np.rot90(display, k=-1, axes=(-2, -1))


def axial_slices(cube: np.ndarray, positions: Sequence[int]) -> np.ndarray:
    """(len(positions), H, W) display-oriented axial slices ``cube[:, :, z]`` of a grid cube."""
    return np.ascontiguousarray(axial_to_display(np.moveaxis(cube[:, :, list(positions)], -1, 0)))


# ---------------------------------------------------------------- intensities
def scale_t1(t1: np.ndarray, brain: np.ndarray, percentiles: Sequence[float] = (0.5, 99.5)) -> np.ndarray:
    """T1 (any units) -> [-1, 1]: the brain's ``percentiles`` map to -1 / 1, clipped (float32)."""
    if not brain.any():
        raise ValueError("the brain mask is empty")
    lo, hi = np.percentile(t1[brain], percentiles)
    if not hi > lo:
        raise ValueError(f"T1 has no contrast inside the brain (percentiles {lo:g} .. {hi:g})")
    return (np.clip((t1 - lo) / (hi - lo), 0.0, 1.0) * 2.0 - 1.0).astype(np.float32)


def pet_to_unit(suvr: np.ndarray, window: Sequence[float] = (0.0, 3.5)) -> np.ndarray:
    """SUVR -> [-1, 1] by the fixed ``window`` (lower, upper) SUVR, clipped (float32)."""
    lo, hi = window
    return (np.clip((suvr - lo) / (hi - lo), 0.0, 1.0) * 2.0 - 1.0).astype(np.float32)


def pet_from_unit(unit: np.ndarray, window: Sequence[float] = (0.0, 3.5)) -> np.ndarray:
    """Inverse of :func:`pet_to_unit` on [-1, 1] values: model output -> SUVR (float32)."""
    lo, hi = window
    return ((np.asarray(unit, dtype=np.float32) + 1.0) / 2.0 * (hi - lo) + lo).astype(np.float32)


# ---------------------------------------------------------------- splits
def read_splits(path: str | Path) -> pd.DataFrame:
    """Read ``splits.tsv`` (sub, ses, dx, dx_group, manufacturer, split; labels as strings)."""
    frame = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    missing = [c for c in SPLIT_COLUMNS if c not in frame.columns]
    if missing:
        raise PipelineInputError(
            f"split table lacks columns {missing}", stage=STAGE, path=path,
            fix="rerun the split rule (columns sub, ses, ptid, dx, dx_group, manufacturer, split)",
        )
    return frame


def check_disjoint_splits(splits: pd.DataFrame, path: str | Path | None = None) -> None:
    """Raise :class:`PipelineInputError` if any subject appears in more than one split."""
    n_splits = splits.groupby("sub")["split"].nunique()
    leaked = sorted(n_splits.index[n_splits > 1])
    if leaked:
        raise PipelineInputError(
            f"subject(s) {', '.join(leaked)} appear in more than one split (train/test leakage)",
            subject=leaked[0], stage=STAGE, path=path,
            fix="split by subject: every session of a subject must share one split; rerun the split rule",
        )


# ---------------------------------------------------------------- per session
def _load_ras(path: str | Path, what: str, subject: str) -> nib.Nifti1Image:
    path = Path(path)
    if not path.is_file():
        raise PipelineInputError(f"{what} is missing", subject=subject, stage=STAGE, path=path,
                                 fix="run the mri/pet stages for this session")
    img = nib.as_closest_canonical(nib.load(path))
    if img.ndim != 3:
        raise PipelineInputError(f"{what} must be a 3D volume, has shape {img.shape}", subject=subject,
                                 stage=STAGE, path=path, fix="rerun the preprocessing stage for this session")
    return img


def session_cubes(
    t1_path: str | Path, pet_path: str | Path, mask_path: str | Path, cfg: SliceConfig, subject: str
) -> tuple[np.ndarray, np.ndarray]:
    """One session's scaled (grid, grid, grid) T1 and PET cubes in [-1, 1] (RAS voxel axes)."""
    t1_img = _load_ras(t1_path, "template-space T1", subject)
    pet_img = _load_ras(pet_path, "standardized SUVR", subject)
    mask_img = _load_ras(mask_path, "template-space brain mask", subject)
    for img, path in ((pet_img, pet_path), (mask_img, mask_path)):
        if img.shape != t1_img.shape or not np.allclose(img.affine, t1_img.affine, atol=1e-3):
            raise PipelineInputError(
                f"not on the T1's template grid: shape {img.shape} vs {t1_img.shape}", subject=subject,
                stage=STAGE, path=path, fix="resample it to the template grid (rerun the pet/mri stage)",
            )
    t1 = np.nan_to_num(np.asarray(t1_img.dataobj, dtype=np.float32))
    pet = np.nan_to_num(np.asarray(pet_img.dataobj, dtype=np.float32))
    brain = np.asarray(mask_img.dataobj) > 0
    try:
        t1_unit = scale_t1(t1, brain, cfg.t1_percentiles)
    except ValueError as exc:
        raise PipelineInputError(str(exc), subject=subject, stage=STAGE, path=t1_path,
                                 fix="check the T1 and brain mask of this session") from exc
    pet_unit = pet_to_unit(pet, cfg.pet_window)
    if cfg.mask_brain:
        t1_unit[~brain] = -1.0
        pet_unit[~brain] = -1.0
    # pad with -1 (= background) so padding matches the scaled background
    return to_grid(t1_unit + 1.0, cfg.grid) - 1.0, to_grid(pet_unit + 1.0, cfg.grid) - 1.0


# ---------------------------------------------------------------- the stage
def warn_if_not_paper_field_of_view(t1_path: str | Path, grid: int) -> None:
    """Log a warning when ``grid`` x voxel size is not the paper's 256 mm (positions then do not
    fall on the paper's anatomy, only on the same fraction of the padded field of view)."""
    voxel_mm = float(nib.load(t1_path).header.get_zooms()[2])
    if abs(grid * voxel_mm - REFERENCE_GRID) > 0.5:
        log.warning("slices.grid %d x %.2f mm voxels = %.0f mm, not the paper's 256 mm: the paper's slice "
                    "positions are scaled by grid/256 and no longer match its anatomy", grid, voxel_mm,
                    grid * voxel_mm)


def _meta(cfg: SliceConfig, positions: list[int], set_name: str) -> str:
    return json.dumps({
        **asdict(cfg),
        "set": set_name,
        "positions_on_grid": positions,
        "orientation": "display = rot90(vol[:, :, z]): rows anterior->posterior, columns left->right",
        "space": "template",
    })


def write_slice_set(path: str | Path, mri: np.ndarray, pet: np.ndarray, meta: str) -> None:
    """Write one slice set (uncompressed npz: ``mri``, ``pet`` (N, 1, H, W), ``meta``) atomically."""
    with atomic_path(path, suffix=".npz") as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, mri=mri, pet=pet, meta=np.array(meta))


def build_slices(
    splits_tsv: str | Path,
    t1_pattern: str,
    pet_pattern: str,
    mask_pattern: str,
    out_dir: str | Path,
    config: dict,
) -> dict[str, int]:
    """Write every split's slice sets into ``out_dir``; return slices written per set.

    Patterns are path templates with ``{sub}``/``{ses}`` (the shared T1_TEMPLATE,
    SUVR_STD_TEMPLATE and BRAIN_MASK_TEMPLATE). Outputs per split ``s``: ``s.npz`` +
    ``s_index.tsv`` (training positions) and ``s_central.npz`` + ``s_central_index.tsv``
    (classifier). Nothing is written unless every session succeeds.
    """
    cfg = SliceConfig.from_config(config)
    splits = read_splits(splits_tsv)
    check_disjoint_splits(splits, splits_tsv)
    unknown = sorted(set(splits["split"]) - set(cfg.splits))
    if unknown:
        raise PipelineInputError(f"unknown split value(s) {unknown}; expected {list(cfg.splits)}",
                                 stage=STAGE, path=splits_tsv, fix="fix the split table or slices.splits")
    sets = {False: slice_positions(cfg.grid, cfg.positions), True: central_positions(cfg.grid, cfg.central)}  # central?
    log.info("grid %d; training slices %s; central %d..%d", cfg.grid, sets[False], sets[True][0], sets[True][-1])
    first = splits.iloc[0] if len(splits) else None
    if first is not None and Path(t1_pattern.format(sub=first["sub"], ses=first["ses"])).is_file():
        warn_if_not_paper_field_of_view(t1_pattern.format(sub=first["sub"], ses=first["ses"]), cfg.grid)
    results: dict[tuple[str, bool], tuple[np.ndarray, np.ndarray, pd.DataFrame]] = {}
    for split in cfg.splits:
        rows = splits[splits["split"] == split].sort_values(["sub", "ses"]).reset_index(drop=True)
        arrays = {
            central: (np.empty((len(rows) * len(pos), 1, cfg.grid, cfg.grid), cfg.dtype),
                      np.empty((len(rows) * len(pos), 1, cfg.grid, cfg.grid), cfg.dtype))
            for central, pos in sets.items()
        }
        for i, row in rows.iterrows():
            paths = [p.format(sub=row["sub"], ses=row["ses"]) for p in (t1_pattern, pet_pattern, mask_pattern)]
            t1_cube, pet_cube = session_cubes(*paths, cfg, subject=f"sub-{row['sub']}_ses-{row['ses']}")
            for central, pos in sets.items():
                mri, pet = arrays[central]
                block = slice(i * len(pos), (i + 1) * len(pos))
                mri[block, 0] = axial_slices(t1_cube, pos)
                pet[block, 0] = axial_slices(pet_cube, pos)
        for central, pos in sets.items():
            index = pd.DataFrame({
                "sub": np.repeat(rows["sub"].to_numpy(), len(pos)),
                "ses": np.repeat(rows["ses"].to_numpy(), len(pos)),
                "slice": np.tile(pos, len(rows)),
                "diagnosis": np.repeat(rows["dx"].to_numpy(), len(pos)),
                "dx_group": np.repeat(rows["dx_group"].to_numpy(), len(pos)),
                "manufacturer": np.repeat(rows["manufacturer"].to_numpy(), len(pos)),
            }, columns=list(INDEX_COLUMNS))
            results[split, central] = (*arrays[central], index)
        log.info("split %s: %d sessions", split, len(rows))
    out_dir = Path(out_dir)
    for (split, central), (mri, pet, index) in results.items():
        name = slice_set_stem(split, central)
        write_slice_set(out_dir / slice_set_name(name), mri, pet, _meta(cfg, sets[central], name))
        write_tsv_atomic(out_dir / index_name(name), index)
    return {slice_set_stem(*key): len(index) for key, (_, _, index) in results.items()}
