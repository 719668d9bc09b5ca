"""The synthesize / evaluate / classifier / figures rules and `snakemake --report` on a tiny
finished workdir: every table and figure is in the report HTML.

The workflow under test is a small Snakefile that includes the project's ``common.smk`` (the
shared path patterns), ``synthesize.smk``, ``evaluate.smk`` and ``report.smk``. The upstream
stages' outputs (preprocessed sessions, split, harmonization params, slice sets, trained
models) are written by :func:`build_workdir` when that Snakefile is parsed, at the run's paths
(``paths``, :class:`mri2tau.paths.RunPaths`, built by ``common.smk``); the slices and model rules
are not included (they would need the whole upstream DAG). Models: a 2D cGAN and a 3D U-Net
(demo sizes, random weights).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from slurm.runner import env, run

from mri2tau.paths import FIGURE_NAMES, SPLIT_NAMES, TIMING_NAME, RunPaths, comparison_name, synth_name
from mri2tau.templates import TEMPLATE_NAME

pytestmark = pytest.mark.dag  # calls snakemake on a workflow copy

REPO = Path(__file__).resolve().parents[1]
MODELS = ("cgan", "unet3d")
SESSIONS = [("T01", "CN", 0.3, "train"), ("T02", "CN", 0.5, "train"), ("T03", "LMCI", 1.5, "train"),
            ("T04", "AD", 2.2, "train"), ("T05", "SMC", 1.0, "train"), ("T06", "CN", 0.4, "train"),
            ("S01", "CN", 0.4, "test"), ("S02", "EMCI", 1.3, "test"), ("S03", "AD", 2.0, "test")]
TABLES = ("table1_ablation", "table3_models", "table4_diagnosis", "table_volumes", "roi_agreement", "inference")
FIGURES = tuple(comparison_name(m) for m in MODELS) + tuple(FIGURE_NAMES.values())

SNAKEFILE = f"""
import sys
sys.path.insert(0, {str(REPO / "tests")!r})


configfile: "config.yaml"


include: {str(REPO / "workflow/rules/common.smk")!r}


from test_report import build_workdir

build_workdir(paths, config)


include: {str(REPO / "workflow/rules/synthesize.smk")!r}
include: {str(REPO / "workflow/rules/evaluate.smk")!r}
include: {str(REPO / "workflow/rules/report.smk")!r}


rule all:
    input:
        all_targets,
    default_target: True
"""


def build_workdir(paths: RunPaths, config: dict) -> None:
    """Upstream outputs for :data:`SESSIONS` at ``paths`` (once; skipped when the split table exists)."""
    if Path(paths.splits).is_file():
        return
    import torch
    from test_synthesize import write_sessions
    from torch import nn

    from mri2tau.data.geometry import volume_geometry
    from mri2tau.data.slices import build_slices
    from mri2tau.io.session_index import write_session_index
    from mri2tau.models import registry
    from mri2tau.train.checkpoint import save_generator

    patterns = dict(suvr=paths.suvr_template, suvr_std=paths.suvr_std_template, t1_template=paths.t1_template,
                    mask=paths.brain_mask_template, t1w=paths.t1w, xfm_affine=paths.xfm_affine,
                    xfm_invwarp=paths.xfm_invwarp)
    write_sessions(patterns, SESSIONS, Path(paths.splits), Path(paths.harmonization_params))
    for stage in ("mri", "suvr", "suvrstd"):  # the session indexes (rule session_index)
        for split, index in zip(SPLIT_NAMES, paths.session_indexes(stage)):
            write_session_index(splits=paths.splits, split=split, patterns=paths.index_patterns[stage], out=index)
    slices = {**config["slices"], "dtype": "float32"}
    build_slices(paths.splits, paths.t1_template, paths.suvr_std_template, paths.brain_mask_template,
                 paths.slices_dir, slices)
    slice_meta = json.loads(str(np.load(paths.slices.format(split="train"))["meta"]))
    geometry = volume_geometry(config["volumes"], config["template"]["resolution_mm"])
    volume_meta = {"geometry": asdict(geometry), "pet_window": slices["pet_window"],
                   "t1_percentiles": slices["t1_percentiles"], "mask_brain": slices["mask_brain"]}
    torch.manual_seed(0)
    for model in MODELS:
        spec = registry.get(model)
        hp = spec.hparams("demo", image_size=slices["grid"] if spec.dims == 2 else list(geometry.shape))
        generator: nn.Module = spec.build(hp)["generator"]
        save_generator(paths.model_file.format(model=model), generator, model, hp, 2,
                       slice_meta if spec.dims == 2 else volume_meta)
        pd.DataFrame({"epoch": [1, 2], "step": [3, 6], "lr": [2e-4, 1e-4], "l1": [0.5, 0.4],
                      "monitored_l1": [0.5, 0.4], "seconds": [1.0, 1.0]}).to_csv(
            paths.model_metrics.format(model=model), index=False)


def _snakemake(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    return run(workdir, "--snakefile", "Snakefile", "--cores", "2", *args,
               environ=env({"HOME": str(workdir), "OMP_NUM_THREADS": "1"}))


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    """The tiny workdir after `snakemake all` and `snakemake --report report.html`."""
    if shutil.which("snakemake", path=str(Path(sys.executable).parent)) is None:
        pytest.skip("snakemake is not installed in this environment")
    workdir = tmp_path_factory.mktemp("report_workdir")
    (workdir / "Snakefile").write_text(SNAKEFILE)
    (workdir / "config.yaml").write_text(
        "preset: demo\nresults_dir: results\ntrain: {enabled: [cgan]}\nsynthesize: {models: [cgan, unet3d]}\n"
        "classifier: {epochs: 1}\n")
    _snakemake(workdir, "all")
    _snakemake(workdir, "--report", "report.html")
    return workdir


def finished_paths(workdir: Path) -> RunPaths:
    """The finished workdir's paths (config.yaml: results_dir results, the demo template)."""
    return RunPaths(str(workdir / "results"), TEMPLATE_NAME)


def test_rules_write_every_table_and_figure(finished):
    paths = finished_paths(finished)
    for stem in TABLES:
        for ext in ("tsv", "md", "html"):
            assert Path(paths.eval_file(f"{stem}.{ext}")).is_file(), f"{stem}.{ext}"
    for name in FIGURES:
        assert Path(paths.figure(name)).stat().st_size > 5000, name
    for model in MODELS:
        synth_dir = Path(paths.synth_dir.format(model=model))
        timing = pd.read_csv(synth_dir / TIMING_NAME, sep="\t", dtype={"sub": str})
        assert sorted(timing["sub"]) == ["S01", "S02", "S03"]
        assert sorted(p.name for p in synth_dir.glob("*.nii.gz")) == sorted(  # template + T1w space
            synth_name(sub, "bl", space) for sub in ("S01", "S02", "S03") for space in (TEMPLATE_NAME, "T1w"))
    table5 = pd.read_csv(paths.classifier_file("table5_classifier.tsv"), sep="\t")
    assert table5["source"].tolist() == ["real", *MODELS]
    assert all(cell.startswith(tuple(f"{k}/3 " for k in range(4))) for cell in table5["overall"])
    table4 = pd.read_csv(paths.eval_file("table4_diagnosis.tsv"), sep="\t")
    assert set(table4["dx_group"]) == {"CN", "MCI", "AD"}  # EMCI -> MCI
    inference = pd.read_csv(paths.eval_file("inference.tsv"), sep="\t")
    assert inference["model"].tolist() == list(MODELS) and (inference["n_parameters"] > 1000).all()
    for model in MODELS:  # rule regional_synth: the synthetic test PET's regional SUVR, one row per session
        regional = pd.read_csv(paths.regional_synth_table("wide", "tsv").format(model=model), sep="\t")
        assert sorted(regional["participant_id"]) == ["sub-S01", "sub-S02", "sub-S03"]
        assert (regional["source"] == model).all() and regional["BRAAK1_SUVR"].notna().all()


def test_report_html_lists_every_table_and_figure(finished):
    html = (finished / "report.html").read_text()
    entries = [f"{stem}.html" for stem in TABLES] + ["table5_classifier.html", *FIGURES]
    missing = [name for name in entries if name not in html]
    assert not missing, f"report lacks {missing}"
    for caption in ("Table V - downstream classifier", "Regional SUVR agreement", "Training loss curves"):
        assert caption in html
    assert re.search(r"MNI152NLin6Asym template at(\s|\\n)+4.0 mm", html)  # workflow.rst, rendered with the config
