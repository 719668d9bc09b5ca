"""Paired 3D volumes (template-space T1 -> standardized SUVR) for the 3D synthesis models.

Geometry
--------
Every session is on the template grid (RAS+ voxel axes X = R, Y = A, Z = S; see
:func:`mri2tau.templates.template_grid`), so one :class:`VolumeGeometry` serves all: the
bounding box of the *template* brain mask (plus ``margin_vox``), centred in a box whose sides
are the next multiple of ``pad_multiple`` voxels (the network stride: 16 for the 4-level U-Net
and UNETR's patch, 32 for SwinUNETR) or an explicit ``shape``. The box may reach outside the
template grid; those voxels are background (-1). :meth:`VolumeGeometry.to_template` puts a
network volume back on the template grid. 1 mm template: box 160 x 192 x 160; 4 mm: 64^3.

Intensities
-----------
The same as the 2D slices (:func:`mri2tau.data.slices.session_cubes`, config section
``slices``): T1 robust brain percentiles -> [-1, 1], SUVR fixed window -> [-1, 1], clipped,
and -1 outside the brain mask when ``mask_brain``.

Augmentation (training only; as the authors' MONAI code)
--------------------------------------------------------
``Rand3DElasticd`` (p 0.5) and ``RandAffined`` (p 0.5, rotation ±π/12 about each axis, scale
±0.1) on MRI and PET with the same random transform (trilinear, border padding), then
``RandFlipd`` (p 0.5; one draw flips all ``flip_axes`` together, as the authors' code), then
``RandGaussianNoised`` on the MRI only (p 0.5, σ 0.1). Deterministic for a given seed; the
dataset draws each item's seed from torch's global RNG, which the training loop seeds per run
and checkpoints, so runs and resumed runs see the same augmentations.

Storage
-------
``build_volumes`` writes per split ``<split>_mri.npy`` / ``<split>_pet.npy`` (N, 1, X, Y, Z)
float16 (memory-mapped when read), ``<split>_index.tsv`` (``sub, ses, diagnosis, dx_group,
manufacturer``) and one ``volumes.json`` with the geometry and scaling.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset

from mri2tau.data.geometry import BACKGROUND, VolumeGeometry, volume_geometry
from mri2tau.data.slices import (
    SliceConfig,
    check_disjoint_splits,
    from_grid,
    read_splits,
    session_cubes,
)
from mri2tau.errors import PipelineInputError
from mri2tau.io.atomic import atomic_path, write_json_atomic, write_tsv_atomic
from mri2tau.log import get_logger
from mri2tau.paths import VOLUMES_META_NAME, index_name, volume_array_name

log = get_logger("volumes")

STAGE = "volumes"
INDEX_COLUMNS = ("sub", "ses", "diagnosis", "dx_group", "manufacturer")


# ---------------------------------------------------------------- per session
def session_volumes(
    t1_path: str | Path, pet_path: str | Path, mask_path: str | Path,
    slice_cfg: SliceConfig, geometry: VolumeGeometry, subject: str,
) -> tuple[np.ndarray, np.ndarray]:
    """One session's scaled T1 and PET network volumes (``geometry.shape``, float32, [-1, 1])."""
    grid = max(geometry.template_shape)  # a cube holding the whole template grid: nothing cropped
    t1_cube, pet_cube = session_cubes(t1_path, pet_path, mask_path, replace(slice_cfg, grid=grid), subject)
    out = []
    for cube, path in ((t1_cube, t1_path), (pet_cube, pet_path)):
        volume = from_grid(cube - BACKGROUND, geometry.template_shape) + BACKGROUND
        try:
            out.append(geometry.to_network(volume))
        except ValueError as exc:
            raise PipelineInputError(str(exc), subject=subject, stage=STAGE, path=path,
                                     fix="rerun the mri/pet stages with the configured template") from exc
    return out[0], out[1]


def build_volumes(
    splits_tsv: str | Path,
    t1_pattern: str,
    pet_pattern: str,
    mask_pattern: str,
    out_dir: str | Path,
    slices_config: Mapping[str, Any],
    volumes_config: Mapping[str, Any],
    resolution_mm: float,
    template_mask_path: str | None = None,
) -> dict[str, int]:
    """Write every split's volume arrays, index and ``volumes.json`` into ``out_dir``.

    Patterns: path templates with ``{sub}``/``{ses}`` (T1_TEMPLATE, SUVR_STD_TEMPLATE,
    BRAIN_MASK_TEMPLATE). Returns sessions written per split. Nothing is written unless every
    session succeeds (the arrays go straight to temporary files that are renamed at the end).
    """
    slice_cfg = SliceConfig.from_config(dict(slices_config))
    geometry = volume_geometry(volumes_config, resolution_mm, template_mask_path)
    dtype = np.dtype(volumes_config.get("dtype", "float16"))
    splits = read_splits(splits_tsv)
    check_disjoint_splits(splits, splits_tsv)
    log.info("network volume %s at template voxel %s (template grid %s)", geometry.shape, geometry.start,
             geometry.template_shape)
    out_dir = Path(out_dir)
    indexes = {}
    with contextlib.ExitStack() as outputs:  # every file appears only if every session succeeds
        for split in slice_cfg.splits:
            rows = splits[splits["split"] == split].sort_values(["sub", "ses"]).reset_index(drop=True)
            arrays = [  # written straight to disk: a 1 mm cohort does not fit in memory twice
                np.lib.format.open_memmap(outputs.enter_context(atomic_path(out_dir / volume_array_name(split, name))),
                                          mode="w+", dtype=dtype, shape=(len(rows), 1, *geometry.shape))
                for name in ("mri", "pet")
            ]
            for i, row in rows.iterrows():
                paths = [p.format(sub=row["sub"], ses=row["ses"]) for p in (t1_pattern, pet_pattern, mask_pattern)]
                volumes = session_volumes(*paths, slice_cfg, geometry, f"sub-{row['sub']}_ses-{row['ses']}")
                for array, volume in zip(arrays, volumes):
                    array[i, 0] = volume
            for array in arrays:
                array.flush()
            del arrays
            indexes[split] = pd.DataFrame({"sub": rows["sub"], "ses": rows["ses"], "diagnosis": rows["dx"],
                                           "dx_group": rows["dx_group"], "manufacturer": rows["manufacturer"]},
                                          columns=list(INDEX_COLUMNS))
    for split, index in indexes.items():
        write_tsv_atomic(out_dir / index_name(split), index)
    write_json_atomic(out_dir / VOLUMES_META_NAME, {
        "geometry": asdict(geometry),
        "resolution_mm": float(resolution_mm),
        "space": "template (RAS+ voxel axes X=R, Y=A, Z=S)",
        "pet_window": list(slice_cfg.pet_window),
        "t1_percentiles": list(slice_cfg.t1_percentiles),
        "mask_brain": slice_cfg.mask_brain,
        "dtype": dtype.name,
    })
    return {split: len(index) for split, index in indexes.items()}


# ---------------------------------------------------------------- reading
@dataclass
class VolumeSet:
    """One split's volumes: ``mri``/``pet`` (N, 1, X, Y, Z) arrays, index table, ``volumes.json``."""

    mri: np.ndarray
    pet: np.ndarray
    index: pd.DataFrame
    meta: dict[str, Any]

    def __len__(self) -> int:
        return len(self.index)

    @property
    def geometry(self) -> VolumeGeometry:
        """Where these volumes sit on the template grid."""
        return VolumeGeometry.from_dict(self.meta["geometry"])


def open_volumes(out_dir: str | Path, split: str, mmap: bool = True) -> VolumeSet:
    """Open split ``split`` written by :func:`build_volumes` (memory-mapped by default)."""
    out_dir = Path(out_dir)
    names = (volume_array_name(split, "mri"), volume_array_name(split, "pet"), index_name(split), VOLUMES_META_NAME)
    paths = [out_dir / name for name in names]
    for path in paths:
        if not path.is_file():
            raise PipelineInputError("volume set file is missing", stage="train", path=path,
                                     fix="rerun the volumes rule")
    mode = "r" if mmap else None
    mri, pet = np.load(paths[0], mmap_mode=mode), np.load(paths[1], mmap_mode=mode)
    index = pd.read_csv(paths[2], sep="\t", dtype={"sub": str, "ses": str})
    meta = json.loads(paths[3].read_text())
    if not (mri.shape == pet.shape and mri.ndim == 5 and mri.shape[0] == len(index)):
        raise PipelineInputError(f"arrays mri {mri.shape} / pet {pet.shape} do not match the index ({len(index)} rows)",
                                 stage="train", path=paths[0], fix="rerun the volumes rule")
    return VolumeSet(mri=mri, pet=pet, index=index, meta=meta)


# ---------------------------------------------------------------- augmentation
@dataclass(frozen=True)
class AugmentConfig:
    """Training augmentation (config ``volumes.augment``); a probability of 0 disables a step.

    Elastic sigma/magnitude in voxels (MONAI ``Rand3DElasticd``); rotation in radians about
    each axis; scale as ±fraction; noise σ in [-1, 1] intensity units (MRI only).
    """

    enabled: bool = True
    elastic_prob: float = 0.5
    elastic_sigma_range: tuple[float, float] = (5.0, 8.0)
    elastic_magnitude_range: tuple[float, float] = (100.0, 200.0)
    affine_prob: float = 0.5
    rotate_range_rad: float = float(np.pi / 12)
    scale_range: float = 0.1
    flip_prob: float = 0.5
    flip_axes: tuple[int, ...] = (0, 1, 2)
    noise_prob: float = 0.5
    noise_std: float = 0.1

    @classmethod
    def from_config(cls, section: Mapping[str, Any]) -> AugmentConfig:
        """Build from ``volumes.augment`` (lists become tuples)."""
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in section.items()})


def augmentation(cfg: AugmentConfig):
    """MONAI ``Compose`` over ``{"mri", "pet"}`` (1, X, Y, Z) tensors, or None when disabled."""
    from monai.transforms import Compose, Rand3DElasticd, RandAffined, RandFlipd, RandGaussianNoised

    if not cfg.enabled:
        return None
    keys = ["mri", "pet"]
    rotate, scale = (cfg.rotate_range_rad,) * 3, (cfg.scale_range,) * 3
    steps = []
    if cfg.elastic_prob > 0:
        steps.append(Rand3DElasticd(keys, sigma_range=cfg.elastic_sigma_range,
                                    magnitude_range=cfg.elastic_magnitude_range, prob=cfg.elastic_prob,
                                    mode="bilinear", padding_mode="border"))
    if cfg.affine_prob > 0:
        steps.append(RandAffined(keys, prob=cfg.affine_prob, rotate_range=rotate, scale_range=scale,
                                 mode="bilinear", padding_mode="border"))
    if cfg.flip_prob > 0 and cfg.flip_axes:
        steps.append(RandFlipd(keys, prob=cfg.flip_prob, spatial_axis=list(cfg.flip_axes)))
    if cfg.noise_prob > 0:
        steps.append(RandGaussianNoised(["mri"], prob=cfg.noise_prob, mean=0.0, std=cfg.noise_std))
    return Compose(steps)


def augment_pair(transform, mri: torch.Tensor, pet: torch.Tensor, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Apply ``transform`` (from :func:`augmentation`) to one (1, X, Y, Z) pair with RNG ``seed``."""
    transform.set_random_state(seed=int(seed) % (2**32))
    out = transform({"mri": mri, "pet": pet})
    return (torch.as_tensor(out["mri"]).as_subclass(torch.Tensor).float(),
            torch.as_tensor(out["pet"]).as_subclass(torch.Tensor).float())


class VolumeDataset(Dataset):
    """Paired volumes: item ``i`` -> ``{"mri": (1, X, Y, Z), "pet": (1, X, Y, Z)}`` float32 in [-1, 1].

    ``rows`` selects volumes of ``volumes``; ``augment`` (training) applies :func:`augmentation`
    with a per-item seed drawn from torch's global RNG.
    """

    def __init__(self, volumes: VolumeSet, rows: np.ndarray | None = None, augment: AugmentConfig | None = None) -> None:
        self.volumes = volumes
        self.rows = np.arange(len(volumes)) if rows is None else np.asarray(rows, dtype=np.int64)
        self.transform = augmentation(augment) if augment is not None else None

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        row = int(self.rows[i])
        mri = torch.from_numpy(np.asarray(self.volumes.mri[row], dtype=np.float32))
        pet = torch.from_numpy(np.asarray(self.volumes.pet[row], dtype=np.float32))
        if self.transform is not None:
            seed = int(torch.randint(0, 2**31 - 1, ()).item())
            mri, pet = augment_pair(self.transform, mri, pet, seed)
        return {"mri": mri, "pet": pet}
