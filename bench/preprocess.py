"""Preprocessing benchmark: wall / CPU seconds per step, peak RSS per stage, plus accuracy.

    .venv/bin/python bench/preprocess.py                        # 2 mm, every stage
    .venv/bin/python bench/preprocess.py --voxel-mm 2 1         # 2 mm and 1 mm
    .venv/bin/python bench/preprocess.py --voxel-mm 1 --stages mri pet --preset paper --threads 2
    .venv/bin/python bench/preprocess.py --stages mri pet regional --voxel-mm 2 1   # GTM cost and accuracy
    .venv/bin/python bench/preprocess.py --real-head ../shared/data/philips_adni_sag3d_mprage/In --voxel-mm 4 2 1

For each voxel size a one-subject demo cohort is generated (T1, PET and truth at that voxel size;
the template grid has the same spacing). ``--real-head`` instead converts a real T1 DICOM series
(the project's dcm2niix conversion) and runs the MRI stage on it at each template grid (no truth:
registration r and native brain volume; ``--keep DIR`` keeps the QC pictures). Stages run in
``STAGES`` order, each in a fresh process so its peak RSS is its own; a stage is
``(case, steps) -> dict[str, float]`` (accuracy figures): it fills ``steps`` with (wall s, CPU s)
per pipeline step, reads earlier stages' outputs under ``case.out`` and writes its own there.
The package's own sub-step timings (:func:`mri2tau.log.timed_step` records) are collected too.
CPU seconds count every thread of the process: report them beside wall time on a shared machine.
"""

from __future__ import annotations

import argparse
import logging
import multiprocessing
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import nibabel as nib
import numpy as np

from mri2tau.log import peak_rss_mb

Steps = dict[str, tuple[float, float]]  # step -> (wall s, CPU s)


@dataclass(frozen=True)
class Case:
    """One benchmark subject: demo cohort ``root`` (or a real ``t1``), template spacing, settings."""

    root: Path
    subject: str
    resolution_mm: float
    out: Path
    preset: str
    threads: int | None = None  # ITK threads per job (None: the preset's registration / pet threads)
    t1: Path | None = None  # a real T1 (no truth) instead of the demo subject's

    @property
    def truth(self) -> Path:
        return self.root / "truth" / f"sub-{self.subject}"

    def config(self) -> dict:
        from mri2tau.config import resolve_config

        user: dict = {"preset": self.preset}
        if self.threads:
            user |= {"registration": {"threads": self.threads}, "pet": {"threads": self.threads}}
        return resolve_config(user)


def _timed(steps: Steps, key: str, func: Callable[..., object], /, **kwargs: object) -> object:
    """Run ``func(**kwargs)``; store its (wall s, CPU s of every thread) under ``steps[key]``."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = func(**kwargs)
    steps[key] = (time.perf_counter() - wall, time.process_time() - cpu)
    return result


# ---------------------------------------------------------------- stages
def bench_mri(case: Case, steps: Steps) -> dict[str, float]:
    """MRI stage (N4, affine, SyN, masks, QC) on the subject's native T1; template<->native error."""
    from mri2tau.preprocess.mri import preprocess_t1
    from mri2tau.preprocess.registration import mapping_error_mm
    from mri2tau.templates import load_template_mask

    out = case.out / "mri"
    row = _timed(
        steps, "mri_preprocess", preprocess_t1, t1=case.t1 or case.truth / "t1_native.nii.gz", subject=case.subject,
        session="bl", resolution_mm=case.resolution_mm, registration=case.config()["registration"],
        t1_n4=out / "n4.nii.gz", t1_template=out / "t1_template.nii.gz", t1_template_json=out / "t1_template.json",
        brain_mask_template=out / "mask_template.nii.gz", brain_mask_native=out / "mask_native.nii.gz",
        xfm_affine=out / "affine.mat", xfm_warp=out / "warp.nii.gz", xfm_invwarp=out / "invwarp.nii.gz",
        qc_tsv=out / "qc.tsv", qc_png=out / "qc.png",
    )
    figures = {"pipeline_peak_rss_mb": peak_rss_mb(), "r_affine": row["r_affine"], "r_syn": row["r_syn"],
               "brain_volume_native_ml": row["brain_volume_native_ml"]}
    if case.t1:
        return figures
    mask = np.asarray(load_template_mask(case.resolution_mm).dataobj) > 0
    err = mapping_error_mm(nib.load(case.truth / "template_to_native_coords.nii.gz"), mask,
                           out / "affine.mat", out / "warp.nii.gz")
    return figures | {"mapping_error_mean_mm": float(err.mean()), "mapping_error_p95_mm": float(np.percentile(err, 95))}


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


def bench_pet(case: Case, steps: Steps) -> dict[str, float]:
    """PET stage (motion, PET->T1, template, reference, SUVR) on the subject's converted PET.

    Uses the MRI stage's outputs (``case.out / "mri"``). Accuracy: motion and PET->T1 against the
    truth; Braak-ROI SUVR against ``suvr_template_blurred`` (renormalised to the pipeline's
    reference region), end to end (MRI stage transforms) and for the PET stage alone (the true
    template<->native mapping as the T1 transforms).
    """
    import ants
    import pandas as pd

    from mri2tau.preprocess import motion, pet, suvr, transforms
    from mri2tau.preprocess.registration import forward_transforms

    settings, res, mri, out = case.config()["pet"], case.resolution_mm, case.out / "mri", case.out / "pet"
    threads = settings["threads"]
    pet_4d, sidecar = _convert_pet(case)  # the convert stage, not timed here
    f = {k: out / name for k, name in [("mean", "mean.nii.gz"), ("motion", "motion.tsv"), ("xfm", "pet2t1.mat"),
                                       ("tpl", "tpl.nii.gz"), ("ref", "ref.nii.gz"), ("suvr", "suvr.nii.gz"),
                                       ("stats", "stats.tsv"), ("tpl_true", "tpl_true.nii.gz"),
                                       ("suvr_true", "suvr_true.nii.gz"), ("stats_true", "stats_true.tsv")]}
    _timed(steps, "pet_motion", motion.correct_motion, pet=pet_4d, sidecar=sidecar, pet_mean_out=f["mean"],
           motion_out=f["motion"], subject=case.subject, expected_frames=6, method=settings["motion_correction"],
           threads=threads)
    _timed(steps, "pet_to_t1", pet.register_pet_to_t1, pet_mean=f["mean"], t1=mri / "n4.nii.gz", xfm_out=f["xfm"],
           subject=case.subject, brain_mask=mri / "mask_native.nii.gz", threads=threads)
    _timed(steps, "pet_to_template", pet.pet_to_template, pet_mean=f["mean"], pet_to_t1=f["xfm"],
           t1_to_template=forward_transforms(mri / "affine.mat", mri / "warp.nii.gz"), out=f["tpl"],
           subject=case.subject, resolution_mm=res, min_brain_overlap=settings["min_brain_overlap"], threads=threads)
    _timed(steps, "pet_reference", suvr.write_reference_mask, out=f["ref"], reference_region=settings["reference_region"],
           resolution_mm=res, erosion_vox=settings["erosion_vox"])
    _timed(steps, "suvr", suvr.compute_suvr, pet_template=f["tpl"], reference_mask=f["ref"], suvr_out=f["suvr"],
           stats_out=f["stats"], subject=case.subject, motion=f["motion"])
    figures: dict[str, float] = {"pipeline_peak_rss_mb": peak_rss_mb()}

    truth_motion = pd.read_csv(case.truth / "motion.tsv", sep="\t")[motion.MOTION_COLUMNS[1:]].to_numpy()
    err = np.abs(pd.read_csv(f["motion"], sep="\t")[motion.MOTION_COLUMNS[1:]].to_numpy() - truth_motion)
    figures |= {"motion_err_mm": float(err[:, :3].max()), "motion_err_deg": float(err[:, 3:].max())}
    estimated = transforms.ants_linear_to_ras(ants.read_transform(str(f["xfm"])))
    points = np.c_[[[0, -20, 10], [50, -20, 10], [-50, -20, 10], [0, 50, 30], [0, -80, -30]], np.ones(5)].T
    moved = estimated @ np.loadtxt(case.truth / "pet_to_t1.txt") @ points - points
    figures["pet2t1_err_mm"] = float(np.linalg.norm(moved[:3], axis=0).max())
    blurred = case.truth / "suvr_template_blurred.nii.gz"
    figures |= _roi_errors(f["suvr"], blurred, f["ref"], res, "e2e")
    # the same chain with the TRUE template<->native mapping isolates the PET stage
    true_warp = transforms.dense_map_to_ants_warp(nib.load(case.truth / "template_to_native_coords.nii.gz"),
                                           out / "true_warp.nii.gz")
    ants.write_transform(transforms.ras_to_ants_linear(np.eye(4)), str(out / "identity.mat"))
    pet.pet_to_template(f["mean"], f["xfm"], [true_warp, out / "identity.mat"], f["tpl_true"],
                        subject=case.subject, resolution_mm=res)
    suvr.compute_suvr(f["tpl_true"], f["ref"], f["suvr_true"], f["stats_true"], subject=case.subject)
    return figures | _roi_errors(f["suvr_true"], blurred, f["ref"], res, "petonly")


def bench_harmonize(case: Case, steps: Steps) -> dict[str, float]:
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


def bench_regional(case: Case, steps: Steps) -> dict[str, float]:
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
        key = "regional" if chain == "e2e" else "  regional, true mapping (bench check)"  # indented: not summed
        table = _timed(steps, key, session_regional, suvr=out / f"suvr{suffix}.nii.gz",
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
STAGES: dict[str, Callable[[Case, Steps], dict[str, float]]] = {
    "mri": bench_mri, "pet": bench_pet, "harmonize": bench_harmonize, "regional": bench_regional}


# ---------------------------------------------------------------- runner
COHORT_STEPS = {"pet_reference"}  # rules without a subject wildcard: one job per workflow run


class _StepRecords(logging.Handler):
    """Collects the package's :func:`mri2tau.log.timed_step` records into ``steps``."""

    def __init__(self, steps: Steps) -> None:
        super().__init__(logging.INFO)
        self.steps = steps

    def emit(self, record: logging.LogRecord) -> None:
        if hasattr(record, "step"):
            self.steps[f"  {record.step}"] = (record.wall_s, record.cpu_s)


def _child(stage: str, case: Case, queue: multiprocessing.Queue) -> None:
    from mri2tau.preprocess.registration import set_threads

    set_threads(case.config()["registration"]["threads"])
    steps: Steps = {}
    logger = logging.getLogger("mri2tau")
    logger.setLevel(logging.INFO)
    logger.addHandler(_StepRecords(steps))
    wall, cpu = time.perf_counter(), time.process_time()
    figures = STAGES[stage](case, steps)
    rss_mb = peak_rss_mb()
    total = (time.perf_counter() - wall, time.process_time() - cpu)
    queue.put((total, rss_mb, steps, figures))


def run_stage(stage: str, case: Case) -> tuple[tuple[float, float], float, Steps, dict[str, float]]:
    """((wall s, CPU s), peak RSS MB, steps, figures) of one stage, run in a fresh spawned process."""
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_child, args=(stage, case, queue))
    proc.start()
    result = queue.get()
    proc.join()
    if proc.exitcode:
        raise RuntimeError(f"stage {stage} failed (exit code {proc.exitcode})")
    return result


def report_stages(case: Case, stages: list[str]) -> None:
    """Run the stages; print per-step wall / CPU, peak RSS and figures, then the per-subject total.

    Steps in ``COHORT_STEPS`` run once per cohort in the workflow (no subject wildcard): they are
    printed but left out of the per-subject total.
    """
    config = case.config()
    print(f"   ITK threads: registration {config['registration']['threads']}, pet {config['pet']['threads']}; "
          f"load average before {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs", flush=True)
    subject, cohort = [0.0, 0.0], [0.0, 0.0]
    for stage in stages:
        (wall, cpu), rss_mb, steps, figures = run_stage(stage, case)
        print(f"  {stage:<10} process wall {wall:7.1f} s  CPU {cpu:7.1f} s  peak RSS {rss_mb:7.0f} MB")
        for step, (step_wall, step_cpu) in steps.items():
            once = step in COHORT_STEPS
            note = "  (once per cohort)" if once else ""
            print(f"    {step:<24} wall {step_wall:7.1f} s  CPU {step_cpu:7.1f} s{note}")
            if not step.startswith(" "):  # pipeline steps (sub-steps are indented)
                total = cohort if once else subject
                total[:] = [total[0] + step_wall, total[1] + step_cpu]
        print("    " + "  ".join(f"{k} {v:.3f}" for k, v in figures.items()), flush=True)
    print(f"  per-subject pipeline steps: wall {subject[0]:.1f} s ({subject[0] / 60:.2f} min), CPU {subject[1]:.1f} s; "
          f"+ once per cohort: wall {cohort[0]:.1f} s, CPU {cohort[1]:.1f} s; "
          f"load average after {os.getloadavg()[0]:.2f}", flush=True)


def real_head_t1(series: Path, out: Path) -> Path:
    """A real T1 DICOM series -> NIfTI with the project's conversion (validation + dcm2niix)."""
    from mri2tau.convert.session import convert_series
    from mri2tau.io.dicom import validate_series

    info = validate_series(series, subject="real")
    image, _ = convert_series(series, out, info, subject="real")
    return image


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--voxel-mm", type=float, nargs="+", default=[2.0])
    parser.add_argument("--stages", nargs="+", default=list(STAGES), choices=list(STAGES))
    parser.add_argument("--preset", default="demo", choices=["demo", "paper"],
                        help="whose stage settings (e.g. registration iterations) to use")
    parser.add_argument("--threads", type=int, help="ITK threads per job (default: the preset's)")
    parser.add_argument("--real-head", type=Path, help="a real T1 DICOM series folder: MRI stage only, no truth")
    parser.add_argument("--keep", type=Path, help="copy the MRI QC picture(s) here")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    from mri2tau.demo.cohort import generate_cohort

    for voxel_mm in args.voxel_mm:
        with tempfile.TemporaryDirectory(prefix="mri2tau_bench_") as tmp:
            case = Case(root=Path(tmp) / "demo", subject="REAL", resolution_mm=voxel_mm, out=Path(tmp) / "out",
                        preset=args.preset, threads=args.threads)
            if args.real_head:
                case = replace(case, t1=real_head_t1(args.real_head, Path(tmp) / "convert"))
                stages, what = ["mri"], f"real head {args.real_head}"
            else:
                generate_cohort(case.root, subjects=1, seed=args.seed, voxel_mm=voxel_mm)
                case = replace(case, subject=next((case.root / "truth").glob("sub-*")).name[4:])
                stages, what = args.stages, f"one demo subject (sub-{case.subject})"
            print(f"== {what} at {voxel_mm:g} mm, {args.preset} preset settings")
            report_stages(case, stages)
            if args.keep:
                args.keep.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(case.out / "mri" / "qc.png", args.keep / f"{case.subject}_{voxel_mm:g}mm_qc.png")


if __name__ == "__main__":
    main()
