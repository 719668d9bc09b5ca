"""The synthetic ADNI-like demo cohort: layout, DICOM tags, determinism and ground truth.

Uses the session's shared 4-subject, 4 mm cohort (``demo_cohort`` in conftest.py):
CN/Siemens/sagittal, LMCI/GE/oblique, AD/Philips/axial, EMCI/Siemens/sagittal with a 100+ day
MRI-PET gap.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pydicom
import pytest
from nibabel.orientations import apply_orientation, io_orientation, ornt_transform
from scipy import ndimage as ndi

from mri2tau.demo import anatomy
from mri2tau.demo.clinical import adnimerge_table, plan_subject
from mri2tau.demo.cohort import generate_cohort, generate_subject
from mri2tau.demo.processed_pet import STEP_DESCRIPTIONS
from mri2tau.errors import PipelineInputError
from mri2tau.io.adni import description_folder
from mri2tau.io.dicom_write import vox2world_from_dicom
from mri2tau.templates import load_template_t1, roi_masks, template_grid

VOXEL_MM = 4.0
N_SUBJECTS = 4


@pytest.fixture(scope="module")
def cohort(demo_cohort) -> Path:
    params = json.loads((demo_cohort / "truth" / "generator.json").read_text())
    assert (params["subjects"], params["voxel_mm"]) == (N_SUBJECTS, VOXEL_MM)
    return demo_cohort


@pytest.fixture(scope="module")
def table(cohort) -> pd.DataFrame:
    return pd.read_csv(cohort / "truth" / "cohort.tsv", sep="\t", dtype={"sub": str})


def _series_files(cohort: Path, ptid: str, kind: str) -> list[Path]:
    """The files of the subject's T1, raw PET (``pet``) or ADNI processed PET (``step2``, ``step4``)."""
    processed = {f"step{k}": description_folder(d) for k, d in STEP_DESCRIPTIONS.items()}
    names = {"pet": "ADNI_Brain_PET__Raw_Tau", **processed}
    folders = [p for p in (cohort / "ADNI" / ptid).iterdir()
               if p.name == names.get(kind) or (kind == "t1" and p.name not in names.values())]
    assert len(folders) == 1, folders
    return sorted(folders[0].glob("*/*/*.dcm"))


def _read_volume(files: list[Path]) -> tuple[np.ndarray, list[pydicom.Dataset]]:
    """Rescaled voxel values V[i, j, k] in the writer's layout (i = column, j = reversed row)."""
    headers = [pydicom.dcmread(f) for f in files]
    normal = np.cross(*np.reshape(np.array(headers[0].ImageOrientationPatient, float), (2, 3)))
    headers.sort(key=lambda d: float(np.dot(normal, np.array(d.ImagePositionPatient, float))))
    vol = np.stack([
        d.pixel_array.T[:, ::-1] * float(d.get("RescaleSlope", 1)) + float(d.get("RescaleIntercept", 0))
        for d in headers], axis=-1)
    return vol, headers


def _pet_frames(cohort: Path, ptid: str) -> tuple[np.ndarray, list[pydicom.Dataset]]:
    """Rescaled PET frames (6, i, j, k) in the writer's layout, grouped by ImageIndex."""
    vol, headers = _read_volume(_series_files(cohort, ptid, "pet"))
    n = int(headers[0].NumberOfSlices)
    order = np.argsort([int(d.ImageIndex) for d in headers], kind="stable")
    return vol[..., order].reshape(*vol.shape[:2], 6, n).transpose(2, 0, 1, 3), headers


def _txt(cohort: Path, sub: str, name: str) -> np.ndarray:
    return np.loadtxt(cohort / "truth" / f"sub-{sub}" / name)


# ---------------------------------------------------------------------------- layout / clinical
def test_layout_csv_and_cohort_table(cohort, table):
    csv = pd.read_csv(cohort / "ADNIMERGE.csv")
    for col in ["RID", "COLPROT", "ORIGPROT", "PTID", "VISCODE", "EXAMDATE", "DX_bl", "DX", "AGE", "PTGENDER"]:
        assert col in csv.columns
    assert len(csv) == N_SUBJECTS and set(csv.VISCODE) == {"bl"}
    assert set(csv.DX_bl) <= {"CN", "SMC", "EMCI", "LMCI", "AD"}
    assert set(csv.DX) <= {"CN", "MCI", "Dementia"}
    assert all(re.fullmatch(r"\d{3}_S_\d{4}", p) for p in csv.PTID)
    assert (csv.RID == csv.PTID.str[-4:].astype(int)).all()
    assert set(table.dx_group) == {"CN", "MCI", "AD"}
    assert set(table.manufacturer) == {"Siemens", "GE", "Philips"}
    assert sorted(table.t1_orientation) == ["axial", "oblique", "sagittal", "sagittal"]
    long_gap = table[table.gap_days > 100]
    assert len(long_gap) == 1 and not long_gap.expected_pair.iloc[0]
    assert table.expected_pair.sum() == N_SUBJECTS - 1
    pattern = re.compile(r"\d{3}_S_\d{4}/[A-Za-z0-9_\-]+/\d{4}-\d\d-\d\d_\d\d_\d\d_\d\d\.0/I(\d+)/"
                         r"ADNI_\d{3}_S_\d{4}_(MR|PT)_[A-Za-z0-9_\-]+_br_raw_\d{17}_\d+_S\d+_I(\d+)\.dcm")
    files = sorted((cohort / "ADNI").rglob("*.dcm"))
    for f in files:
        m = pattern.fullmatch(str(f.relative_to(cohort / "ADNI")))
        assert m and m.group(1) == m.group(3), f
    assert (cohort / "ADNI" / table.ptid[0] / "ADNI_Brain_PET__Raw_Tau").is_dir()
    for sub in table["sub"]:
        for name in ["t1_vox2world.txt", "t1_native.nii.gz", "native_to_template_coords.nii.gz",
                     "template_to_native_coords.nii.gz", "suvr_template.nii.gz",
                     "suvr_template_blurred.nii.gz", "manufacturer_effect.json", "pet_vox2world.txt",
                     "pet_to_t1.txt", "motion.tsv", "pet.json", "atrophy.tsv"]:
            assert (cohort / "truth" / f"sub-{sub}" / name).is_file(), (sub, name)
    assert not list(cohort.glob(".demo-cohort-*")), "temporary folder left behind"


def test_deterministic_per_seed(cohort, table, tmp_path):
    """Re-rendering subjects 1 and 2 alone, serially, gives the same bytes as the cohort fixture
    (generated with 2 worker processes): per seed, whatever the cohort or the worker count."""
    params = json.loads((cohort / "truth" / "generator.json").read_text())
    seed = params["seed"]
    plans = [plan_subject(seed, i, N_SUBJECTS) for i in range(N_SUBJECTS)]
    assert adnimerge_table(plans).to_csv(index=False) == (cohort / "ADNIMERGE.csv").read_text()
    for i in (1, 2):
        generate_subject(plans[i], seed, VOXEL_MM, tmp_path / "ADNI", tmp_path / "truth",
                         params["all_manufacturers"])
        for sub_dir in (Path("ADNI") / plans[i].ptid, Path("truth") / f"sub-{plans[i].sub}"):
            files = sorted(p.relative_to(tmp_path) for p in (tmp_path / sub_dir).rglob("*") if p.is_file())
            assert files == sorted(p.relative_to(cohort) for p in (cohort / sub_dir).rglob("*") if p.is_file())
            for rel in files:
                assert (cohort / rel).read_bytes() == (tmp_path / rel).read_bytes(), rel
    assert plan_subject(seed + 1, 0, N_SUBJECTS).planted_patient_name != plans[0].planted_patient_name


# ---------------------------------------------------------------------------- DICOM tags
def test_t1_dicom_tags_and_philips_rescale(cohort, table):
    manufacturers = set()
    for row in table.itertuples():
        vol, headers = _read_volume(_series_files(cohort, row.ptid, "t1"))
        ds = headers[0]
        manufacturers.add(ds.Manufacturer)
        assert ds.Modality == "MR" and float(ds.MagneticFieldStrength) == 3
        assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.4"
        assert ds.SeriesDescription == row.t1_series_description
        assert ds.StudyDate == row.mri_date.replace("-", "") and ds.AcquisitionTime
        assert len({d.SOPInstanceUID for d in headers}) == len(headers)
        # planted PHI, distinct from the PTID
        assert str(ds.PatientName) == row.planted_patient_name
        assert ds.PatientID == row.planted_patient_id != row.ptid
        assert ds.PatientBirthDate == str(row.planted_birth_date)
        truth = nib.load(cohort / "truth" / f"sub-{row.sub}" / "t1_native.nii.gz")
        to_dicom = ornt_transform(io_orientation(truth.affine),
                                  io_orientation(_txt(cohort, row.sub, "t1_dicom_vox2world.txt")))
        expected = apply_orientation(truth.get_fdata(), to_dicom)
        np.testing.assert_allclose(vol, expected, rtol=1e-6, atol=1e-6)
        if row.manufacturer == "Philips":
            assert float(ds.RescaleSlope) != 1.0
            assert np.abs(vol - np.rint(vol)).max() > 0.01  # decoded values are not the stored integers
    assert manufacturers == {"SIEMENS", "GE MEDICAL SYSTEMS", "Philips Medical Systems"}
    assert len(set(table.planted_patient_name)) == len(set(table.planted_patient_id)) == N_SUBJECTS


def test_pet_dicom_tags(cohort, table):
    row = table.iloc[2]
    files = _series_files(cohort, row.ptid, "pet")
    headers = [pydicom.dcmread(f, stop_before_pixels=True) for f in files]
    ds = headers[0]
    n_slices = int(ds.NumberOfSlices)
    assert int(ds.NumberOfTimeSlices) == 6 and len(files) == 6 * n_slices
    assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.128" and ds.Modality == "PT"
    assert ds.Units == "BQML" and {"DECY", "ATTN"} <= set(ds.CorrectedImage)
    assert ds.DecayCorrection == "START"
    assert sorted(int(d.ImageIndex) for d in headers) == list(range(1, 6 * n_slices + 1))
    info = json.loads((cohort / "truth" / f"sub-{row['sub']}" / "pet.json").read_text())
    frames: dict[int, pydicom.Dataset] = {}
    for d in headers:
        frames.setdefault((int(d.ImageIndex) - 1) // n_slices, d)
    ref_times = [float(frames[f].FrameReferenceTime) for f in range(6)]
    assert np.all(np.diff(ref_times) == pytest.approx(300000.0, abs=1.0))
    assert 0 < ref_times[0] < 300000
    assert {int(frames[f].ActualFrameDuration) for f in range(6)} == {300000}
    rp = ds.RadiopharmaceuticalInformationSequence[0]
    assert rp.Radiopharmaceutical in {"Flortaucipir", "AV-1451"}
    assert 300e6 < float(rp.RadionuclideTotalDose) < 450e6
    assert float(rp.RadionuclideTotalDose) == pytest.approx(info["injected_activity_bq"])
    assert float(rp.RadionuclideHalfLife) == pytest.approx(6586.2)
    nuclide = rp.RadionuclideCodeSequence[0]
    assert (nuclide.CodeValue, nuclide.CodingSchemeDesignator) == ("C-111A1", "SRT")
    assert rp.RadiopharmaceuticalCodeSequence[0].CodeMeaning == "Flortaucipir F^18^"
    injection = pd.Timestamp(info["injection_time"])
    assert rp.RadiopharmaceuticalStartDateTime.startswith(injection.strftime("%Y%m%d%H%M%S"))
    first = pd.to_datetime(ds.AcquisitionDate + frames[0].AcquisitionTime.split(".")[0], format="%Y%m%d%H%M%S")
    assert (first - injection).total_seconds() == pytest.approx(75 * 60, abs=1)
    assert info["frame_times_start_s"] == [4500.0 + 300 * k for k in range(6)]
    slopes = {float(d.RescaleSlope) for d in headers}
    assert len(slopes) > n_slices  # one slope per slice and frame
    assert str(ds.PatientName) == row.planted_patient_name and ds.PatientID == row.planted_patient_id


def test_processed_pet_lookalikes(cohort, table):
    """ADNI steps 2 and 4 beside the raw series: one frame spanning the scan, the raw header's tracer and
    timing, the frames co-registered (closer to frame 1 than their plain mean) and step 4 smoother."""
    row = table.iloc[1]
    raw, raw_headers = _pet_frames(cohort, row.ptid)
    images = {}
    for step in (2, 4):
        files = _series_files(cohort, row.ptid, f"step{step}")
        volume, headers = _read_volume(files)
        ds = headers[0]
        assert ds.SeriesDescription == STEP_DESCRIPTIONS[step] and list(ds.ImageType) == ["DERIVED", "SECONDARY"]
        assert int(ds.NumberOfTimeSlices) == 1 and len(files) == int(ds.NumberOfSlices) == raw.shape[3]
        assert int(ds.ActualFrameDuration) == 6 * 300000
        assert ds.AcquisitionTime == min(d.AcquisitionTime for d in raw_headers)  # the first frame's start
        rp = ds.RadiopharmaceuticalInformationSequence[0]
        raw_rp = raw_headers[0].RadiopharmaceuticalInformationSequence[0]
        assert rp.RadiopharmaceuticalStartDateTime == raw_rp.RadiopharmaceuticalStartDateTime
        assert ds.SeriesInstanceUID != raw_headers[0].SeriesInstanceUID
        assert re.search(r"_S\d+_", files[0].name).group(0) in _series_files(cohort, row.ptid, "pet")[0].name
        images[step] = volume
    brain = raw[0] > 0.3 * raw[0].max()
    err_coregistered = np.abs(images[2] - raw[0])[brain].mean()
    err_plain_mean = np.abs(raw.mean(axis=0) - raw[0])[brain].mean()
    assert err_coregistered < 0.8 * err_plain_mean, (err_coregistered, err_plain_mean)
    assert images[4].sum() == pytest.approx(images[2].sum(), rel=0.02)
    roughness = {k: np.abs(np.diff(v, axis=0)).mean() for k, v in images.items()}
    assert roughness[4] < 0.9 * roughness[2]  # GE: 5 -> 8 mm FWHM


# ---------------------------------------------------------------------------- geometry truth
def test_t1_vox2world_matches_dicom_geometry(cohort, table):
    for row in table.itertuples():
        _, headers = _read_volume(_series_files(cohort, row.ptid, "t1"))
        ipp = [np.array(d.ImagePositionPatient, float) for d in headers]
        m = vox2world_from_dicom(headers[0].ImageOrientationPatient, ipp[0], headers[0].PixelSpacing,
                                 ipp[1] - ipp[0], int(headers[0].Rows))
        np.testing.assert_allclose(m, _txt(cohort, row.sub, "t1_dicom_vox2world.txt"), atol=1e-4)
        # the dcm2niix layout has the same voxel centres, axes permuted/flipped to near RAS
        v2w = _txt(cohort, row.sub, "t1_vox2world.txt")
        shape = nib.load(cohort / "truth" / f"sub-{row.sub}" / "t1_native.nii.gz").shape
        dicom_shape = (int(headers[0].Columns), int(headers[0].Rows), len(headers))
        assert sorted(shape) == sorted(dicom_shape)
        corners = sorted(map(tuple, np.round(_box(v2w, shape), 3)))
        np.testing.assert_allclose(corners, sorted(map(tuple, np.round(_box(m, dicom_shape), 3))), atol=2e-3)
        assert np.all(np.abs(np.diag(v2w)[:3]) == np.abs(v2w[:3, :3]).max(axis=0))
        assert np.all(np.diag(v2w)[:3] > 0)
        if row.t1_orientation == "oblique":
            row_dir = np.array(headers[0].ImageOrientationPatient[:3], float)
            tilt = np.degrees(np.arccos(np.abs(row_dir).max()))
            assert tilt == pytest.approx(15.0, abs=0.01)


def _box(m: np.ndarray, shape) -> np.ndarray:
    """World mm of the 8 corner voxel centres of a grid."""
    idx = np.array([[i, j, k, 1] for i in (0, shape[0] - 1) for j in (0, shape[1] - 1) for k in (0, shape[2] - 1)]).T
    return (m @ idx)[:3].T


def _dcm2niix() -> str | None:
    return shutil.which("dcm2niix") or shutil.which("dcm2niix", path=str(Path(sys.executable).parent))


def test_dcm2niix_round_trip_matches_truth(cohort, table, tmp_path):
    exe = _dcm2niix()
    if exe is None:
        pytest.skip("dcm2niix not installed (pip install dcm2niix)")
    for row in table.itertuples():
        for kind in ("t1", "pet") if row.Index == 1 else ("t1",):
            series = _series_files(cohort, row.ptid, kind)[0].parent
            out = tmp_path / f"{row.sub}_{kind}"
            out.mkdir()
            subprocess.run([exe, "-z", "y", "-b", "n", "-x", "n", "-f", "img", "-o", str(out), str(series)],
                           check=True, capture_output=True)
            img = nib.load(out / "img.nii.gz")
            if kind == "t1":
                truth = nib.load(cohort / "truth" / f"sub-{row.sub}" / "t1_native.nii.gz")
                np.testing.assert_allclose(img.affine, _txt(cohort, row.sub, "t1_vox2world.txt"), atol=1e-3)
                np.testing.assert_allclose(img.get_fdata(), truth.get_fdata(), rtol=1e-5, atol=1e-4)
            else:
                assert img.shape[3] == 6
                np.testing.assert_allclose(img.affine, _txt(cohort, row.sub, "pet_vox2world.txt"), atol=1e-3)
                frames, _ = _pet_frames(cohort, row.ptid)
                np.testing.assert_allclose(np.moveaxis(img.get_fdata(), -1, 0), frames, rtol=1e-4, atol=0.5)


def test_warp_truth_is_inverse_consistent_and_generates_the_t1(cohort, table):
    tpl_shape, tpl_affine = template_grid(VOXEL_MM)
    for row in table.itertuples():
        folder = cohort / "truth" / f"sub-{row.sub}"
        n2t_img = nib.load(folder / "native_to_template_coords.nii.gz")
        n2t = n2t_img.get_fdata(dtype=np.float32)
        t2n = nib.load(folder / "template_to_native_coords.nii.gz").get_fdata(dtype=np.float32)
        assert t2n.shape == (*tpl_shape, 3)
        native_world = np.moveaxis(np.indices(n2t.shape[:3]), 0, -1) @ n2t_img.affine[:3, :3].T + n2t_img.affine[:3, 3]
        tpl_vox = (n2t - tpl_affine[:3, 3]) / VOXEL_MM
        inside = np.all((tpl_vox > 1) & (tpl_vox < np.array(tpl_shape) - 2), axis=-1)
        back = np.stack([ndi.map_coordinates(t2n[..., c], tpl_vox[inside].T, order=1) for c in range(3)], -1)
        err = np.linalg.norm(back - native_world[inside], axis=-1)
        # t2n is interpolated trilinearly between 4 mm voxels here, which is only approximate where
        # the atrophy bends the field on the 4 mm lattice scale (the mapping itself round-trips to
        # < 0.02 mm: tests/test_atrophy.py)
        assert err.max() < 0.15 * VOXEL_MM and np.percentile(err, 99) < 0.025 * VOXEL_MM, err.max()
        # rigid part: rotation <= 10 deg; nonlinear part a few mm
        rigid = _txt(cohort, row.sub, "rigid_template_to_native.txt")
        np.testing.assert_allclose(rigid[:3, :3] @ rigid[:3, :3].T, np.eye(3), atol=1e-6)
        y = native_world[inside] @ np.linalg.inv(rigid)[:3, :3].T + np.linalg.inv(rigid)[:3, 3]
        nonlinear = np.linalg.norm(n2t[inside] - y, axis=-1)
        assert 1.0 < nonlinear.max() < 6.0
        # the T1 really is the template sampled at native_to_template_coords (up to bias/noise)
        template = load_template_t1(VOXEL_MM).get_fdata()
        expected = ndi.map_coordinates(template, tpl_vox[inside].T, order=1)
        t1 = nib.load(folder / "t1_native.nii.gz").get_fdata()[inside]
        assert np.corrcoef(expected, t1)[0, 1] > 0.9


# ---------------------------------------------------------------------------- SUVR / PET truth
def test_suvr_truth_reference_and_diagnosis_order(cohort, table):
    ref = anatomy.reference_mask(VOXEL_MM)
    braak = np.any([m for k, m in roi_masks(VOXEL_MM).items() if k.startswith("braak")], axis=0)
    by_group: dict[str, list[float]] = {}
    for row in table.itertuples():
        folder = cohort / "truth" / f"sub-{row.sub}"
        suvr = nib.load(folder / "suvr_template.nii.gz").get_fdata()
        blurred = nib.load(folder / "suvr_template_blurred.nii.gz").get_fdata()
        assert suvr[ref].mean() == pytest.approx(1.0, abs=1e-6)
        assert blurred[ref].mean() == pytest.approx(1.0, abs=1e-4)
        assert suvr[0, 0, 0] == 0 and blurred[0, 0, 0] == pytest.approx(0, abs=1e-3)
        effect = json.loads((folder / "manufacturer_effect.json").read_text())
        assert effect["manufacturer"] == row.manufacturer
        assert effect["gain"] == anatomy.VENDORS[row.manufacturer].gain
        assert 5.0 <= effect["psf_fwhm_mm"] <= 8.0
        by_group.setdefault(row.dx_group, []).append(float(suvr[braak].mean()))
    mean = {g: np.mean(v) for g, v in by_group.items()}
    assert mean["AD"] > mean["MCI"] > mean["CN"] > 1.0


def test_vendor_effect_is_not_cancelled_by_suvr():
    rng = np.random.default_rng(0)
    suvr, _ = anatomy.subject_suvr(rng, "AD", VOXEL_MM)
    meta = roi_masks(VOXEL_MM)["meta_temporal"]
    excess = {name: anatomy.vendor_suvr(suvr, v, VOXEL_MM)[0][meta].mean() - 1.0
              for name, v in anatomy.VENDORS.items()}
    # higher gain + sharper PSF (GE) vs lower gain + wider PSF (Philips): differ after normalisation
    assert excess["GE"] - 0.03 > excess["Siemens"] > excess["Philips"] + 0.03 > 0.2
    same_psf = {g: anatomy.vendor_suvr(suvr, anatomy.Vendor("x", g, 6.0), VOXEL_MM)[0][meta].mean() - 1.0
                for g in (1.0, 1.15)}
    assert same_psf[1.15] / same_psf[1.0] == pytest.approx(1.15, rel=0.05)


def test_pet_frames_follow_truth_geometry_and_motion(cohort, table):
    row = table.iloc[1]
    folder = cohort / "truth" / f"sub-{row['sub']}"
    info = json.loads((folder / "pet.json").read_text())
    motion = pd.read_csv(folder / "motion.tsv", sep="\t")
    assert list(motion.frame) == list(range(1, 7))
    assert np.all(motion.iloc[0, 1:] == 0)
    assert motion.iloc[:, 1:4].abs().to_numpy().max() < 2 and motion.iloc[:, 4:].abs().to_numpy().max() < 2
    pet_to_t1 = np.loadtxt(folder / "pet_to_t1.txt")
    np.testing.assert_allclose(pet_to_t1[:3, :3] @ pet_to_t1[:3, :3].T, np.eye(3), atol=1e-6)
    vol, _ = _pet_frames(cohort, row["ptid"])
    v2w = np.loadtxt(folder / "pet_vox2world.txt")
    t1_v2w = np.loadtxt(folder / "t1_vox2world.txt")
    n2t = nib.load(folder / "native_to_template_coords.nii.gz").get_fdata(dtype=np.float32)
    blurred = nib.load(folder / "suvr_template_blurred.nii.gz").get_fdata(dtype=np.float32)
    _, tpl_affine = template_grid(VOXEL_MM)
    world = np.indices(vol.shape[1:]).reshape(3, -1)
    world = v2w[:3, :3] @ world + v2w[:3, 3:4]

    def predict(frame_to_1: np.ndarray) -> np.ndarray:
        native = (pet_to_t1 @ frame_to_1)[:3, :3] @ world + (pet_to_t1 @ frame_to_1)[:3, 3:4]
        t1_vox = np.linalg.inv(t1_v2w)[:3, :3] @ native + np.linalg.inv(t1_v2w)[:3, 3:4]
        tpl = np.stack([ndi.map_coordinates(n2t[..., c], t1_vox, order=1, mode="nearest") for c in range(3)])
        tpl_vox = (tpl - tpl_affine[:3, 3:4]) / VOXEL_MM
        return ndi.map_coordinates(blurred, tpl_vox, order=1) * info["reference_activity_bqml"]

    for k in (0, 5):
        moved = np.array(info["motion_frame1_to_framek"][k])
        frame = vol[k].reshape(-1)
        with_motion = np.abs(frame - predict(np.linalg.inv(moved)))
        without = np.abs(frame - predict(np.eye(4)))
        head = predict(np.eye(4)) > 0.3 * info["reference_activity_bqml"]
        assert np.corrcoef(frame[head], predict(np.linalg.inv(moved))[head])[0, 1] > 0.95
        assert np.median(with_motion[head]) < 0.12 * info["reference_activity_bqml"]
        if k == 5 and np.abs(motion.iloc[5, 1:]).max() > 0.5:
            assert with_motion[head].mean() < without[head].mean()


# ---------------------------------------------------------------------------- CLI / failures
def test_all_manufacturers_truth(cohort, table):
    for row in table.itertuples():
        maps = {v: nib.load(cohort / "truth" / "manufacturers" / v / f"sub-{row.sub}_suvr_template_blurred.nii.gz").get_fdata()
                for v in anatomy.VENDORS}
        own = nib.load(cohort / "truth" / f"sub-{row.sub}" / "suvr_template_blurred.nii.gz").get_fdata()
        np.testing.assert_array_equal(maps[row.manufacturer], own)
        assert not np.allclose(maps["GE"], maps["Philips"], atol=0.02)


def test_cli(tmp_path, capsys):
    import argparse

    from mri2tau.demo import cli

    parser = argparse.ArgumentParser()
    cli.register(parser.add_subparsers())  # only this sub-command: the full CLI imports torch

    def run(*argv: str) -> int:
        args = parser.parse_args(["demo-cohort", *argv])
        return args.func(args)

    assert run(str(tmp_path / "c"), "--subjects", "1", "--seed", "1", "--voxel-mm", "4", "--workers", "2") == 0
    assert len(pd.read_csv(tmp_path / "c" / "ADNIMERGE.csv")) == 1
    assert run(str(tmp_path / "d"), "--subjects", "0") == 2
    assert "demo.subjects" in capsys.readouterr().err


def test_bad_arguments_and_failed_run_leaves_nothing(tmp_path, monkeypatch):
    with pytest.raises(PipelineInputError, match="demo.subjects"):
        generate_cohort(tmp_path / "x", subjects=0)
    import mri2tau.demo.cohort as cohort_module

    def boom(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(cohort_module, "generate_subject", boom)
    with pytest.raises(RuntimeError):
        generate_cohort(tmp_path / "y", subjects=2, voxel_mm=8.0)
    assert not (tmp_path / "y").exists() or not any((tmp_path / "y").iterdir())
