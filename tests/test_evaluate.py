"""Evaluation stage: Table IV groups from the split's diagnoses, metric values against the
reference library on the same arrays, ROI agreement against a known distortion, the
classifier's view of synthetic PET equal to the slice stage's, figure helpers."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from skimage.metrics import structural_similarity

from mri2tau.data.datasets import open_slices
from mri2tau.data.slices import SliceConfig, build_slices, central_positions, slice_positions, to_grid
from mri2tau.errors import PipelineInputError
from mri2tau.evaluate.diagnosis import synthetic_slices
from mri2tau.evaluate.figures import pick_subjects, zoom_box
from mri2tau.evaluate.metrics import to_unit_range
from mri2tau.evaluate.run import diagnosis_group, evaluate_models
from mri2tau.synthesize import synth_name
from mri2tau.templates import TEMPLATE_NAME, template_grid
from test_synthesize import OFFSET, PATTERNS, RES, SCALE, write_sessions

SESSIONS = [("S01", "CN", 0.4, "test"), ("S02", "EMCI", 1.0, "test"), ("S03", "LMCI", 1.4, "test"),
            ("S04", "SMC", 0.8, "test"), ("S05", "AD", 2.0, "test"), ("T01", "CN", 0.5, "train")]
GAIN = 1.1  # the stand-in "model" scales the real SUVR by this


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory):
    """Five test sessions (CN, EMCI, LMCI, SMC, AD) and a stand-in model whose synthetic SUVR is
    GAIN x the real one, evaluated on the paper's slice positions."""
    root = tmp_path_factory.mktemp("evaluate")
    patterns = {k: str(root / v) for k, v in PATTERNS.items()}
    info = write_sessions(patterns, SESSIONS, root / "splits.tsv", root / "harmonization.json")
    _, affine = template_grid(RES)
    synth_dir = root / "synth" / "gain"
    for sub, *_ in SESSIONS:
        real = np.asarray(nib.load(patterns["suvr"].format(sub=sub)).dataobj)
        synth_dir.mkdir(parents=True, exist_ok=True)
        nib.save(nib.Nifti1Image(np.where(info["brain"], GAIN * real, 0).astype(np.float32), affine),
                 synth_dir / synth_name(sub, "bl", TEMPLATE_NAME))
    pd.DataFrame([{"model": "gain", "dims": 2, "sub": s, "ses": "bl", "device": "cpu", "n_parameters": 0,
                   "n_passes": 1, "inference_s": 0.1, "total_s": 0.2, "peak_rss_mb": 100.0,
                   "peak_gpu_mb": float("nan")} for s, *_ in SESSIONS]).to_csv(synth_dir / "timing.tsv", sep="\t",
                                                                              index=False)
    slices = {"grid": 64, "pet_window": [0.0, 3.5], "t1_percentiles": [0.5, 99.5], "mask_brain": True}
    tables = evaluate_models(splits=root / "splits.tsv", real_pattern=patterns["suvr"], mask_pattern=patterns["mask"],
                             synth_dirs={"gain": synth_dir}, out_dir=root / "eval", resolution_mm=RES,
                             slices_config=slices, settings={"slices": "paper"})
    return {"root": root, "patterns": patterns, "tables": tables, "slices": slices, **info}


def test_table_iv_groups_come_from_the_split_diagnoses(evaluated):
    n_slices = len(slice_positions(64))
    table4 = evaluated["tables"]["table4_diagnosis"]
    assert table4["dx_group"].tolist() == ["CN", "MCI", "AD"]
    assert table4.set_index("dx_group")["n"].to_dict() == {"CN": n_slices, "MCI": 3 * n_slices, "AD": n_slices}
    rows = evaluated["tables"]["slice_metrics"]
    assert sorted(rows["sub"].unique()) == ["S01", "S02", "S03", "S04", "S05"]  # test split only
    assert set(rows[rows["sub"].isin(["S02", "S03", "S04"])]["dx_group"]) == {"MCI"}
    assert "CN" in (evaluated["root"] / "eval" / "table4_diagnosis.html").read_text()
    assert diagnosis_group("Dementia") == "AD" and diagnosis_group("", "MCI") == "MCI"
    with pytest.raises(PipelineInputError, match="maps to none of"):
        diagnosis_group("unknown", "", "sub-X")


def test_slice_metrics_equal_scikit_image_on_the_scaled_padded_slices(evaluated):
    rows = evaluated["tables"]["slice_metrics"].set_index(["sub", "slice"])
    real = np.asarray(nib.load(evaluated["patterns"]["suvr"].format(sub="S05")).dataobj)
    brain = evaluated["brain"]
    real_unit = to_grid(to_unit_range(np.where(brain, real, 0), (0.0, 3.5)), 64)
    synth_unit = to_grid(to_unit_range(np.where(brain, GAIN * real, 0), (0.0, 3.5)), 64)
    for z in slice_positions(64)[::4]:
        a, b = real_unit[:, :, z], synth_unit[:, :, z]
        row = rows.loc[("S05", z)]
        assert row["mse"] == pytest.approx(np.mean((a - b) ** 2), abs=1e-12)
        ssim = structural_similarity(a, b, data_range=1.0, gaussian_weights=True, sigma=1.5,
                                     use_sample_covariance=False)
        assert row["ssim"] == pytest.approx(ssim, abs=1e-6)
        assert row["ssim"] < 1.0


def test_roi_agreement_and_inference_tables(evaluated):
    agreement = evaluated["tables"]["roi_agreement"].set_index("roi")
    assert len(agreement) == 7  # Braak I-VI + meta-temporal
    np.testing.assert_allclose(agreement["synth_mean"], GAIN * agreement["real_mean"], rtol=1e-5)
    np.testing.assert_allclose(agreement["mae"], (GAIN - 1) * agreement["real_mean"], rtol=1e-5)
    assert (agreement["pearson_r"] > 0.9999).all() and (agreement["icc"] < 1).all()
    inference = evaluated["tables"]["inference"]
    assert inference["inference_s_mean"].iloc[0] == pytest.approx(0.1)
    assert "0.100" in (evaluated["root"] / "eval" / "inference.md").read_text()


def test_classifier_sees_synthetic_pet_as_the_slice_stage_sees_real_pet(evaluated, tmp_path):
    """Synthetic SUVR equal to the real SUVR -> exactly the slice stage's central test slices."""
    p = evaluated["patterns"]
    config = {**evaluated["slices"], "dtype": "float32"}
    build_slices(evaluated["root"] / "splits.tsv", p["t1_template"], p["suvr_std"], p["mask"], tmp_path, config)
    central = open_slices(tmp_path / "test_central.npz", mmap=False)
    cfg = SliceConfig.from_config(config)
    positions = central_positions(cfg.grid, cfg.central)
    real = np.asarray(nib.load(p["suvr"].format(sub="S03")).dataobj)
    mine = synthetic_slices(real, evaluated["brain"], (SCALE, OFFSET), cfg, positions)
    rows = (central.index["sub"] == "S03").to_numpy()
    np.testing.assert_allclose(mine, central.pet[rows], atol=1e-5)
    assert central.index["slice"][rows].tolist() == positions


def test_figure_helpers_spread_groups_and_keep_the_zoom_inside():
    test = pd.DataFrame({"sub": list("abcdef"), "dx_group": ["CN", "CN", "MCI", "MCI", "AD", "CN"]})
    assert pick_subjects(test, 3)["dx_group"].tolist() == ["AD", "MCI", "CN"]
    assert len(pick_subjects(test, 10)) == 6
    brain = np.zeros((40, 30), bool)
    brain[30:40, 0:10] = True  # brain in a corner: the box is clipped into the image
    row, col, side = zoom_box(brain, 0.5)
    assert side == 15 and 0 <= row <= 40 - side and 0 <= col <= 30 - side
