"""MRI stage against known truth: N4 + affine + SyN to the template, masks, QC, bad input.

* Demo cohort (4 mm, shared session fixture): the recovered template<->native mapping is
  compared with the generator's truth fields over template brain voxels.
* Real heads (IXI, the ADNI-protocol Philips head with its neck): ``test_preprocess_mri_real.py``.
* FSL: ``auto`` picks antspyx here (no FSL); the FLIRT command line and the FLIRT -> ITK matrix
  conversion are checked without running FLIRT.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import ants
import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from scipy.spatial.transform import Rotation

from mri2tau.config import resolve_config, validate_config
from mri2tau.errors import PipelineInputError
from mri2tau.preprocess import mri
from mri2tau.preprocess import registration as reg
from mri2tau.templates import load_template_mask, load_template_t1, template_grid

RES = 4.0  # template grid (mm) used throughout: the demo preset's value and the demo fixture's voxel size

reg.set_threads(1)


OUTPUTS = {  # preprocess_t1 output argument -> file name
    "t1_n4": "n4.nii.gz", "t1_template": "t1_template.nii.gz", "t1_template_json": "t1_template.json",
    "brain_mask_template": "mask_template.nii.gz", "brain_mask_native": "mask_native.nii.gz",
    "xfm_affine": "affine.mat", "xfm_warp": "warp.nii.gz", "xfm_invwarp": "invwarp.nii.gz",
    "qc_tsv": "qc.tsv", "qc_png": "qc.png",
}


def run_stage(t1: Path, out: Path, subject: str = "TEST01", resolution_mm: float = RES, **overrides) -> dict:
    """Run ``preprocess_t1`` (demo preset) with outputs under ``out``; returns the QC row."""
    config = resolve_config({"preset": "demo"})
    kwargs = dict(t1=t1, subject=subject, session="bl", resolution_mm=resolution_mm,
                  registration=config["registration"], **{k: out / name for k, name in OUTPUTS.items()})
    kwargs.update(overrides)
    return mri.preprocess_t1(**kwargs)


def save(data: np.ndarray, affine: np.ndarray, path: Path) -> Path:
    nib.save(nib.Nifti1Image(np.asarray(data, dtype=np.float32), affine), path)
    return path


# ---------------------------------------------------------------- demo cohort truth
@pytest.fixture(scope="module")
def demo_run(demo_cohort, tmp_path_factory):
    """The first demo subject through the MRI stage (4 mm)."""
    truth = sorted((demo_cohort / "truth").glob("sub-*"))[0]
    out = tmp_path_factory.mktemp("mri_demo")
    row = run_stage(truth / "t1_native.nii.gz", out, subject=truth.name[4:])
    return truth, out, row


@pytest.mark.slow
def test_demo_template_to_native_mapping_within_one_and_a_half_voxels(demo_run):
    truth, out, _ = demo_run
    mask = np.asarray(load_template_mask(RES).dataobj) > 0
    err = reg.mapping_error_mm(nib.load(truth / "template_to_native_coords.nii.gz"), mask,
                               out / "affine.mat", out / "warp.nii.gz")
    assert err.mean() < 1.5 * RES, f"mean template->native error {err.mean():.2f} mm"
    # and better than doing nothing: the generator moves brain voxels by ~10 mm
    true_native = np.asarray(nib.load(truth / "template_to_native_coords.nii.gz").dataobj)[mask]
    assert np.linalg.norm(true_native - reg.voxel_centres(mask, template_grid(RES)[1]), axis=1).mean() > 3 * err.mean()


@pytest.mark.slow
def test_demo_native_to_template_mapping_within_one_and_a_half_voxels(demo_run):
    truth, out, _ = demo_run
    coords = nib.load(truth / "native_to_template_coords.nii.gz")
    brain = np.asarray(nib.load(out / "mask_native.nii.gz").dataobj) > 0
    recovered = reg.native_to_template_points(reg.voxel_centres(brain, coords.affine), out / "affine.mat",
                                              out / "invwarp.nii.gz")
    err = np.linalg.norm(recovered - np.asarray(coords.dataobj)[brain], axis=1)
    assert err.mean() < 1.5 * RES, f"mean native->template error {err.mean():.2f} mm"


@pytest.mark.slow
def test_demo_native_brain_mask_matches_truth(demo_run):
    """The native mask equals the template mask pulled back through the TRUE mapping (Dice)."""
    truth, out, row = demo_run
    coords = nib.load(truth / "native_to_template_coords.nii.gz")
    tpl_mask = load_template_mask(RES)
    ijk = np.rint(nib.affines.apply_affine(np.linalg.inv(tpl_mask.affine), np.asarray(coords.dataobj))).astype(int)
    inside = np.all((ijk >= 0) & (ijk < np.array(tpl_mask.shape)), axis=-1)
    expected = np.zeros(coords.shape[:3], dtype=bool)
    expected[inside] = np.asarray(tpl_mask.dataobj)[tuple(ijk[inside].T)] > 0
    got_img = nib.load(out / "mask_native.nii.gz")
    got = np.asarray(got_img.dataobj) > 0
    assert np.allclose(got_img.affine, coords.affine, atol=1e-3) and got.shape == expected.shape
    dice = 2 * (got & expected).sum() / (got.sum() + expected.sum())
    assert dice > 0.85, f"Dice {dice:.3f}"
    assert row["brain_volume_native_ml"] == pytest.approx(got.sum() * RES**3 / 1000, rel=1e-3)


@pytest.mark.slow
def test_demo_outputs_on_the_right_grids(demo_run):
    truth, out, row = demo_run
    shape, affine = template_grid(RES)
    t1_template = nib.load(out / "t1_template.nii.gz")
    mask = np.asarray(load_template_mask(RES).dataobj) > 0
    data = np.asarray(t1_template.dataobj)
    assert t1_template.shape == shape and np.allclose(t1_template.affine, affine)
    assert np.all(data[~mask] == 0) and np.mean(data[mask] > 0) > 0.99  # brain-masked, brain filled
    assert np.array_equal(np.asarray(nib.load(out / "mask_template.nii.gz").dataobj) > 0, mask)
    native = nib.load(truth / "t1_native.nii.gz")
    n4 = nib.load(out / "n4.nii.gz")
    assert n4.shape == native.shape and np.allclose(n4.affine, native.affine, atol=1e-4)
    # the forward transforms reproduce T1_TEMPLATE from T1_N4
    warped = ants.apply_transforms(mri.to_ants(load_template_t1(RES)), mri.to_ants(n4),
                                   reg.forward_transforms(out / "affine.mat", out / "warp.nii.gz"))
    assert np.allclose(warped.numpy()[mask], data[mask], rtol=1e-3, atol=1e-2 * data[mask].max())
    assert row["r_syn"] > 0.8 and row["r_syn"] >= row["r_affine"] - 0.02
    qc = pd.read_csv(out / "qc.tsv", sep="\t")
    assert list(qc.columns) == mri.QC_COLUMNS and qc.loc[0, "participant_id"] == f"sub-{truth.name[4:]}"
    assert (out / "qc.png").stat().st_size > 10_000
    sidecar = json.loads((out / "t1_template.json").read_text())
    assert sidecar["SkullStripped"] is True and sidecar["SpatialReference"] == "MNI152NLin6Asym"
    assert sidecar["Sources"] == [f"bids:raw:{truth.name}/t1_native.nii.gz"] and sidecar["RegistrationSimilarity"]["r_syn"] == row["r_syn"]
    assert not list(out.glob(".*")), "temporary files left behind"


# ---------------------------------------------------------------- the affine's input and schedule
def test_head_top_crop_cuts_the_neck_and_keeps_world_coordinates():
    """A 240 mm tall oblique field of view with the head's top at world z = 95 mm: only z >= -75 stays."""
    affine = np.eye(4)
    affine[:3, :3] = Rotation.from_euler("x", 10, degrees=True).as_matrix() * 2.0  # 2 mm, tilted 10 degrees
    affine[:3, 3] = [-60.0, -60.0, -140.0]
    shape = (60, 60, 120)
    world = nib.affines.apply_affine(affine, np.indices(shape).reshape(3, -1).T).reshape(*shape, 3)
    head = (np.abs(world[..., 0]) < 50) & (np.abs(world[..., 1]) < 50) & (world[..., 2] <= 95.0)
    image = mri.to_ants(nib.Nifti1Image(np.where(head, 100.0 + world[..., 2], 0).astype(np.float32), affine))
    head_img = image.new_image_like(head.astype(np.float32))
    cropped = reg.head_top_crop(image, head_img, below_top_mm=170.0)
    assert cropped.shape[:2] == shape[:2] and cropped.shape[2] < 0.85 * shape[2]  # the neck end is gone
    data = cropped.numpy()
    out = nib.affines.apply_affine(ants.to_nibabel_nifti(cropped).affine, np.indices(cropped.shape).reshape(3, -1).T)
    z_top = world[..., 2][head].max()
    kept = data.reshape(-1) > 0
    assert out[kept, 2].min() >= z_top - 170.0 - 1e-3  # nothing below the cut
    assert np.allclose(data.reshape(-1)[kept], 100.0 + out[kept, 2], atol=1e-3)  # same world, same values
    assert kept.sum() == np.count_nonzero(head & (world[..., 2] >= z_top - 170.0))
    assert reg.head_top_crop(image, head_img, below_top_mm=0) is image


def test_affine_schedule_is_physical_at_every_grid():
    """The same levels in mm (8, 4, 2) at every template grid; 6 voxels at 4 mm (24 mm) no longer."""
    settings = reg.RegistrationSettings.from_config(resolve_config({"preset": "demo"})["registration"])
    for resolution_mm, shrink in [(1.0, (4, 2, 1)), (2.0, (4, 2, 1)), (4.0, (2, 1, 1))]:
        grid = reg.affine_grid_mm(resolution_mm, settings)
        assert grid == max(resolution_mm, 2.0)
        assert reg.affine_schedule(grid, settings) == (shrink, (4.0, 2.0, 1.0))



# ---------------------------------------------------------------- bad input
def test_nan_voxels_fail_with_their_count(tmp_path):
    template = load_template_t1(RES)
    data = np.asarray(template.dataobj).copy()
    data[10:12, 10:12, 10] = np.nan
    t1 = save(data, template.affine, tmp_path / "nan.nii.gz")
    with pytest.raises(PipelineInputError, match=r"(?s)sub-NAN1_ses-bl.*4 NaN/inf voxels.*nan\.nii\.gz"):
        run_stage(t1, tmp_path / "out", subject="NAN1")
    assert not (tmp_path / "out").exists()


def test_truncated_t1_fails_naming_subject_and_file(tmp_path):
    template = load_template_t1(RES)
    t1 = save(np.asarray(template.dataobj), template.affine, tmp_path / "cut.nii.gz")
    t1.write_bytes(t1.read_bytes()[:300])
    with pytest.raises(PipelineInputError, match=r"(?s)sub-CUT1_ses-bl.*cannot be read.*cut\.nii\.gz.*rerun"):
        run_stage(t1, tmp_path / "out", subject="CUT1")
    assert not (tmp_path / "out").exists()


def test_empty_template_mask_fails(tmp_path):
    template = load_template_t1(RES)
    t1 = save(np.asarray(template.dataobj), template.affine, tmp_path / "t1.nii.gz")
    empty = save(np.zeros(template.shape), template.affine, tmp_path / "empty_mask.nii.gz")
    with pytest.raises(PipelineInputError, match=r"(?s)sub-EMPTY_ses-bl.*empty \(0 voxels\).*empty_mask"):
        run_stage(t1, tmp_path / "out", subject="EMPTY", template_mask_path=str(empty))


def test_empty_native_mask_fails_naming_the_volume():
    with pytest.raises(PipelineInputError, match=r"(?s)sub-X_ses-bl.*empty: 0\.0 mL \(0 voxels\)"):
        mri.check_native_mask(np.zeros((5, 5, 5), bool), np.eye(4), 1800.0, "sub-X_ses-bl", "t1.nii.gz")
    few = np.zeros((5, 5, 5), bool)
    few[0] = True  # 25 voxels of 2 mm = 0.2 mL
    with pytest.raises(PipelineInputError, match=r"nearly empty: 0\.2 mL \(25 voxels\)"):
        mri.check_native_mask(few, np.diag([2.0, 2.0, 2.0, 1.0]), 1800.0, "s", "t1")
    assert mri.check_native_mask(np.ones((100, 100, 100), bool), np.eye(4), 1800.0, "s", "t1") == 1000.0


def test_low_similarity_fails_naming_subject_and_value():
    with pytest.raises(PipelineInputError, match=r"(?s)sub-Y_ses-m12.*after affine: Pearson r = 0\.123.*t1w\.nii"):
        mri.check_similarity(0.123, 0.9, 0.4, "sub-Y_ses-m12", "t1w.nii.gz")
    with pytest.raises(PipelineInputError, match="after SyN: Pearson r = 0.350"):
        mri.check_similarity(0.5, 0.35, 0.4, "s", "t1")
    mri.check_similarity(0.5, 0.6, 0.4, "s", "t1")


# ---------------------------------------------------------------- FSL path and backend choice
def test_auto_picks_ants_without_fsl_and_fsl_with_it(monkeypatch, tmp_path):
    monkeypatch.delenv("FSLDIR", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert not reg.fsl_available() and reg.resolve_affine_backend("auto") == "ants"
    assert reg.resolve_affine_backend("ants") == "ants"
    with pytest.raises(PipelineInputError, match="registration.affine: auto"):
        reg.resolve_affine_backend("fsl")
    fsldir = tmp_path / "fsl"
    (fsldir / "bin").mkdir(parents=True)
    (fsldir / "bin" / "flirt").write_text("#!/bin/sh\n")
    monkeypatch.setenv("FSLDIR", str(fsldir))
    assert reg.resolve_affine_backend("auto") == "fsl"


def test_flirt_command_line(tmp_path):
    moving, fixed = tmp_path / "t1.nii.gz", tmp_path / "tpl.nii.gz"
    for p in (moving, fixed):
        save(np.zeros((4, 4, 4)), np.eye(4), p)
    cmd = reg.flirt_interface(moving, fixed, tmp_path / "x.mat", tmp_path / "x.nii.gz").cmdline
    assert cmd.startswith(f"flirt -in {moving} -ref {fixed} -out {tmp_path / 'x.nii.gz'} -omat {tmp_path / 'x.mat'}")
    for part in ("-cost corratio", "-dof 12", "-interp trilinear", "-searchrx -90 90", "-searchry -90 90",
                 "-searchrz -90 90"):
        assert part in cmd


# ---------------------------------------------------------------- config, determinism, summary
def test_presets_validate_and_level_lengths_must_match():
    for preset in ("demo", "paper"):
        config = resolve_config({"preset": preset})
        validate_config(config)
        settings = reg.RegistrationSettings.from_config(config["registration"])
        assert settings.affine == "auto" and len(settings.affine_iterations) == len(settings.affine_level_mm)
    with pytest.raises(ValueError, match="same length"):
        reg.RegistrationSettings.from_config({"affine_iterations": [10, 10], "affine_level_mm": [4, 2, 1]})
    bad = resolve_config({"preset": "demo", "registration": {"affine": "spm"}})
    with pytest.raises(ValueError, match="registration.affine"):
        validate_config(bad)


@pytest.mark.slow
def test_affine_is_reproducible_with_one_thread_and_a_seed(demo_run, tmp_path):
    _, out, _ = demo_run
    template = mri.to_ants(load_template_t1(RES))
    moving = ants.image_read(str(out / "n4.nii.gz"))
    mask = np.asarray(load_template_mask(RES).dataobj) > 0
    settings = reg.RegistrationSettings(init_search_below=-1.0)

    def score(mat: str) -> float:
        return reg.brain_correlation(ants.apply_transforms(template, moving, [mat]), template, mask)

    params = []
    for run in ("a", "b"):
        (tmp_path / run).mkdir()
        reg.affine_ants(template, moving, score, settings, tmp_path / run / "aff.mat", tmp_path / run)
        params.append(ants.read_transform(str(tmp_path / run / "aff.mat")).parameters)
    assert np.array_equal(params[0], params[1])


@pytest.mark.slow
def test_stage_is_bit_identical_with_two_threads_and_the_gc_affine(demo_run, tmp_path):
    """``threads: 2`` with ``affine_metric: GC`` (the paper preset's pair) reruns byte for byte: GC
    and SyN's CC sum in a fixed order (Mattes MI does not with > 1 thread). Each run is a fresh
    process: ITK fixes its thread count at first use."""
    truth, _, _ = demo_run
    registration = resolve_config({"preset": "demo", "registration": {"threads": 2, "affine_metric": "GC"}})
    files = {}
    for run in ("a", "b"):
        out = tmp_path / run
        kwargs = dict(t1=str(truth / "t1_native.nii.gz"), subject="REPRO", session="bl", resolution_mm=RES,
                      registration=registration["registration"], **{k: str(out / name) for k, name in OUTPUTS.items()})
        code = "import json, sys; from mri2tau.preprocess.mri import preprocess_t1; preprocess_t1(**json.loads(sys.argv[1]))"
        subprocess.run([sys.executable, "-c", code, json.dumps(kwargs)], check=True, capture_output=True)
        files[run] = {name: (out / name).read_bytes() for name in OUTPUTS.values()}
    assert files["a"] == files["b"]


def test_registration_summary_sorts_sessions(tmp_path):
    rows = [dict.fromkeys(mri.QC_COLUMNS, 1.0) | {"participant_id": p, "session_id": "ses-bl"} for p in ("sub-B", "sub-A")]
    paths = []
    for i, row in enumerate(rows):
        paths.append(tmp_path / f"{i}.tsv")
        pd.DataFrame([row]).to_csv(paths[-1], sep="\t", index=False)
    table = mri.registration_summary(paths, tmp_path / "qc" / "registration.tsv")
    assert table["participant_id"].tolist() == ["sub-A", "sub-B"]
    assert pd.read_csv(tmp_path / "qc" / "registration.tsv", sep="\t").shape == (2, len(mri.QC_COLUMNS))



def test_bundled_template_brain_mask_has_no_enclosed_holes():
    """nimare's mask has ~0.5 % enclosed holes (dots in masked figures); load_template_mask fills them."""
    from scipy import ndimage

    mask = np.asarray(load_template_mask(RES).dataobj) > 0
    assert mask.sum() > 20_000 * (4.0 / RES) ** 3  # a whole brain (~1.4-1.8 L)
    assert np.array_equal(ndimage.binary_fill_holes(mask), mask)
