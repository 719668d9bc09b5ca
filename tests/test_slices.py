"""Slice stage: the paper's positions, geometry/orientation, scaling, index vs arrays, split leakage."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import torch

from mri2tau.data.datasets import SliceDataset, open_slices, subject_holdout
from mri2tau.data.slices import (
    PAPER_POSITIONS,
    axial_slices,
    build_slices,
    central_positions,
    display_to_axial,
    from_grid,
    grid_offsets,
    pet_from_unit,
    pet_to_unit,
    slice_positions,
    to_grid,
)
from mri2tau.errors import PipelineInputError
from mri2tau.templates import template_grid

RES_MM = 4.0  # template grid (45, 54, 46); grid 64 x 4 mm = the paper's 256 mm
T1 = "{root}/sub-{{sub}}_ses-{{ses}}_T1w.nii.gz"
PET = "{root}/sub-{{sub}}_ses-{{ses}}_suvr.nii.gz"
MASK = "{root}/sub-{{sub}}_ses-{{ses}}_mask.nii.gz"
# sub (leading zeros must survive), ses, dx, dx_group, manufacturer, split
SESSIONS = [
    ("002S0413", "bl", "CN", "CN", "Siemens", "train"),
    ("002S1155", "m12", "EMCI", "MCI", "GE", "train"),
    ("011S4222", "bl", "AD", "AD", "Philips", "train"),
    ("023S0031", "bl", "LMCI", "MCI", "Siemens", "test"),
]


def suvr_code(z: np.ndarray, subject_index: int) -> np.ndarray:
    """Known SUVR per template z slice and subject (stays inside the [0, 3.5] window)."""
    return 0.05 * z + 0.2 * subject_index


def write_splits(path, sessions) -> None:
    frame = pd.DataFrame(sessions, columns=["sub", "ses", "dx", "dx_group", "manufacturer", "split"])
    frame.insert(2, "ptid", frame["sub"].str[:3] + "_S_" + frame["sub"].str[4:])
    frame.to_csv(path, sep="\t", index=False)


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    """Template-space volumes with known content for SESSIONS, and patterns + splits.tsv."""
    root = tmp_path_factory.mktemp("tpl")
    shape, affine = template_grid(RES_MM)
    x, y, z = np.meshgrid(*(np.arange(n) for n in shape), indexing="ij")
    mask = ((x > 4) & (x < shape[0] - 5) & (y > 4) & (y < shape[1] - 5) & (z > 3) & (z < shape[2] - 4))
    for i, (sub, ses, *_rest) in enumerate(SESSIONS):
        t1 = (200.0 + 3.0 * y + i * 50) * mask
        t1[5:9, shape[1] - 9 : shape[1] - 5, :] = 5000.0  # marker: subject's left (low x), anterior (high y)
        pet = suvr_code(z, i) * mask + 0.7 * ~mask
        for pattern, data in ((T1, t1), (PET, pet), (MASK, mask.astype(np.uint8))):
            nib.save(nib.Nifti1Image(data.astype(np.float32 if data.dtype != np.uint8 else np.uint8), affine),
                     pattern.format(root=root).format(sub=sub, ses=ses))
    splits = root / "splits.tsv"
    write_splits(splits, SESSIONS)
    patterns = {k: p.format(root=root) for k, p in (("t1_pattern", T1), ("pet_pattern", PET), ("mask_pattern", MASK))}
    return root, splits, patterns, shape


def slice_config(grid: int) -> dict:
    return {"grid": grid, "positions": list(PAPER_POSITIONS), "central": [76, 175], "pet_window": [0.0, 3.5],
            "t1_percentiles": [0.5, 99.5], "mask_brain": True, "dtype": "float16", "splits": ["train", "test"],
            "mem_mb": 1000}


# ---------------------------------------------------------------- positions
def test_paper_positions_on_256_grid():
    assert slice_positions(256) == sorted([76, 86, 96, 106, 116, 126, 136, 146, 156, 166, 124, 128, 130, 132])
    assert len(slice_positions(256)) == 14
    assert central_positions(256) == list(range(76, 176))


def test_positions_on_smaller_grids():
    # 128: every index halves exactly or rounds half up (43 = 21.5 -> 22 at 64 below); all 14 stay distinct
    assert slice_positions(128) == [38, 43, 48, 53, 58, 62, 63, 64, 65, 66, 68, 73, 78, 83]
    # 64 (4 mm demo): 126 -> 31.5 -> 32 = 128/4 and 130 -> 32.5 -> 33 = 132/4: kept once each
    assert slice_positions(64) == [19, 22, 24, 27, 29, 31, 32, 33, 34, 37, 39, 42]
    assert central_positions(64) == list(range(19, 45))


# ---------------------------------------------------------------- geometry
@pytest.mark.parametrize("grid", [8, 16])
def test_to_grid_pads_and_crops_centred_and_inverts(grid):
    vol = np.arange(11 * 6 * 9, dtype=np.float32).reshape(11, 6, 9) + 1
    cube = to_grid(vol, grid)
    assert cube.shape == (grid,) * 3
    off = grid_offsets(vol.shape, grid)
    assert off == tuple((grid - n) // 2 for n in vol.shape)
    # a voxel inside both keeps its value at index + offset
    assert cube[5 + off[0], 3 + off[1], 4 + off[2]] == vol[5, 3, 4]
    back = from_grid(cube, vol.shape)
    kept = tuple(slice(max(-o, 0), min(n, grid - o)) for n, o in zip(vol.shape, off))
    np.testing.assert_array_equal(back[kept], vol[kept])
    assert (back == 0).sum() == vol.size - back[kept].size  # cropped voxels come back as 0


def test_display_orientation_anterior_top_left_left():
    cube = np.zeros((8, 8, 8), np.float32)
    cube[1, 6, 3] = 1.0  # left (low x), anterior (high y) at z = 3
    shown = axial_slices(cube, [3])[0]
    row, col = np.argwhere(shown == 1.0)[0]
    assert (row, col) == (8 - 1 - 6, 1)  # anterior at the top rows, subject's left in the left columns
    np.testing.assert_array_equal(display_to_axial(shown), cube[:, :, 3])


def test_pet_window_roundtrip():
    suvr = np.array([-1.0, 0.0, 1.75, 3.5, 9.0])
    unit = pet_to_unit(suvr, (0.0, 3.5))
    np.testing.assert_allclose(unit, [-1, -1, 0, 1, 1])
    np.testing.assert_allclose(pet_from_unit(unit[1:4], (0.0, 3.5)), suvr[1:4], atol=1e-6)


# ---------------------------------------------------------------- the stage
def test_build_slices_index_matches_arrays(cohort, tmp_path):
    _, splits, patterns, shape = cohort
    counts = build_slices(splits, out_dir=tmp_path, config=slice_config(64), **patterns)
    positions = slice_positions(64)
    assert counts == {"train": 3 * 12, "train_central": 3 * 26, "test": 12, "test_central": 26}
    z_offset = grid_offsets(shape, 64)[2]
    seen = {}
    for split in ("train", "test"):
        data = open_slices(tmp_path / f"{split}.npz")
        index = data.index
        assert list(index.columns) == ["sub", "ses", "slice", "diagnosis", "dx_group", "manufacturer"]
        assert data.mri.shape == data.pet.shape == (len(index), 1, 64, 64) and data.mri.dtype == np.float16
        seen[split] = set(index["sub"])
        for row, entry in index.iterrows():
            i = [s[0] for s in SESSIONS].index(entry["sub"])
            assert (entry["ses"], entry["diagnosis"], entry["dx_group"], entry["manufacturer"], split) == SESSIONS[i][1:]
            # PET: the known SUVR of that subject's template z slice, scaled by the fixed window
            expected = (suvr_code(entry["slice"] - z_offset, i) / 3.5) * 2 - 1
            pet = data.pet[row, 0].astype(np.float32)
            brain = pet > -1.0
            assert brain.sum() > 100
            np.testing.assert_allclose(pet[brain], expected, atol=2e-3)
            # MRI: the marker (brightest) is at the top-left of the display; [-1, 1] by percentiles
            mri = data.mri[row, 0].astype(np.float32)
            assert mri.min() == -1.0 and mri.max() == 1.0
            assert np.argwhere(mri == 1.0).mean(0)[0] < 20 and np.argwhere(mri == 1.0).mean(0)[1] < 20
        assert sorted(index["slice"].unique()) == positions
        for _, rows in index.groupby("sub"):
            assert list(rows["slice"]) == positions
    assert not seen["train"] & seen["test"]
    central = open_slices(tmp_path / "test_central.npz", mmap=False)
    assert list(central.index["slice"]) == central_positions(64)


def test_paper_grid_picks_exactly_the_paper_slices(cohort, tmp_path):
    _, splits, patterns, _ = cohort
    config = slice_config(256) | {"splits": ["train", "test"]}
    build_slices(splits, out_dir=tmp_path, config=config, **patterns)
    index = pd.read_csv(tmp_path / "test_index.tsv", sep="\t")
    assert sorted(index["slice"]) == sorted(PAPER_POSITIONS)
    central = pd.read_csv(tmp_path / "test_central_index.tsv", sep="\t")
    assert list(central["slice"]) == list(range(76, 176))


def test_planted_overlap_fails_and_writes_nothing(cohort, tmp_path):
    _, _, patterns, _ = cohort
    leaky = tmp_path / "splits.tsv"
    write_splits(leaky, SESSIONS + [("002S0413", "m12", "CN", "CN", "Siemens", "test")])
    out = tmp_path / "out"
    with pytest.raises(PipelineInputError, match="002S0413.*more than one split"):
        build_slices(leaky, out_dir=out, config=slice_config(64), **patterns)
    assert not out.exists() or not any(out.iterdir())


def test_missing_volume_names_subject_and_file(cohort, tmp_path):
    _, _, patterns, _ = cohort
    splits = tmp_path / "splits.tsv"
    write_splits(splits, SESSIONS + [("099S9999", "bl", "CN", "CN", "GE", "train")])
    with pytest.raises(PipelineInputError, match=r"sub-099S9999_ses-bl(.|\n)*file: .*099S9999"):
        build_slices(splits, out_dir=tmp_path / "out", config=slice_config(64), **patterns)
    assert not (tmp_path / "out").exists()


def test_dataset_memmap_and_holdout(cohort, tmp_path):
    _, splits, patterns, _ = cohort
    build_slices(splits, out_dir=tmp_path, config=slice_config(64), **patterns)
    mapped, loaded = open_slices(tmp_path / "train.npz"), open_slices(tmp_path / "train.npz", mmap=False)
    assert isinstance(mapped.mri, np.memmap)
    np.testing.assert_array_equal(mapped.mri, loaded.mri)
    np.testing.assert_array_equal(mapped.pet, loaded.pet)
    train_rows, val_rows = subject_holdout(mapped.index, 0.34, seed=0)
    assert len(train_rows) + len(val_rows) == len(mapped.index)
    assert not set(mapped.index["sub"].iloc[train_rows]) & set(mapped.index["sub"].iloc[val_rows])
    assert len(set(mapped.index["sub"].iloc[val_rows])) == 1
    item = SliceDataset(mapped, val_rows)[0]
    assert item["mri"].shape == item["pet"].shape == (1, 64, 64) and item["pet"].dtype == torch.float32
    np.testing.assert_array_equal(item["pet"].numpy(), loaded.pet[val_rows[0]].astype(np.float32))
