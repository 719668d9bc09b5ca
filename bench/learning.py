"""Does the pipeline learn MRI -> tau? A larger synthetic cohort at the demo grid, every model
trained for a fixed budget, scored against the ``mean`` baseline (issue 12).

Usage: .venv/bin/python bench/learning.py [--subjects 80] [--models mean cgan unet3d]
       [--epochs cgan=150 unet3d=60] [--work /tmp/mri2tau-learning] [--threads 1] [--fresh]

Images: template-space T1 and SUVR straight from the demo generator
(:mod:`mri2tau.demo.template_space`): no DICOM conversion, no registration, no PET noise or
motion. Subject ``i`` is subject ``i`` of the demo cohort (same diagnosis, vendor, tau and
atrophy); its T1 keeps all of its atrophy (the MRI stage's SyN would recover part of the
macro-scale part), so the figures are an upper bound for the real pipeline's inputs.

Everything after the images is the package's own code, in one process
(:class:`mri2tau.evaluate.learning.LearningRun`): split, standardization (resolution matching
+ z-score), slices, volumes, the training loop (2D ``train_from_slices`` / 3D
``train_from_volumes``, demo-preset hyper-parameters + ``--epochs`` / ``--set``), synthesis,
evaluation and the Table V classifier. Per model it prints MSE / PSNR / SSIM (whole and brain,
mean over the paper's slice positions), brain MSE relative to ``mean``, Pearson r / ICC of the
regional SUVR (Braak I-VI, I-II, meta-temporal) and the classifier's accuracy / AUC, then the
issue's targets and CPU seconds per stage. The cohort and trained models are cached in
``--work`` (``--fresh`` retrains). GPU: ``--device cuda``.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from mri2tau.demo.atrophy import subject_link
from mri2tau.demo.template_space import PATTERNS, write_template_cohort
from mri2tau.evaluate.learning import LearningRun, learning_config, summary
from mri2tau.models.defaults import BASELINES, model_dims

DEFAULT_MODELS = ["mean", "cgan", "unet3d"]
SHOWN = ["model", "mse", "psnr", "ssim", "mse_brain", "psnr_brain", "ssim_brain", "mse_brain_vs_mean",
         "r_braak1", "r_braak2", "r_braak1_2", "r_braak3", "r_braak4", "r_braak5", "r_braak6", "r_meta_temporal",
         "icc_braak1_2", "icc_meta_temporal", "accuracy", "auc"]


def _cpu() -> float:
    """CPU seconds (user + sys) of this process and its finished children."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def _parse_pairs(items: list[str], cast=int) -> dict:
    out = {}
    for item in items:
        key, _, value = item.partition("=")
        out[key] = cast(value) if cast is not None else json.loads(value)
    return out


def cohort(work: Path, subjects: int, seed: int, voxel_mm: float) -> tuple[pd.DataFrame, dict[str, str]]:
    """The template-space cohort in ``work/cohort`` (generated once per size/seed/voxel)."""
    folder = work / f"cohort-n{subjects}-s{seed}-{voxel_mm:g}mm"
    pairs_tsv = folder / "pairs.tsv"
    if not pairs_tsv.is_file():
        pairs = write_template_cohort(folder, subjects, seed=seed, voxel_mm=voxel_mm)
        pairs.to_csv(pairs_tsv, sep="\t", index=False)
    pairs = pd.read_csv(pairs_tsv, sep="\t", dtype={"sub": str, "ses": str, "ptid": str})
    return pairs, {k: str(folder / v) for k, v in PATTERNS.items()}


def print_link(work: Path, subjects: int, seed: int, voxel_mm: float) -> None:
    """Hippocampal / ventricle volume vs Braak I-II SUVR of the cohort's subjects (the full
    generator's truth: atrophy + random warp; :func:`mri2tau.demo.atrophy.subject_link`)."""
    path = work / f"link-n{subjects}-s{seed}-{voxel_mm:g}mm.tsv"
    if not path.is_file():
        pd.DataFrame([subject_link(seed, i, subjects, voxel_mm) for i in range(subjects)]).to_csv(
            path, sep="\t", index=False)
    link = pd.read_csv(path, sep="\t")
    r = {f"{v} vs {s}": np.corrcoef(link[v], link[s])[0, 1] for v in ("hippocampus_ml", "ventricles_ml")
         for s in ("braak12_suvr", "braak12_suvr_vendor")}
    print("MRI-tau link (Pearson r, n = %d): " % len(link) + ", ".join(f"{k} {v:+.3f}" for k, v in r.items()))


def targets(table: pd.DataFrame, classifier: bool) -> list[str]:
    """The issue's targets, checked on the table (one line each)."""
    lines = []
    for dims in (2, 3):
        rows = table[[m not in BASELINES and model_dims(m) == dims for m in table["model"]]]
        if rows.empty:
            continue
        best = rows.sort_values("mse_brain").iloc[0]
        lines.append(f"best {dims}D ({best.model}): brain MSE {100 * (1 - best.mse_brain_vs_mean):+.1f} % vs mean "
                     f"(target >= +25 %), Braak I-II r {best.r_braak1_2:.3f} (target >= 0.8)")
    if classifier:
        real = table.attrs["real_auc"]
        best = table[~table["model"].isin(BASELINES)].sort_values("mse_brain").iloc[0]
        lines.append(f"classifier AUC real {real:.3f} (target >= 0.9); on {best.model}'s synthetic PET "
                     f"{best.auc:.3f} (target within 0.1 of real)")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subjects", type=int, default=80)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--voxel-mm", type=float, default=4.0, help="template grid (demo: 4 mm)")
    parser.add_argument("--test-fraction", type=float, default=0.25)
    parser.add_argument("--models", nargs="+", default=DEFAULT_MODELS)
    parser.add_argument("--epochs", nargs="*", default=[], help="model=epochs (default: the demo preset's)")
    parser.add_argument("--set", nargs="*", default=[], help="model=JSON hyper-parameter overrides")
    parser.add_argument("--config", default="{}", help="JSON config overrides (deep-merged over the demo preset)")
    parser.add_argument("--classifier-epochs", type=int, default=30)
    parser.add_argument("--no-classifier", action="store_true")
    parser.add_argument("--work", default="/tmp/mri2tau-learning")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--device", default="cpu", help="cpu | cuda | auto")
    parser.add_argument("--fresh", action="store_true", help="retrain models cached in --work")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    cpu: dict[str, float] = {}

    start = _cpu()
    pairs, patterns = cohort(work, args.subjects, args.seed, args.voxel_mm)
    cpu["cohort (generator, cached)"] = _cpu() - start
    start = _cpu()
    print_link(work, args.subjects, args.seed, args.voxel_mm)
    cpu["MRI-tau link of the cohort (cached)"] = _cpu() - start

    overrides = {m: {"epochs": e} for m, e in _parse_pairs(args.epochs).items()}
    for model, extra in _parse_pairs(args.set, cast=None).items():
        overrides.setdefault(model, {}).update(extra)
    config = learning_config({
        "template": {"resolution_mm": args.voxel_mm}, "split": {"test_fraction": args.test_fraction},
        "train": {"device": args.device, "overrides": overrides},
        "classifier": {"epochs": args.classifier_epochs, "device": args.device},
        "synthesize": {"device": args.device}, **json.loads(args.config)})
    run_dir = work / f"run-n{args.subjects}-s{args.seed}"
    run = LearningRun(run_dir, patterns, config, threads=args.threads)
    start = _cpu()
    splits = run.prepare(pairs)
    cpu["split + standardization + slices + volumes"] = _cpu() - start
    test = splits[splits["split"] == "test"]
    print(f"{len(pairs)} subjects ({(splits['split'] == 'train').sum()} train / {len(test)} test: "
          f"{test['dx_group'].value_counts().to_dict()}), template grid {args.voxel_mm:g} mm")
    for model in args.models:
        if args.fresh:
            shutil.rmtree(run.model_dir(model), ignore_errors=True)
        start, wall = _cpu(), time.perf_counter()
        if not (run.model_dir(model) / "model.pt").is_file():
            run.train(model)
        cpu[f"train {model} ({run.hparams(model).get('epochs')} epochs)"] = _cpu() - start
        start = _cpu()
        run.synthesize(model)
        cpu[f"synthesize {model}"] = _cpu() - start
    start = _cpu()
    tables = run.evaluate(args.models)
    cpu["evaluate"] = _cpu() - start
    table5 = None
    if not args.no_classifier:
        start = _cpu()
        table5 = run.classify(args.models)
        cpu[f"classifier ({args.classifier_epochs} epochs) train + test"] = _cpu() - start
    table = summary(tables, table5, args.voxel_mm)
    if table5 is not None:
        table.attrs["real_auc"] = float(table5.set_index("source").loc["real", "auc"])
        print(f"classifier on real test PET: accuracy {table5.set_index('source').loc['real', 'accuracy']:.3f}, "
              f"AUC {table.attrs['real_auc']:.3f}")
    shown = [c for c in SHOWN if c in table.columns]
    with pd.option_context("display.width", 250, "display.max_columns", 40):
        print(table[shown].round(4).to_string(index=False))
    for line in targets(table, table5 is not None):
        print(line)
    print("CPU seconds (user + sys; shared machines inflate wall time, not these):")
    for stage, seconds in cpu.items():
        print(f"  {stage}: {seconds:.0f}")
    table.to_csv(run_dir / "learning.tsv", sep="\t", index=False)


if __name__ == "__main__":
    np.set_printoptions(precision=4)
    main()
