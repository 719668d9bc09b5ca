"""The synthesize / evaluate / classifier / figures rules and `snakemake --report` on a tiny
finished workdir: every table and figure is in the report HTML.

The workflow under test is a small Snakefile that includes the project's ``common.smk`` (the
shared path patterns), ``synthesize.smk``, ``evaluate.smk`` and ``report.smk``. The upstream
stages' outputs (preprocessed sessions, split, harmonization params, slice sets, trained
models) are written by :func:`build_workdir` when that Snakefile is parsed, at the paths
``common.smk`` defines; the slice and model file names repeat those of ``slices.smk`` /
``train.smk`` (their rules would need the whole upstream DAG). Models: a 2D cGAN and a 3D U-Net
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

REPO = Path(__file__).resolve().parents[1]
MODELS = ("cgan", "unet3d")
SESSIONS = [("T01", "CN", 0.3, "train"), ("T02", "CN", 0.5, "train"), ("T03", "LMCI", 1.5, "train"),
            ("T04", "AD", 2.2, "train"), ("T05", "SMC", 1.0, "train"), ("T06", "CN", 0.4, "train"),
            ("S01", "CN", 0.4, "test"), ("S02", "EMCI", 1.3, "test"), ("S03", "AD", 2.0, "test")]
TABLES = ("table1_ablation", "table3_models", "table4_diagnosis", "table_volumes", "roi_agreement", "inference")
FIGURES = tuple(f"comparison_{m}.png" for m in MODELS) + ("metrics_by_diagnosis.png", "loss_curves.png",
                                                          "roi_scatter.png")

SNAKEFILE = f"""
import sys
sys.path.insert(0, {str(REPO / "tests")!r})


configfile: "config.yaml"


include: {str(REPO / "workflow/rules/common.smk")!r}


SLICES = f"{{R}}/slices/{{{{split}}}}.npz"
SLICES_CENTRAL = f"{{R}}/slices/{{{{split}}}}_central.npz"
SLICES_CENTRAL_INDEX = f"{{R}}/slices/{{{{split}}}}_central_index.tsv"
TRAIN_MODELS = config["train"]["enabled"]
TRAIN_MODELS_3D = []  # as train.smk; this finished workdir has 2D models only
VOLUME_SETTINGS = {{k: v for k, v in config["volumes"].items() if k != "augment"}}  # as slices.smk
MODEL_FILE = f"{{R}}/models/{{{{model}}}}/model.pt"
MODEL_METRICS = f"{{R}}/models/{{{{model}}}}/metrics.csv"

from test_report import build_workdir

build_workdir(dict(suvr=SUVR_TEMPLATE, suvr_std=SUVR_STD_TEMPLATE, t1_template=T1_TEMPLATE,
                   mask=BRAIN_MASK_TEMPLATE, t1w=T1W, xfm_affine=XFM_AFFINE, xfm_invwarp=XFM_INVWARP),
              SPLITS, HARMONIZATION_PARAMS, f"{{R}}/slices", MODEL_FILE, MODEL_METRICS, config,
              {{SESSION_INDEX.format(stage=k, split=s): (s, INDEX_PATTERNS[k]) for k in ("mri", "suvr", "suvrstd")
                for s in SPLIT_NAMES}})


include: {str(REPO / "workflow/rules/synthesize.smk")!r}
include: {str(REPO / "workflow/rules/evaluate.smk")!r}
include: {str(REPO / "workflow/rules/report.smk")!r}


rule all:
    input:
        all_targets,
    default_target: True
"""


def build_workdir(patterns: dict, splits: str, harmonization: str, slices_dir: str, model_file: str,
                  model_metrics: str, config: dict, indexes: dict) -> None:
    """Upstream outputs for :data:`SESSIONS` (once; skipped when the split table exists)."""
    if Path(splits).is_file():
        return
    import torch
    from test_synthesize import write_sessions
    from torch import nn

    from mri2tau.data.geometry import volume_geometry
    from mri2tau.data.slices import build_slices
    from mri2tau.io.session_index import write_session_index
    from mri2tau.models import registry
    from mri2tau.train.checkpoint import save_generator

    write_sessions(patterns, SESSIONS, Path(splits), Path(harmonization))
    for index, (split, index_patterns) in indexes.items():  # the session indexes (rule session_index)
        write_session_index(splits=splits, split=split, patterns=index_patterns, out=index)
    slices = {**config["slices"], "dtype": "float32"}
    build_slices(splits, patterns["t1_template"], patterns["suvr_std"], patterns["mask"], slices_dir, slices)
    slice_meta = json.loads(str(np.load(Path(slices_dir) / "train.npz")["meta"]))
    geometry = volume_geometry(config["volumes"], config["template"]["resolution_mm"])
    volume_meta = {"geometry": asdict(geometry), "pet_window": slices["pet_window"],
                   "t1_percentiles": slices["t1_percentiles"], "mask_brain": slices["mask_brain"]}
    torch.manual_seed(0)
    for model in MODELS:
        spec = registry.get(model)
        hp = spec.hparams("demo", image_size=slices["grid"] if spec.dims == 2 else list(geometry.shape))
        generator: nn.Module = spec.build(hp)["generator"]
        save_generator(model_file.format(model=model), generator, model, hp, 2,
                       slice_meta if spec.dims == 2 else volume_meta)
        pd.DataFrame({"epoch": [1, 2], "step": [3, 6], "lr": [2e-4, 1e-4], "l1": [0.5, 0.4],
                      "monitored_l1": [0.5, 0.4], "seconds": [1.0, 1.0]}).to_csv(
            model_metrics.format(model=model), index=False)


def _snakemake(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    bin_dir = Path(sys.executable).parent
    result = subprocess.run(
        [str(bin_dir / "snakemake"), "--snakefile", "Snakefile", "--cores", "2", *args],
        cwd=workdir, capture_output=True, text=True, timeout=600,
        env={"PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": str(workdir), "OMP_NUM_THREADS": "1"},
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    return result


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


def test_rules_write_every_table_and_figure(finished):
    results = finished / "results"
    for stem in TABLES:
        for ext in ("tsv", "md", "html"):
            assert (results / "eval" / f"{stem}.{ext}").is_file(), f"{stem}.{ext}"
    for name in FIGURES:
        assert (results / "eval" / "figures" / name).stat().st_size > 5000, name
    for model in MODELS:
        timing = pd.read_csv(results / "synth" / model / "timing.tsv", sep="\t", dtype={"sub": str})
        assert sorted(timing["sub"]) == ["S01", "S02", "S03"]
        assert len(list((results / "synth" / model).glob("*_desc-synth_pet.nii.gz"))) == 6  # template + T1w
    table5 = pd.read_csv(results / "classifier" / "table5_classifier.tsv", sep="\t")
    assert table5["source"].tolist() == ["real", *MODELS]
    assert all(cell.startswith(tuple(f"{k}/3 " for k in range(4))) for cell in table5["overall"])
    table4 = pd.read_csv(results / "eval" / "table4_diagnosis.tsv", sep="\t")
    assert set(table4["dx_group"]) == {"CN", "MCI", "AD"}  # EMCI -> MCI
    inference = pd.read_csv(results / "eval" / "inference.tsv", sep="\t")
    assert inference["model"].tolist() == list(MODELS) and (inference["n_parameters"] > 1000).all()
    for model in MODELS:  # rule regional_synth: the synthetic test PET's regional SUVR, one row per session
        regional = pd.read_csv(results / "derivatives" / "mri2tau" / "group" / f"regional_suvr_synth-{model}_wide.tsv",
                               sep="\t")
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
