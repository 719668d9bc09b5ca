"""PET stage against known truth: motion, PET->T1->template in one resampling, SUVR, bad input.

Synthetic subject (4 mm, built here from the template): a known SUVR map in template space is
carried into a native T1 world by a known rigid + a constant-shift "warp", into a PET world by a
known PET->T1 offset, and moved per frame by known head motion. The pipeline must undo all of it.
"""

from __future__ import annotations

import json
from pathlib import Path

import ants
import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import torch
from scipy import ndimage
from scipy.spatial.transform import Rotation

from mri2tau.errors import PipelineInputError
from mri2tau.preprocess import motion as motionmod
from mri2tau.preprocess import pet as petmod
from mri2tau.preprocess import transforms
from mri2tau.preprocess import suvr as suvrmod
from mri2tau.templates import load_template_mask, load_template_t1, roi_masks, template_grid

torch.set_num_threads(1)
RES = 4.0
REF_BQML = 9000.0
SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"

MOTION_TRUTH = np.array([  # frame k relative to frame 1: trans x,y,z (mm), rot x,y,z (deg)
    [0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
    [0.6, -0.4, 0.3, 0.5, -0.3, 0.4],
    [1.2, -0.6, 0.8, 1.0, -0.6, 0.7],
    [1.6, -1.1, 1.0, 1.4, -1.0, 1.2],
    [2.0, -1.3, 1.5, 1.8, -1.2, 1.5],
    [2.3, -1.6, 1.8, 2.0, -1.5, 1.9],
])


def assert_motion_close(table: pd.DataFrame, truth: np.ndarray, mm: float = 0.5, deg: float = 0.5) -> None:
    """Estimated motion parameters within ``mm`` / ``deg`` of the truth (frames x 6)."""
    est = table[motionmod.MOTION_COLUMNS[1:]].to_numpy()
    err_trans, err_rot = np.abs(est[:, :3] - truth[:, :3]).max(), np.abs(est[:, 3:] - truth[:, 3:]).max()
    assert err_trans < mm and err_rot < deg, f"motion error {err_trans:.3f} mm, {err_rot:.3f} deg"


def assert_roi_suvr_close(suvr: np.ndarray, truth: np.ndarray, rois: dict, tolerance: float) -> None:
    """Mean SUVR in every Braak ROI (and meta-temporal) within ``tolerance`` (relative) of the truth."""
    for roi in ["braak1", "braak2", "braak3", "braak4", "braak5", "braak6", "meta_temporal"]:
        expected, got = truth[rois[roi]].mean(), suvr[rois[roi]].mean()
        assert abs(got / expected - 1) < tolerance, f"{roi}: SUVR {got:.3f} vs truth {expected:.3f}"


def rigid(trans_mm, rot_deg, centre=(0.0, 0.0, 0.0)) -> np.ndarray:
    """4x4 RAS: p -> R (p - c) + c + t (extrinsic x-y-z Euler angles)."""
    m = np.eye(4)
    m[:3, :3] = Rotation.from_euler("xyz", rot_deg, degrees=True).as_matrix()
    c = np.asarray(centre, dtype=float)
    m[:3, 3] = c + np.asarray(trans_mm) - m[:3, :3] @ c
    return m


def resample(volume: np.ndarray, vox_map: np.ndarray, shape) -> np.ndarray:
    """``out[v] = volume[vox_map @ v]`` (linear, 0 outside)."""
    return ndimage.affine_transform(volume, vox_map[:3, :3], vox_map[:3, 3], output_shape=shape, order=1)


def save(data: np.ndarray, affine: np.ndarray, path: Path) -> Path:
    img = nib.Nifti1Image(np.asarray(data, dtype=np.float32), affine)
    img.header.set_xyzt_units("mm", "sec")
    nib.save(img, path)
    return path


def write_shift_warp(shift_ras: np.ndarray, path: Path) -> Path:
    """ANTs displacement field on the template grid: template point p -> p + shift (RAS mm)."""
    shape, affine = template_grid(RES)
    grid = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), -1)
    points = grid @ affine[:3, :3].T + affine[:3, 3] + shift_ras
    return transforms.dense_map_to_ants_warp(nib.Nifti1Image(points.astype(np.float32), affine), path)


@pytest.fixture(scope="module")
def subject(tmp_path_factory) -> dict:
    """Files of one synthetic subject plus its truth."""
    tmp = tmp_path_factory.mktemp("pet_subject")
    shape, a_tpl = template_grid(RES)
    t1_tpl = np.asarray(load_template_t1(RES).dataobj, dtype=np.float32)
    brain = np.asarray(load_template_mask(RES).dataobj) > 0
    rois = roi_masks(RES)
    # activity pattern: nonspecific uptake following tissue contrast + tau in Braak I-IV
    tissue = np.clip(t1_tpl / np.percentile(t1_tpl[brain], 95), 0, 1.2)
    activity = brain * (0.7 + 0.4 * tissue)
    for roi, extra in {"braak1": 1.2, "braak2": 0.8, "braak3": 0.6, "braak4": 0.4}.items():
        activity += extra * rois[roi]
    activity = ndimage.gaussian_filter(activity, 1.0).astype(np.float32)
    reference = suvrmod.cerebellar_gm_reference(RES, erosion_vox=0)
    suvr_truth = activity / activity[reference].mean()

    # template -> native T1 world: p_nat = G(p + u)
    g = rigid([4.0, -6.0, 3.0], [6.0, -4.0, 5.0])
    u = np.array([2.0, -3.0, 1.5])
    shift = np.eye(4)
    shift[:3, 3] = u
    tpl_to_nat = g @ shift
    a_nat = rigid([1.0, 2.0, -3.0], [3.0, 2.0, -2.0]) @ a_tpl  # oblique native grid
    nat_vox_to_tpl_vox = np.linalg.inv(a_tpl) @ np.linalg.inv(tpl_to_nat) @ a_nat
    t1_nat = resample(t1_tpl, nat_vox_to_tpl_vox, shape)
    brain_nat = resample(brain.astype(np.float32), nat_vox_to_tpl_vox, shape) >= 0.5

    # PET world (frame 1) -> T1 world: Q; PET grid 3.5 mm axis-aligned covering the head
    q = rigid([3.0, -2.0, 5.0], [2.0, 1.0, -3.0])
    pet_shape = (52, 62, 52)
    a_pet = np.diag([3.5, 3.5, 3.5, 1.0])
    a_pet[:3, 3] = -np.array(pet_shape) * 3.5 / 2 + np.array([0.0, -15.0, 10.0])
    centre = motionmod.fov_centre(pet_shape, a_pet)
    rng = np.random.default_rng(0)
    frames = []
    for params in MOTION_TRUTH:
        h = rigid(params[:3], params[3:], centre)
        pet_vox_to_tpl_vox = np.linalg.inv(a_tpl) @ np.linalg.inv(tpl_to_nat) @ q @ np.linalg.inv(h) @ a_pet
        frame = REF_BQML * resample(activity / activity[reference].mean(), pet_vox_to_tpl_vox, pet_shape)
        frames.append(frame + rng.normal(0, 0.01 * REF_BQML, pet_shape) * (frame > 0))
    pet4d = np.stack(frames, axis=-1).astype(np.float32)

    affine_xfm = tmp / "affine.mat"
    ants.write_transform(transforms.ras_to_ants_linear(g), str(affine_xfm))
    files = {
        "pet": save(pet4d, a_pet, tmp / "pet.nii.gz"),
        "t1": save(t1_nat, a_nat, tmp / "t1.nii.gz"),
        "brain_nat": save(brain_nat.astype(np.float32), a_nat, tmp / "brain_nat.nii.gz"),
        "affine": affine_xfm,
        "warp": write_shift_warp(u, tmp / "warp.nii.gz"),
    }
    return {"tmp": tmp, "files": files, "suvr_truth": suvr_truth, "rois": rois, "q": q,
            "pet4d": pet4d, "a_pet": a_pet, "reference": reference, "brain": brain}


PET_SETTINGS = {"motion_correction": "ants", "reference_region": "cerebellar_gm", "erosion_vox": 0,
                "trimmed_mean_percent": 0.0, "min_brain_overlap": 0.5}


@pytest.fixture(scope="module")
def processed(subject) -> dict:
    """Run motion -> PET->T1 -> template -> SUVR on the synthetic subject."""
    tmp, f = subject["tmp"], subject["files"]
    out = petmod.process_session(
        pet=f["pet"], t1_n4=f["t1"], brain_mask_native=f["brain_nat"], t1_to_template=[f["warp"], f["affine"]],
        out_dir=tmp / "out", subject="SYN01", session="bl", resolution_mm=RES, expected_frames=6,
        settings=PET_SETTINGS)
    pet_tpl = np.asarray(nib.load(out["pet_template"]).dataobj)
    return {**out, "pet2t1_matrix": transforms.ants_linear_to_ras(ants.read_transform(str(out["pet2t1"]))),
            "overlap": petmod.brain_overlap(pet_tpl, subject["brain"])}


def test_motion_within_half_mm_and_half_degree(processed):
    table = pd.read_csv(processed["motion"], sep="\t")
    assert list(table["frame"]) == [1, 2, 3, 4, 5, 6]
    assert_motion_close(table, MOTION_TRUTH)
    assert table["framewise_displacement_mm"].iloc[0] == 0
    assert (table["framewise_displacement_mm"].iloc[1:] > 0).all()


def test_pet_to_t1_recovers_known_offset(subject, processed):
    # ANTs maps a T1 point to a PET point: the inverse of the PET->T1 world map Q
    t1_to_pet_truth = np.linalg.inv(subject["q"])
    brain_pts = np.array([[0, 0, 0], [40, 0, 0], [0, 50, 0], [0, 0, 40], [-40, -50, -20]], float)
    hom = np.c_[brain_pts, np.ones(len(brain_pts))].T
    err = np.linalg.norm((processed["pet2t1_matrix"] @ hom - t1_to_pet_truth @ hom)[:3], axis=0)
    assert err.max() < 1.5, f"PET->T1 point error up to {err.max():.2f} mm"


def test_suvr_within_5_percent_of_truth_in_each_braak_roi(subject, processed):
    suvr = np.asarray(nib.load(processed["suvr"]).dataobj)
    assert suvr.shape == template_grid(RES)[0]
    assert_roi_suvr_close(suvr, subject["suvr_truth"], subject["rois"], 0.05)
    stats = pd.read_csv(processed["stats"], sep="\t").iloc[0]
    assert stats["reference_n_voxels"] > 100
    assert abs(stats["reference_mean_bqml"] / REF_BQML - 1) < 0.05
    assert stats["max_translation_mm"] == pytest.approx(np.linalg.norm(MOTION_TRUTH[:, :3], axis=1).max(), abs=0.5)
    assert processed["overlap"] > 0.9


def test_template_resampling_applies_warp_then_affine_then_pet2t1(tmp_path):
    """A blob at a known PET position lands where the composed point map says (one resampling)."""
    shape, a_tpl = template_grid(RES)
    a_pet = np.diag([2.0, 2.0, 2.0, 1.0])
    a_pet[:3, 3] = [-90.0, -110.0, -80.0]
    pet_shape = (90, 110, 90)
    blob_pet = np.array([20.0, -30.0, 15.0])
    grid = np.stack(np.meshgrid(*[np.arange(n) for n in pet_shape], indexing="ij"), -1) @ a_pet[:3, :3].T + a_pet[:3, 3]
    blob = np.exp(-np.sum((grid - blob_pet) ** 2, -1) / (2 * 5.0**2))
    blob[blob < 1e-3] = 0  # keep the image's background exactly zero
    pet_path = save(blob * 1000, a_pet, tmp_path / "blob.nii.gz")
    pet2t1 = rigid([5.0, -4.0, 3.0], [0.0, 0.0, 0.0])  # T1 point -> PET point
    affine = rigid([-6.0, 8.0, 2.0], [0.0, 0.0, 25.0])  # template (after warp) -> T1 point
    u = np.array([10.0, 0.0, -6.0])  # warp: p -> p + u
    ants.write_transform(transforms.ras_to_ants_linear(pet2t1), str(tmp_path / "pet2t1.mat"))
    ants.write_transform(transforms.ras_to_ants_linear(affine), str(tmp_path / "affine.mat"))
    warp = write_shift_warp(u, tmp_path / "warp.nii.gz")
    out = tmp_path / "tpl.nii.gz"
    petmod.pet_to_template(pet_path, tmp_path / "pet2t1.mat", [warp, tmp_path / "affine.mat"], out,
                           subject="BLOB", resolution_mm=RES, min_brain_overlap=0.0)
    data = np.asarray(nib.load(out).dataobj)
    centroid = a_tpl[:3, :3] @ np.array(ndimage.center_of_mass(data)) + a_tpl[:3, 3]
    # template point p maps to PET point pet2t1(affine(p + u)); invert for the blob
    expected = np.linalg.inv(affine) @ np.linalg.inv(pet2t1) @ np.r_[blob_pet, 1.0]
    assert np.linalg.norm(centroid - (expected[:3] - u)) < 1.0, (centroid, expected[:3] - u)


def test_frame_weights_follow_sidecar_durations(tmp_path):
    side = tmp_path / "pet.json"
    side.write_text(json.dumps({"FrameDuration": [300, 300, 600]}))
    assert np.allclose(motionmod.frame_weights(side, 3), [0.25, 0.25, 0.5])
    assert np.allclose(motionmod.frame_weights(None, 4), 0.25)
    assert np.allclose(motionmod.frame_weights(side, 6), 1 / 6)  # length mismatch -> equal weights


def test_ants_transform_round_trip_matches_ras_matrix():
    m = rigid([3.0, -2.0, 5.0], [4.0, -7.0, 2.0], centre=(10.0, 20.0, -5.0))
    assert np.allclose(transforms.ants_linear_to_ras(transforms.ras_to_ants_linear(m)), m, atol=1e-6)


def test_motion_parameters_recover_known_matrices():
    centre = np.array([5.0, -10.0, 20.0])
    mats = [rigid(p[:3], p[3:], centre) for p in MOTION_TRUTH]
    table = motionmod.motion_parameters(mats, centre)
    assert np.allclose(table[motionmod.MOTION_COLUMNS[1:]].to_numpy(), MOTION_TRUTH, atol=1e-9)


def test_mcflirt_command_line_and_matrix_conversion(subject, tmp_path):
    iface = motionmod.mcflirt_interface(subject["files"]["pet"], tmp_path / "mc.nii.gz")
    cmd = iface.cmdline
    assert cmd.startswith("mcflirt -in ") and "-refvol 0" in cmd and "-mats" in cmd and "-plots" in cmd
    # FLIRT frame-k -> frame-1 matrix of a known head motion converts back to that motion (world RAS)
    from fsl.data.image import Image
    from fsl.transform.flirt import toFlirt

    frame_img = nib.Nifti1Image(subject["pet4d"][..., 0], subject["a_pet"])
    motion = rigid([1.5, -0.5, 2.0], [1.0, 2.0, -1.5], motionmod.fov_centre(frame_img.shape, subject["a_pet"]))
    frame = Image(frame_img)
    flirt = toFlirt(np.linalg.inv(motion), frame, frame, from_="world", to="world")
    assert np.allclose(motionmod.flirt_to_motion(flirt, frame_img), motion, atol=1e-6)


def test_motion_method_choice(monkeypatch):
    monkeypatch.delenv("FSLDIR", raising=False)
    assert motionmod.choose_motion_method("auto") == "ants"
    with pytest.raises(RuntimeError, match="pet.motion_correction"):
        motionmod.choose_motion_method("fsl")


# ---------------------------------------------------------------- bad input
def _write_pet(tmp_path: Path, data: np.ndarray, name="bad.nii.gz") -> Path:
    return save(data, np.diag([4.0, 4.0, 4.0, 1.0]), tmp_path / name)


def test_wrong_number_of_frames_fails_naming_subject_and_number(subject, tmp_path):
    path = _write_pet(tmp_path, subject["pet4d"][..., :4])
    with pytest.raises(PipelineInputError) as err:
        motionmod.correct_motion(path, tmp_path / "m.nii.gz", tmp_path / "m.tsv", subject="BAD01", expected_frames=6)
    msg = str(err.value)
    assert "BAD01" in msg and "pet_motion" in msg and "4 frames" in msg and "expected 6" in msg
    assert not (tmp_path / "m.nii.gz").exists() and not (tmp_path / "m.tsv").exists()


def test_nan_voxels_fail_with_their_count(subject, tmp_path):
    data = subject["pet4d"].copy()
    data[10, 10, 10, 2] = np.nan
    data[11, 10, 10, 3] = np.nan
    path = _write_pet(tmp_path, data)
    with pytest.raises(PipelineInputError, match=r"subject BAD02.*pet_motion.*\b2 NaN"):
        motionmod.correct_motion(path, tmp_path / "m.nii.gz", tmp_path / "m.tsv", subject="BAD02", expected_frames=6)
    assert not list(tmp_path.glob("m.*"))


def test_truncated_pet_file_fails_naming_subject_file_and_fix(subject, tmp_path):
    path = _write_pet(tmp_path, subject["pet4d"], name="sub-BAD07_pet.nii.gz")
    path.write_bytes(path.read_bytes()[:400])  # an interrupted copy: gzip stream ends early
    with pytest.raises(PipelineInputError) as err:
        motionmod.correct_motion(path, tmp_path / "m.nii.gz", tmp_path / "m.tsv", subject="BAD07", expected_frames=6)
    msg = str(err.value)
    assert "BAD07" in msg and "pet_motion" in msg and str(path) in msg and "reconvert" in msg, msg
    assert not list(tmp_path.glob("m.*"))


def test_empty_frame_fails(subject, tmp_path):
    data = subject["pet4d"].copy()
    data[..., 4] = 0
    path = _write_pet(tmp_path, data)
    with pytest.raises(PipelineInputError, match=r"frame\(s\) \[5\]"):
        motionmod.correct_motion(path, tmp_path / "m.nii.gz", tmp_path / "m.tsv", subject="BAD03", expected_frames=6)


def test_pet_without_brain_overlap_fails_naming_the_fraction(subject, processed, tmp_path):
    # the PET mean shifted 200 mm away from the head: nothing lands in the template brain
    img = nib.load(processed["mean"])
    moved = img.affine.copy()
    moved[:3, 3] += [0.0, 0.0, 200.0]
    far = save(np.asarray(img.dataobj), moved, tmp_path / "far.nii.gz")
    out = tmp_path / "tpl.nii.gz"
    with pytest.raises(PipelineInputError) as err:
        petmod.pet_to_template(far, processed["pet2t1"], [subject["files"]["warp"], subject["files"]["affine"]],
                               out, subject="BAD04", resolution_mm=RES, min_brain_overlap=0.5)
    msg = str(err.value)
    assert "BAD04" in msg and "pet_to_template" in msg and "covers 0.0" in msg
    assert not out.exists()


def test_empty_native_brain_mask_fails_before_registration(subject, processed, tmp_path):
    mask = nib.load(subject["files"]["brain_nat"])
    empty = save(np.zeros(mask.shape), mask.affine, tmp_path / "empty_mask.nii.gz")
    with pytest.raises(PipelineInputError, match=r"subject BAD06.*pet_to_t1.*empty \(0 voxels\)"):
        petmod.register_pet_to_t1(processed["mean"], subject["files"]["t1"], tmp_path / "x.mat", subject="BAD06",
                                  brain_mask=empty)
    assert not (tmp_path / "x.mat").exists()


def test_empty_reference_region_fails(subject, processed, tmp_path):
    empty = save(np.zeros(template_grid(RES)[0]), template_grid(RES)[1], tmp_path / "empty_ref.nii.gz")
    with pytest.raises(PipelineInputError, match="empty"):
        suvrmod.write_reference_mask(tmp_path / "ref.nii.gz", reference_region=str(empty), resolution_mm=RES)
    # a mask outside the PET field of view is empty where it matters: SUVR fails, nothing written
    outside = np.zeros(template_grid(RES)[0], np.uint8)
    outside[0:2, 0:2, 0:2] = 1
    ref = save(outside, template_grid(RES)[1], tmp_path / "outside.nii.gz")
    with pytest.raises(PipelineInputError, match=r"subject BAD05.*suvr.*0 voxels"):
        suvrmod.compute_suvr(processed["pet_template"], ref, tmp_path / "s.nii.gz", tmp_path / "s.tsv", subject="BAD05")
    assert not (tmp_path / "s.nii.gz").exists() and not (tmp_path / "s.tsv").exists()


# ---------------------------------------------------------------- reference region
def test_cerebellar_gm_reference_is_gray_matter_inside_the_cerebellum():
    from mri2tau.templates import cerebellar_gm_atlas_mask

    ref0 = suvrmod.cerebellar_gm_reference(RES, erosion_vox=0)
    ref1 = suvrmod.cerebellar_gm_reference(RES, erosion_vox=1)
    atlas = cerebellar_gm_atlas_mask(RES)
    assert ref0.sum() > 200 and not (ref0 & ~atlas).any()
    assert 0 < ref1.sum() < ref0.sum() and not (ref1 & ~ref0).any()
    # gray matter is darker than white matter on the template T1 (k-means class order)
    t1 = np.asarray(load_template_t1(RES).dataobj)
    gm = suvrmod.template_gray_matter(RES)
    brain = np.asarray(load_template_mask(RES).dataobj) > 0
    assert t1[gm].mean() < t1[brain & ~gm].max() and 0.2 < gm.sum() / brain.sum() < 0.6


def test_trimmed_mean_ignores_outliers():
    values = np.ones((10, 10, 10), np.float32)
    values[0, 0, :2] = 1000.0
    mask = np.ones_like(values, bool)
    assert suvrmod.reference_mean(values, mask, 0.0)[0] > 2.0
    mean, n = suvrmod.reference_mean(values, mask, 5.0)
    assert mean == pytest.approx(1.0) and n == 1000


def test_user_reference_mask_on_another_grid_is_resampled(tmp_path):
    shape, affine = template_grid(2.0)
    cube = np.zeros(shape, np.uint8)
    cube[40:50, 40:50, 20:30] = 1
    path = save(cube, affine, tmp_path / "cube.nii.gz")
    mask = suvrmod.reference_region_mask(str(path), RES)
    assert mask.shape == template_grid(RES)[0]
    assert mask.sum() == pytest.approx(cube.sum() / 8, rel=0.35)


# ---------------------------------------------------------------- end to end on the demo cohort
DEMO_VOXEL_MM = 2.0  # at 4 mm, interpolation alone costs ~5 % in the 4-voxel-thick entorhinal ROI


def truth_t1_to_template(truth: Path, out: Path) -> list[Path]:
    """The demo's true template->native mapping as ANTs transforms ``[warp, identity affine]``."""
    warp = transforms.dense_map_to_ants_warp(nib.load(truth / "template_to_native_coords.nii.gz"), out / "true_warp.nii.gz")
    ants.write_transform(transforms.ras_to_ants_linear(np.eye(4)), str(out / "identity.mat"))
    return [warp, out / "identity.mat"]


def truth_brain_mask_native(truth: Path, out: Path) -> Path:
    """The template brain mask carried to the T1 native grid with the true mapping (nearest)."""
    coords = nib.load(truth / "native_to_template_coords.nii.gz")
    tpl = load_template_mask(DEMO_VOXEL_MM)
    pts = np.asarray(coords.dataobj, dtype=np.float64)
    vox = (pts - tpl.affine[:3, 3]) @ np.linalg.inv(tpl.affine[:3, :3]).T
    mask = ndimage.map_coordinates(np.asarray(tpl.dataobj, np.float32), np.moveaxis(vox, -1, 0), order=0)
    return save(mask, coords.affine, out / "brain_mask_native.nii.gz")


def process_demo_cohort(root: Path, out: Path, resolution_mm: float, sessions: int | None = None) -> list[dict]:
    """Demo pairs of the cohort at ``root``: DICOM -> BIDS (convert stage) -> PET stage (demo preset
    settings) with the true T1<->template mapping, into ``out/<sub>``. Returns per session the
    pairs row, the BIDS files, the PET stage's paths and the truth folder."""
    from mri2tau.config import load_preset
    from mri2tau.convert.select import select_series
    from mri2tau.convert.session import convert_session

    preset = load_preset("demo")
    data = preset["data"]
    pairs = select_series(
        dicom_root=root / "ADNI", clinical_csv=root / "ADNIMERGE.csv", pairs_tsv=out / "pairs.tsv",
        excluded_tsv=out / "excluded.tsv", t1_patterns=data["t1_description_patterns"],
        pet_patterns=data["pet_description_patterns"], exclude_patterns=data["exclude_description_patterns"],
        max_days=data["max_mri_pet_days"])
    done = []
    for row in pairs.head(sessions).itertuples():
        folder = out / row.sub
        folder.mkdir()
        bids = {k: folder / name for k, name in [("t1w", "t1w.nii.gz"), ("t1w_json", "t1w.json"),
                                                 ("pet", "pet.nii.gz"), ("pet_json", "pet.json")]}
        convert_session(sub=row.sub, ses=row.ses, t1_dir=row.t1_dir, pet_dir=row.pet_dir,
                        expected_frames=data["pet_n_frames"], **bids)
        truth = root / "truth" / f"sub-{row.sub}"
        paths = petmod.process_session(
            pet=bids["pet"], sidecar=bids["pet_json"], t1_n4=bids["t1w"],
            brain_mask_native=truth_brain_mask_native(truth, folder),
            t1_to_template=truth_t1_to_template(truth, folder), out_dir=folder / "pet", subject=row.sub,
            session=row.ses, resolution_mm=resolution_mm, expected_frames=data["pet_n_frames"],
            settings=preset["pet"])
        done.append({"row": row, "bids": bids, "paths": paths, "truth": truth, "root": root, "out": folder,
                     "sub": row.sub})
    return done


@pytest.fixture(scope="module")
def demo_session(tmp_path_factory) -> dict:
    """One demo subject (2 mm): DICOM -> BIDS (convert stage) -> PET stage, with the true T1<->template mapping."""
    generate_cohort = pytest.importorskip("mri2tau.demo.cohort").generate_cohort
    root, out = tmp_path_factory.mktemp("demo2mm"), tmp_path_factory.mktemp("demo_pet")
    generate_cohort(root, subjects=2, seed=0, voxel_mm=DEMO_VOXEL_MM)
    return process_demo_cohort(root, out, DEMO_VOXEL_MM, sessions=1)[0]


@pytest.mark.slow
def test_demo_motion_within_half_mm_and_half_degree(demo_session):
    truth = pd.read_csv(demo_session["truth"] / "motion.tsv", sep="\t")
    table = pd.read_csv(demo_session["paths"]["motion"], sep="\t")
    assert list(table["frame"]) == list(truth["frame"])
    assert_motion_close(table, truth[motionmod.MOTION_COLUMNS[1:]].to_numpy())


@pytest.mark.slow
def test_demo_pet_to_t1_recovers_session_offset(demo_session):
    pet_to_t1 = np.loadtxt(demo_session["truth"] / "pet_to_t1.txt")  # PET world -> T1 world
    estimated = transforms.ants_linear_to_ras(ants.read_transform(str(demo_session["paths"]["pet2t1"])))
    points = np.c_[[[0, -20, 10], [50, -20, 10], [-50, -20, 10], [0, 50, 30], [0, -80, -30]], np.ones(5)].T
    err = np.linalg.norm((estimated @ pet_to_t1 @ points - points)[:3], axis=0)
    assert err.max() < 2.0, f"PET->T1 error up to {err.max():.2f} mm"


@pytest.mark.slow
def test_demo_averaged_input_skips_motion_and_recovers_suvr(demo_session):
    """data.pet_input: averaged (ADNI step 2, one frame): the same PET stage without motion correction."""
    from mri2tau.config import load_preset
    from mri2tau.convert.select import select_series
    from mri2tau.convert.session import convert_session

    root, out, preset = demo_session["root"], demo_session["out"] / "averaged", load_preset("demo")
    data = preset["data"]
    pairs = select_series(
        dicom_root=root / "ADNI", clinical_csv=root / "ADNIMERGE.csv", pairs_tsv=out / "pairs.tsv",
        excluded_tsv=out / "excluded.tsv", t1_patterns=data["t1_description_patterns"],
        pet_patterns=data["pet_description_patterns"], exclude_patterns=data["exclude_description_patterns"],
        max_days=data["max_mri_pet_days"], pet_input="averaged")
    row = pairs.set_index("sub").loc[demo_session["sub"]]
    assert (row["pet_input"], row["pet_step"], row["pet_frames"]) == ("averaged", 2, 1)
    bids = {k: out / name for k, name in [("t1w", "t1w.nii.gz"), ("t1w_json", "t1w.json"), ("pet", "pet.nii.gz"),
                                          ("pet_json", "pet.json")]}
    convert_session(sub=demo_session["sub"], ses=row["ses"], t1_dir=row["t1_dir"], pet_dir=row["pet_dir"],
                    expected_frames=int(row["pet_frames"]), t1_uid=row["t1_series_uid"],
                    pet_uid=row["pet_series_uid"], pet_input=row["pet_input"], pet_step=int(row["pet_step"]), **bids)
    truth = demo_session["truth"]
    paths = petmod.process_session(
        pet=bids["pet"], sidecar=bids["pet_json"], t1_n4=bids["t1w"],
        brain_mask_native=out.parent / "brain_mask_native.nii.gz", t1_to_template=truth_t1_to_template(truth, out),
        out_dir=out / "pet", subject=demo_session["sub"], session=row["ses"], resolution_mm=DEMO_VOXEL_MM,
        expected_frames=data["pet_n_frames"], settings=preset["pet"])  # 6 for raw input; the sidecar says 1 frame
    motion = pd.read_csv(paths["motion"], sep="\t")
    assert len(motion) == 1 and not motion[motionmod.MOTION_COLUMNS[1:]].to_numpy().any()
    suvr = np.asarray(nib.load(paths["suvr"]).dataobj)
    blurred = np.asarray(nib.load(truth / "suvr_template_blurred.nii.gz").dataobj)
    assert_roi_suvr_close(suvr, blurred, roi_masks(DEMO_VOXEL_MM), 0.05)
    raw_suvr = np.asarray(nib.load(demo_session["paths"]["suvr"]).dataobj)
    brain = np.asarray(load_template_mask(DEMO_VOXEL_MM).dataobj) > 0
    assert np.corrcoef(suvr[brain], raw_suvr[brain])[0, 1] > 0.95  # the same scan by either path


@pytest.mark.slow
def test_demo_suvr_within_5_percent_of_blurred_truth(demo_session):
    truth = np.asarray(nib.load(demo_session["truth"] / "suvr_template_blurred.nii.gz").dataobj)
    suvr = np.asarray(nib.load(demo_session["paths"]["suvr"]).dataobj)
    assert suvr.shape == truth.shape == template_grid(DEMO_VOXEL_MM)[0]
    assert_roi_suvr_close(suvr, truth, roi_masks(DEMO_VOXEL_MM), 0.05)
