"""Torch datasets over the slice sets written by :mod:`mri2tau.data.slices`.

A slice set is one uncompressed ``.npz`` (``mri``, ``pet``: (N, 1, H, W) in [-1, 1],
display-oriented axial slices; ``meta``: JSON) plus ``<name>_index.tsv`` (one row per slice).
:func:`open_slices` memory-maps the arrays straight out of the zip, so a 4 GB classifier set
costs no RAM until read and DataLoader workers share the pages.
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset

from mri2tau.errors import PipelineInputError
from mri2tau.paths import index_name


def _member_memmap(path: Path, name: str) -> np.ndarray:
    """Read-only memmap of array ``name`` stored uncompressed in the npz at ``path``."""
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo(f"{name}.npy")
        if info.compress_type != zipfile.ZIP_STORED:
            raise ValueError(f"{path}: member {name} is compressed; cannot memory-map it")
    with open(path, "rb") as fh:
        fh.seek(info.header_offset)
        local = fh.read(30)  # local file header: name and extra-field lengths at bytes 26-29
        fh.seek(info.header_offset + 30 + int.from_bytes(local[26:28], "little") + int.from_bytes(local[28:30], "little"))
        version = np.lib.format.read_magic(fh)
        if version not in ((1, 0), (2, 0)):
            raise ValueError(f"{path}: member {name} has npy format {version}; cannot memory-map it")
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, fortran, dtype = read_header(fh)
        offset = fh.tell()
    return np.memmap(path, dtype=dtype, mode="r", shape=shape, order="F" if fortran else "C", offset=offset)


@dataclass
class SliceSet:
    """A loaded slice set: arrays (N, 1, H, W), per-slice index table and the stage settings."""

    mri: np.ndarray
    pet: np.ndarray
    index: pd.DataFrame
    meta: dict

    def __len__(self) -> int:
        return len(self.index)


def index_path(npz_path: str | Path) -> Path:
    """``<dir>/<name>.npz`` -> ``<dir>/<name>_index.tsv``."""
    npz_path = Path(npz_path)
    return npz_path.with_name(index_name(npz_path.name.removesuffix(".npz")))


def open_slices(npz_path: str | Path, mmap: bool = True) -> SliceSet:
    """Open a slice set; ``mmap=False`` reads the arrays into memory. Checks index vs arrays."""
    npz_path = Path(npz_path)
    fix = "rerun the slices rule"
    if not npz_path.is_file():
        raise PipelineInputError("slice set is missing", stage="train", path=npz_path, fix=fix)
    if mmap:
        mri, pet = _member_memmap(npz_path, "mri"), _member_memmap(npz_path, "pet")
        with np.load(npz_path) as data:
            meta = json.loads(str(data["meta"]))
    else:
        with np.load(npz_path) as data:
            mri, pet, meta = data["mri"], data["pet"], json.loads(str(data["meta"]))
    index = pd.read_csv(index_path(npz_path), sep="\t", dtype={"sub": str, "ses": str})
    if not (mri.shape == pet.shape and mri.ndim == 4 and mri.shape[1] == 1 and len(index) == mri.shape[0]):
        raise PipelineInputError(
            f"arrays mri {mri.shape} / pet {pet.shape} do not match the index ({len(index)} rows)",
            stage="train", path=npz_path, fix=fix,
        )
    return SliceSet(mri=mri, pet=pet, index=index, meta=meta)


class SliceDataset(Dataset):
    """Paired (MRI, PET) axial slices: item ``i`` -> ``{"mri": (1, H, W), "pet": (1, H, W)}`` float32.

    ``rows`` selects slices of ``slices`` (e.g. the training subjects of a train/validation split).
    """

    def __init__(self, slices: SliceSet, rows: np.ndarray | None = None) -> None:
        self.slices = slices
        self.rows = np.arange(len(slices)) if rows is None else np.asarray(rows, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        row = int(self.rows[i])
        return {
            "mri": torch.from_numpy(np.asarray(self.slices.mri[row], dtype=np.float32)),
            "pet": torch.from_numpy(np.asarray(self.slices.pet[row], dtype=np.float32)),
        }


def subject_holdout(index: pd.DataFrame, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Split slice rows into (train, validation) by subject: ``round(fraction * n_subjects)``
    subjects (seeded) are held out; ``fraction`` 0 holds out none."""
    subjects = np.array(sorted(index["sub"].unique()))
    n_val = int(round(fraction * len(subjects)))
    if fraction > 0 and n_val == 0:
        n_val = 1
    if n_val >= len(subjects) and n_val > 0:
        raise ValueError(f"val_fraction {fraction} leaves no training subject ({len(subjects)} subjects)")
    held = set(np.random.default_rng(seed).choice(subjects, size=n_val, replace=False).tolist())
    is_val = index["sub"].isin(held).to_numpy()
    return np.flatnonzero(~is_val), np.flatnonzero(is_val)
