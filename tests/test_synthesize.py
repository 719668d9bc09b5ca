"""Synthesis: template affine + SUVR scale (identity stand-in models score MSE 0 / SSIM 1),
native space through known transforms, and the one-scan CLI on a template-derived 4 mm T1."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import ants
import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from mri2tau.cli import main as cli_main
from mri2tau.data.geometry import brain_box_geometry
from mri2tau.data.slices import slice_positions
from mri2tau.evaluate.run import evaluate_models
from mri2tau.models import registry
from mri2tau.preprocess.harmonize import apply_map
from mri2tau.preprocess.transforms import ras_to_ants_linear
from mri2tau.synthesize import synth_name, synthesize_model
from mri2tau.templates import TEMPLATE_NAME, load_template_mask, load_template_t1, template_grid
from mri2tau.train.checkpoint import save_generator

RES = 4.0
SCALE, OFFSET = 1.25, -0.2  # the test manufacturer's standardization x' = 1.25 x - 0.2
SUVR_RANGE = (0.8, 4.0)  # brain min / max of every test subject's real SUVR
SHIFT_MM = np.array([12.0, -8.0, 4.0])  # native world = template world + SHIFT_MM


def _identity(hp: dict) -> dict[str, nn.Module]:
    return {"generator": nn.Identity()}


@pytest.fixture(autouse=True, scope="module")
def _identity_models():
    """Register the identity stand-ins for this module only (other tests list the registry)."""
    names = []
    for dims in (2, 3):
        spec = registry.ModelSpec(f"identity{dims}d_test", dims, "supervised", _identity,
                                  {"demo": {}}, "test stand-in: PET = input")
        registry.register(spec)
        names.append(spec.name)
    yield
    for name in names:
        registry.REGISTRY.pop(name, None)


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


def _real_suvr(brain: np.ndarray, amplitude: float) -> np.ndarray:
    """Smooth SUVR map: 1 + gradient + a blob, 0.3 outside the brain; every subject's brain
    minimum and maximum are SUVR_RANGE (one voxel each), as the identity trick needs."""
    shape = brain.shape
    x, y, z = np.meshgrid(*[np.linspace(-1, 1, n) for n in shape], indexing="ij")
    suvr = 1.0 + 0.3 * (x + 1) + amplitude * np.exp(-((x - 0.2) ** 2 + (y + 0.1) ** 2 + z**2) / 0.1)
    suvr = np.where(brain, suvr, 0.3).astype(np.float32)
    first, last = np.argwhere(brain)[[0, -1]]
    suvr[tuple(first)], suvr[tuple(last)] = SUVR_RANGE
    return suvr


def _save(data: np.ndarray, affine: np.ndarray, path: str | Path) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(np.asarray(data), affine), path)


def write_sessions(patterns: dict[str, str], sessions: list[tuple[str, str, float, str]], splits: Path,
                   harmonization: Path) -> dict:
    """Preprocessing outputs of ``sessions`` (sub, dx, blob amplitude, split; ses "bl") on the
    4 mm template grid, at ``patterns`` (keys suvr, suvr_std, t1_template, mask, t1w, xfm_affine,
    xfm_invwarp; ``{sub}``/``{ses}`` fields), plus the split table and harmonization params.

    T1_TEMPLATE = standardized SUVR, so an identity generator (T1 percentiles 0/100, PET window =
    the standardized SUVR_RANGE) returns the real PET; native T1 grids are the template grid
    shifted by SHIFT_MM, with the matching transforms (translation + zero warp).
    """
    shape, affine = template_grid(RES)
    brain = np.asarray(load_template_mask(RES).dataobj) > 0
    native_affine = affine.copy()
    native_affine[:3, 3] += SHIFT_MM
    shift = ras_to_ants_linear(np.linalg.inv(np.vstack([np.c_[np.eye(3), -SHIFT_MM], [0, 0, 0, 1]])))
    zero_warp = ants.merge_channels([ants.from_nibabel_nifti(nib.Nifti1Image(np.zeros(shape, np.float32), affine))] * 3)
    rows = []
    for sub, dx, amp, split in sessions:
        path = {key: Path(pattern.format(sub=sub, ses="bl")) for key, pattern in patterns.items()}
        real = _real_suvr(brain, amp)
        std = apply_map(real, brain, SCALE, OFFSET)
        _save(real, affine, path["suvr"])
        _save(std, affine, path["suvr_std"])
        _save(np.where(brain, std, 0.0).astype(np.float32), affine, path["t1_template"])
        _save(brain.astype(np.uint8), affine, path["mask"])
        _save(np.random.default_rng(0).random(shape).astype(np.float32), native_affine, path["t1w"])
        path["xfm_affine"].parent.mkdir(parents=True, exist_ok=True)
        ants.write_transform(shift, str(path["xfm_affine"]))
        ants.image_write(zero_warp, str(path["xfm_invwarp"]))
        rows.append({"sub": sub, "ses": "bl", "ptid": sub, "dx": dx, "dx_group": "", "manufacturer": "Siemens",
                     "split": split})
    splits.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(splits, sep="\t", index=False)
    harmonization.parent.mkdir(parents=True, exist_ok=True)
    harmonization.write_text(json.dumps(
        {"method": "zscore", "manufacturers": {"Siemens": {"scale": SCALE, "offset": OFFSET}}}))
    window = [SCALE * v + OFFSET for v in SUVR_RANGE]
    return {"brain": brain, "affine": affine, "native_affine": native_affine, "window": window,
            "slices": {"grid": 64, "pet_window": window, "t1_percentiles": [0.0, 100.0], "mask_brain": True}}


PATTERNS = {"suvr": "real/sub-{sub}_suvr.nii.gz", "suvr_std": "std/sub-{sub}_suvr.nii.gz",
            "t1_template": "t1tpl/sub-{sub}_T1w.nii.gz", "mask": "mask/sub-{sub}_mask.nii.gz",
            "t1w": "t1w/sub-{sub}.nii.gz", "xfm_affine": "xfm/sub-{sub}_affine.mat",
            "xfm_invwarp": "xfm/sub-{sub}_invwarp.nii.gz"}


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    """Three test sessions (EMCI, AD, CN) and one training session, with identity stand-ins."""
    root = tmp_path_factory.mktemp("synth_cohort")
    sessions = [("S01", "EMCI", 1.2, "test"), ("S02", "AD", 2.0, "test"), ("S03", "CN", 0.4, "test"),
                ("S04", "CN", 0.8, "train")]
    info = write_sessions({k: str(root / v) for k, v in PATTERNS.items()}, sessions, root / "splits.tsv",
                          root / "harmonization.json")
    data = {"pet_window": info["window"], "t1_percentiles": [0.0, 100.0], "mask_brain": True}
    geometry = brain_box_geometry(info["brain"], pad_multiple=16)
    models = root / "models"
    save_generator(models / "identity2d_test.pt", nn.Identity(), "identity2d_test", {}, 0, {**data, "grid": 64})
    save_generator(models / "identity3d_test.pt", nn.Identity(), "identity3d_test",
                   {"image_size": list(geometry.shape)}, 0, {**data, "geometry": asdict(geometry)})
    return {"root": root, **info}


def _synthesize(cohort, model: str):
    root = cohort["root"]
    out = root / "synth" / model
    timing = synthesize_model(
        model_file=root / "models" / f"{model}.pt", splits=root / "splits.tsv",
        t1_pattern=str(root / PATTERNS["t1_template"]), mask_pattern=str(root / PATTERNS["mask"]),
        t1w_pattern=str(root / PATTERNS["t1w"]), affine_pattern=str(root / PATTERNS["xfm_affine"]),
        invwarp_pattern=str(root / PATTERNS["xfm_invwarp"]), harmonization=root / "harmonization.json", out_dir=out,
        resolution_mm=RES, settings={"batch_size": 8, "sw_overlap": 0.25}, slices_config=cohort["slices"],
        volumes_config={"pad_multiple": 16}, threads=1,
    )
    return out, timing


@pytest.mark.parametrize("model", ["identity2d_test", "identity3d_test"])
def test_identity_model_recovers_real_suvr_on_template_and_native_grids(cohort, model):
    out, timing = _synthesize(cohort, model)
    root, brain = cohort["root"], cohort["brain"]
    assert sorted(timing["sub"]) == ["S01", "S02", "S03"]  # test split only
    assert (timing["inference_s"] > 0).all() and (timing["n_passes"] >= 1).all()
    assert timing["dims"].iloc[0] == int(model[8])
    for sub in ("S01", "S02", "S03"):
        img = nib.load(out / synth_name(sub, "bl", TEMPLATE_NAME))
        real = np.asarray(nib.load(root / PATTERNS["suvr"].format(sub=sub)).dataobj)
        assert img.shape == brain.shape
        np.testing.assert_allclose(img.affine, cohort["affine"], atol=1e-6)
        synth = np.asarray(img.dataobj)
        # standardization undone: SUVR units, equal to the real SUVR inside the brain
        np.testing.assert_allclose(synth[brain], real[brain], atol=1e-4)
        assert np.all(synth[~brain] == 0)
        # native grid = template grid shifted by SHIFT_MM with the matching transform: same voxels
        native = nib.load(out / synth_name(sub, "bl", "T1w"))
        np.testing.assert_allclose(native.affine, cohort["native_affine"], atol=1e-6)
        np.testing.assert_allclose(np.asarray(native.dataobj), synth, atol=1e-4)
    tables = evaluate_models(
        splits=root / "splits.tsv", real_pattern=str(root / PATTERNS["suvr"]),
        mask_pattern=str(root / PATTERNS["mask"]), synth_dirs={model: out}, out_dir=root / f"eval_{model}",
        resolution_mm=RES, slices_config=cohort["slices"], settings={"slices": "paper", "volume_metrics": "all"},
    )
    rows = tables["slice_metrics"]
    assert len(rows) == 3 * len(slice_positions(64))  # the paper's 14 positions, merged on a 64 grid
    assert rows["mse"].max() < 1e-10 and rows["mse_brain"].max() < 1e-10
    assert rows["ssim"].min() > 1 - 1e-6 and rows["ssim_brain"].min() > 1 - 1e-6
    volumes = tables["volume_metrics"]
    assert volumes["mse"].max() < 1e-10 and volumes["ssim"].min() > 1 - 1e-6
    agreement = tables["roi_agreement"]
    assert (agreement["mae"] < 1e-4).all() and (agreement["icc"] > 0.999).all()


def test_cli_writes_pet_aligned_with_a_new_t1(cohort, tmp_path):
    """Template-derived full-head 4 mm T1 on a shifted grid -> PET on the T1's grid, aligned:
    the identity stand-in returns the scaled T1, so it must correlate with the T1 in the brain."""
    template = load_template_t1(RES)
    affine = template.affine.copy()
    affine[:3, 3] += SHIFT_MM
    t1 = tmp_path / "new_T1w.nii.gz"
    nib.save(nib.Nifti1Image(np.asarray(template.dataobj, np.float32), affine), t1)
    model = tmp_path / "identity2d.pt"
    save_generator(model, nn.Identity(), "identity2d_test", {}, 0,
                   {"grid": 64, "pet_window": [0.0, 3.5], "t1_percentiles": [0.5, 99.5], "mask_brain": True})
    out = tmp_path / "pet.nii.gz"
    assert cli_main(["synthesize", "--t1", str(t1), "--model", str(model), "--out", str(out),
                     "--manufacturer", "Siemens", "--harmonization", str(cohort["root"] / "harmonization.json")]) == 0
    pet = nib.load(out)
    assert pet.shape == template.shape
    np.testing.assert_allclose(pet.affine, affine, atol=1e-6)
    brain = np.asarray(load_template_mask(RES).dataobj) > 0  # same voxels: the T1 is the template, shifted
    values = np.asarray(pet.dataobj)
    assert values[brain].mean() > 0.5 and np.mean(values[~brain] == 0) > 0.8
    r = np.corrcoef(values[brain], np.asarray(template.dataobj)[brain])[0, 1]
    assert r > 0.8
