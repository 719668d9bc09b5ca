"""Preprocessing benchmark: wall time and peak RSS per stage for one demo subject, plus accuracy.

    .venv/bin/python bench/preprocess.py                        # 2 mm, every stage
    .venv/bin/python bench/preprocess.py --voxel-mm 2 1         # 2 mm and 1 mm
    .venv/bin/python bench/preprocess.py --stages mri --preset paper
    .venv/bin/python bench/preprocess.py --stages mri pet regional --voxel-mm 2 1   # GTM cost and accuracy

For each voxel size a one-subject demo cohort is generated (T1, PET and truth at that voxel size;
the template grid has the same spacing). Stages run in ``STAGES`` order, each in a fresh process
so its peak RSS is its own; a stage is ``(case: Case) -> dict[str, float]`` (accuracy figures),
reads earlier stages' outputs under ``case.out`` and writes its own there.
"""

from __future__ import annotations

import argparse
import multiprocessing
import resource
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np


@dataclass(frozen=True)
class Case:
    """One benchmark subject: demo cohort ``root``, subject label (no ``sub-``), template spacing."""

    root: Path
    subject: str
    resolution_mm: float
    out: Path
    preset: str

    @property
    def truth(self) -> Path:
        return self.root / "truth" / f"sub-{self.subject}"

    def config(self) -> dict:
        from mri2tau.config import resolve_config

        return resolve_config({"preset": self.preset})


# ---------------------------------------------------------------- stages
def bench_mri(case: Case) -> dict[str, float]:
    """MRI stage (N4, affine, SyN, masks, QC) on the subject's native T1; template<->native error."""
    from mri2tau.preprocess.mri import preprocess_t1
    from mri2tau.preprocess.registration import mapping_error_mm
    from mri2tau.templates import load_template_mask

    out = case.out / "mri"
    row = preprocess_t1(
        t1=case.truth / "t1_native.nii.gz", subject=case.subject, session="bl", resolution_mm=case.resolution_mm,
        registration=case.config()["registration"], t1_n4=out / "n4.nii.gz", t1_template=out / "t1_template.nii.gz",
        t1_template_json=out / "t1_template.json", brain_mask_template=out / "mask_template.nii.gz",
        brain_mask_native=out / "mask_native.nii.gz", xfm_affine=out / "affine.mat", xfm_warp=out / "warp.nii.gz",
        xfm_invwarp=out / "invwarp.nii.gz", qc_tsv=out / "qc.tsv", qc_png=out / "qc.png",
    )
    mask = np.asarray(load_template_mask(case.resolution_mm).dataobj) > 0
    err = mapping_error_mm(nib.load(case.truth / "template_to_native_coords.nii.gz"), mask,
                           out / "affine.mat", out / "warp.nii.gz")
    return {"mapping_error_mean_mm": float(err.mean()), "mapping_error_p95_mm": float(np.percentile(err, 95)),
            "r_affine": row["r_affine"], "r_syn": row["r_syn"]}


def _timed(figures: dict[str, float], key: str, func: Callable[..., object], /, **kwargs: object) -> object:
    started = time.perf_counter()
    result = func(**kwargs)
    figures[key] = time.perf_counter() - started
    return result


def _roi_errors(suvr_path: Path, truth_path: Path, reference_path: Path, resolution_mm: float,
                prefix: str) -> dict[str, float]:
    """Signed % error of mean SUVR per Braak ROI (and meta-temporal) against the blurred truth.

    The truth is divided by its own mean in the pipeline's reference region first (the demo's
    truth is normalised in the generator's region; docs/demo-cohort.md): both sides are then
    SUVR relative to the same voxels, so a different reference definition is not counted as error.
    """
    from mri2tau.templates import roi_masks

    suvr, truth = (np.asarray(nib.load(p).dataobj, np.float64) for p in (suvr_path, truth_path))
    truth = truth / truth[np.asarray(nib.load(reference_path).dataobj) > 0].mean()
    return {f"{prefix}_{roi}_pct": float(100 * (suvr[m].mean() / truth[m].mean() - 1))
            for roi, m in roi_masks(resolution_mm).items()}


def _convert_pet(case: Case) -> tuple[Path, Path]:
    """The subject's dynamic PET DICOM -> 4D NIfTI + BIDS sidecar (convert stage), under ``case.out``."""
    from mri2tau.convert.select import select_series
    from mri2tau.convert.session import convert_session

    data, out = case.config()["data"], case.out / "convert"
    pairs = select_series(
        dicom_root=case.root / "ADNI", clinical_csv=case.root / "ADNIMERGE.csv", pairs_tsv=out / "pairs.tsv",
        excluded_tsv=out / "excluded.tsv", t1_patterns=data["t1_description_patterns"],
        pet_patterns=data["pet_description_patterns"], exclude_patterns=data["exclude_description_patterns"],
        max_days=100_000)  # pair whatever the gap: only the PET series is needed here
    row = pairs.iloc[0]
    files = {k: out / name for k, name in [("t1w", "t1w.nii.gz"), ("t1w_json", "t1w.json"),
                                           ("pet", "pet.nii.gz"), ("pet_json", "pet.json")]}
    convert_session(sub=row["sub"], ses=row["ses"], t1_dir=row["t1_dir"], pet_dir=row["pet_dir"],
                    expected_frames=data["pet_n_frames"], **files)
    return files["pet"], files["pet_json"]


def bench_pet(case: Case) -> dict[str, float]:
    """PET stage (motion, PET->T1, template, reference, SUVR) on the subject's converted PET.

    Uses the MRI stage's outputs (``case.out / "mri"``). Accuracy: motion and PET->T1 against the
    truth; Braak-ROI SUVR against ``suvr_template_blurred`` (renormalised to the pipeline's
    reference region), end to end (MRI stage transforms) and for the PET stage alone (the true
    template<->native mapping as the T1 transforms).
    """
    import ants
    import pandas as pd

    from mri2tau.preprocess import pet, suvr
    from mri2tau.preprocess.registration import forward_transforms

    settings, res, mri, out = case.config()["pet"], case.resolution_mm, case.out / "mri", case.out / "pet"
    figures: dict[str, float] = {}
    pet_4d, sidecar = _timed(figures, "convert_s", _convert_pet, case=case)
    f = {k: out / name for k, name in [("mean", "mean.nii.gz"), ("motion", "motion.tsv"), ("xfm", "pet2t1.mat"),
                                       ("tpl", "tpl.nii.gz"), ("ref", "ref.nii.gz"), ("suvr", "suvr.nii.gz"),
                                       ("stats", "stats.tsv"), ("tpl_true", "tpl_true.nii.gz"),
                                       ("suvr_true", "suvr_true.nii.gz"), ("stats_true", "stats_true.tsv")]}
    _timed(figures, "motion_s", pet.correct_motion, pet=pet_4d, sidecar=sidecar, pet_mean_out=f["mean"],
           motion_out=f["motion"], subject=case.subject, expected_frames=6, method=settings["motion_correction"])
    _timed(figures, "pet2t1_s", pet.register_pet_to_t1, pet_mean=f["mean"], t1=mri / "n4.nii.gz", xfm_out=f["xfm"],
           subject=case.subject, brain_mask=mri / "mask_native.nii.gz")
    _timed(figures, "template_s", pet.pet_to_template, pet_mean=f["mean"], pet_to_t1=f["xfm"],
           t1_to_template=forward_transforms(mri / "affine.mat", mri / "warp.nii.gz"), out=f["tpl"],
           subject=case.subject, resolution_mm=res, min_brain_overlap=settings["min_brain_overlap"])
    _timed(figures, "reference_s", suvr.write_reference_mask, out=f["ref"], reference_region=settings["reference_region"],
           resolution_mm=res, erosion_vox=settings["erosion_vox"])
    _timed(figures, "suvr_s", suvr.compute_suvr, pet_template=f["tpl"], reference_mask=f["ref"], suvr_out=f["suvr"],
           stats_out=f["stats"], subject=case.subject, motion=f["motion"])

    truth_motion = pd.read_csv(case.truth / "motion.tsv", sep="\t")[pet.MOTION_COLUMNS[1:]].to_numpy()
    err = np.abs(pd.read_csv(f["motion"], sep="\t")[pet.MOTION_COLUMNS[1:]].to_numpy() - truth_motion)
    figures |= {"motion_err_mm": float(err[:, :3].max()), "motion_err_deg": float(err[:, 3:].max())}
    estimated = pet.ants_linear_to_ras(ants.read_transform(str(f["xfm"])))
    points = np.c_[[[0, -20, 10], [50, -20, 10], [-50, -20, 10], [0, 50, 30], [0, -80, -30]], np.ones(5)].T
    moved = estimated @ np.loadtxt(case.truth / "pet_to_t1.txt") @ points - points
    figures["pet2t1_err_mm"] = float(np.linalg.norm(moved[:3], axis=0).max())
    blurred = case.truth / "suvr_template_blurred.nii.gz"
    figures |= _roi_errors(f["suvr"], blurred, f["ref"], res, "e2e")
    # the same chain with the TRUE template<->native mapping isolates the PET stage
    true_warp = pet.dense_map_to_ants_warp(nib.load(case.truth / "template_to_native_coords.nii.gz"),
                                           out / "true_warp.nii.gz")
    ants.write_transform(pet.ras_to_ants_linear(np.eye(4)), str(out / "identity.mat"))
    pet.pet_to_template(f["mean"], f["xfm"], [true_warp, out / "identity.mat"], f["tpl_true"],
                        subject=case.subject, resolution_mm=res)
    suvr.compute_suvr(f["tpl_true"], f["ref"], f["suvr_true"], f["stats_true"], subject=case.subject)
    return figures | _roi_errors(f["suvr_true"], blurred, f["ref"], res, "petonly")


def bench_harmonize(case: Case) -> dict[str, float]:
    """Between-manufacturer SD of Braak-ROI SUVR for held-out subjects, before/after standardization.

    Held out: a 4-subject ``--all-manufacturers`` demo cohort (>= 2 mm), read under every
    manufacturer from ``truth/manufacturers/`` (docs/demo-cohort.md). Training: 30 subjects per
    manufacturer, same diagnosis mix, rendered with the generator's vendor model
    (``anatomy.subject_suvr`` + ``vendor_suvr``). Each method without and with resolution matching
    (the preset's target FWHM, the demo vendors' PSFs; reference: the PET stage's cerebellar-GM mask).
    """
    from mri2tau.demo import anatomy
    from mri2tau.demo.cohort import generate_cohort
    from mri2tau.preprocess import harmonize as hz
    from mri2tau.preprocess.suvr import write_reference_mask
    from mri2tau.templates import load_template_mask, roi_masks, template_grid

    res, root = max(case.resolution_mm, 2.0), case.out / "harmonize_cohort"
    config = case.config()
    generate_cohort(root, subjects=4, seed=1, voxel_mm=res, all_manufacturers=True)
    reference = root / "reference.nii.gz"
    write_reference_mask(reference, reference_region="cerebellar_gm", resolution_mm=res,
                         erosion_vox=config["pet"]["erosion_vox"])
    rng, (_, affine) = np.random.default_rng(1000), template_grid(res)
    vendors, training = list(anatomy.VENDORS), []
    for i in range(30 * len(vendors)):
        vendor, dx = vendors[i % len(vendors)], ["CN", "SMC", "EMCI", "LMCI", "AD"][(i // len(vendors)) % 5]
        suvr, _ = anatomy.vendor_suvr(anatomy.subject_suvr(rng, dx, res)[0], anatomy.VENDORS[vendor], res)
        nib.save(nib.Nifti1Image(suvr, affine), path := root / f"train{i:02d}.nii.gz")
        training.append((f"train{i:02d}", vendor, path))
    brain = np.asarray(load_template_mask(res).dataobj) > 0
    rois = [m for r, m in roi_masks(res).items() if r.startswith("braak")]
    manufacturers = root / "truth" / "manufacturers"
    held_out = sorted(p.name[4:] for p in (root / "truth").glob("sub-*"))
    maps = {(sub, v): np.asarray(nib.load(manufacturers / v / f"sub-{sub}_suvr_template_blurred.nii.gz").dataobj)
            for sub in held_out for v in vendors}

    def sd(per_map: dict[tuple[str, str], np.ndarray]) -> float:
        """Mean over held-out subjects and Braak ROIs of the SD across manufacturers."""
        return float(np.mean([np.std([[per_map[s, v][roi].mean() for roi in rois] for v in vendors], axis=0)
                              for s in held_out]))

    before = sd(maps)
    figures: dict[str, float] = {"n_train": len(training), "n_held_out": len(held_out), "sd_before": before}
    demo_psfs = {"enabled": True, "target_fwhm_mm": config["harmonization"]["resolution_matching"]["target_fwhm_mm"],
                 "scanner_fwhm_mm": {v.name: v.psf_fwhm_mm for v in anatomy.VENDORS.values()}}
    for label, settings in (("", None), ("matched_", demo_psfs)):
        matching = hz.resolution_matching(settings, res, reference)
        for method in ("zscore", "minmax"):
            params = hz.fit_harmonization_params(training, brain, method=method, matching=matching)
            std = {(s, v): hz.apply_map(hz.matched_suvr(m, v, matching, subject=s, stage="bench", suvr_path="-"),
                                        brain, *hz.subject_map(params, v, subject=s)) for (s, v), m in maps.items()}
            after = sd(std)
            figures |= {f"{label}{method}_sd_after": after, f"{label}{method}_reduction_pct": 100 * (1 - after / before)}
    return figures


def bench_regional(case: Case) -> dict[str, float]:
    """Regional SUVR table with GTM partial-volume correction on the PET stage's SUVR (both chains).

    Accuracy: absolute Braak-ROI SUVR error against the true SUVR before the scanner blur
    (``suvr_template``), without and with PVC (PSF: the demo vendor's FWHM and the resampling blur).
    """
    from mri2tau.preprocess.regional import region_atlas, regional_values
    from mri2tau.preprocess.regional_tables import session_regional

    config, out, res = case.config(), case.out / "pet", case.resolution_mm
    figures: dict[str, float] = {}
    truth = np.asarray(nib.load(case.truth / "suvr_template.nii.gz").dataobj, np.float32)
    atlas = region_atlas(res, config["pet"]["erosion_vox"])
    expected = regional_values(truth, atlas, atlas.references["cerebellar_gm"])[0].set_index("region")["suvr"]
    for chain, suffix in (("e2e", ""), ("petonly", "_true")):
        table = _timed(figures, f"{chain}_regional_s", session_regional, suvr=out / f"suvr{suffix}.nii.gz",
                       stats=out / f"stats{suffix}.tsv", reference_mask=out / "ref.nii.gz",
                       pet_sidecar=case.out / "convert" / "pet.json", pet_native=out / "mean.nii.gz",
                       out_tsv=out / f"regional{suffix}.tsv", out_json=out / f"regional{suffix}.json",
                       subject=case.subject, session="bl", resolution_mm=res,
                       erosion_vox=config["pet"]["erosion_vox"], pvc="gtm",
                       scanner_fwhm_mm=config["harmonization"]["resolution_matching"]["scanner_fwhm_mm"])
        table = table.set_index("region")
        for roi in ("braak1", "braak34", "braak56", "meta_temporal"):
            figures[f"{chain}_{roi}_err"] = float(abs(table.loc[roi, "suvr"] - expected[roi]))
            figures[f"{chain}_{roi}_err_pvc"] = float(abs(table.loc[roi, "suvr_pvc"] - expected[roi]))
    return figures


# Stage name -> benchmark function, in DAG order.
STAGES: dict[str, Callable[[Case], dict[str, float]]] = {"mri": bench_mri, "pet": bench_pet,
                                                         "harmonize": bench_harmonize, "regional": bench_regional}


# ---------------------------------------------------------------- runner
def _child(stage: str, case: Case, queue: multiprocessing.Queue) -> None:
    from mri2tau.preprocess.registration import set_threads

    set_threads(case.config()["registration"]["threads"])
    started = time.perf_counter()
    figures = STAGES[stage](case)
    wall = time.perf_counter() - started
    queue.put((wall, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, figures))


def run_stage(stage: str, case: Case) -> tuple[float, float, dict[str, float]]:
    """(wall s, peak RSS MB, accuracy figures) of one stage, run in a fresh spawned process."""
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_child, args=(stage, case, queue))
    proc.start()
    result = queue.get()
    proc.join()
    if proc.exitcode:
        raise RuntimeError(f"stage {stage} failed (exit code {proc.exitcode})")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--voxel-mm", type=float, nargs="+", default=[2.0])
    parser.add_argument("--stages", nargs="+", default=list(STAGES), choices=list(STAGES))
    parser.add_argument("--preset", default="demo", choices=["demo", "paper"],
                        help="whose stage settings (e.g. registration iterations) to use")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    from mri2tau.demo.cohort import generate_cohort

    for voxel_mm in args.voxel_mm:
        with tempfile.TemporaryDirectory(prefix="mri2tau_bench_") as tmp:
            root = Path(tmp) / "demo"
            generate_cohort(root, subjects=1, seed=args.seed, voxel_mm=voxel_mm)
            subject = next((root / "truth").glob("sub-*")).name[4:]
            case = Case(root=root, subject=subject, resolution_mm=voxel_mm, out=Path(tmp) / "out", preset=args.preset)
            print(f"== one demo subject (sub-{subject}) at {voxel_mm:g} mm, {args.preset} preset settings")
            for stage in args.stages:
                wall, rss_mb, figures = run_stage(stage, case)
                shown = "  ".join(f"{k} {v:.3f}" for k, v in figures.items())
                print(f"  {stage:<12} wall {wall:7.1f} s  peak RSS {rss_mb:7.0f} MB  {shown}", flush=True)


if __name__ == "__main__":
    main()
