"""The 3D models in the workflow: rules ``volumes`` and ``train_model_3d``, and their reruns.

A cheap "finished" working directory: the demo cohort, conversion checkpoint and split run for
real (2 sessions, 4 mm: tests/slurm/runner.py SMALL_DEMO), every other job is marked done with
``snakemake --touch`` (empty outputs, but Snakemake records each job's params and code as after
a real run). On it:

* a dry run with ``perceptual.kind: static25d`` plans EXACTLY the 3D training jobs and the
  synthesis / evaluation / classifier jobs after them (2D training, slices, volumes and
  preprocessing stay done);
* with demo-like template-space T1 / SUVR / brain masks in place of the touched ones (mtimes
  kept), Snakemake runs the real ``volumes`` (forced) and ``train_model_3d`` rules (tiny U-Net,
  2 epochs, cyclic 2.5D perceptual loss, on CPU) and the synthesis stage loads the model.
"""

from __future__ import annotations

import os
import re

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from slurm.runner import (
    SMALL_DEMO,
    copy_run,
    copy_workflow,
    parse_dry_run,
    planned_jobs,
    planned_outputs,
    run,
)

from mri2tau.config import resolve_config
from mri2tau.paths import RunPaths

pytestmark = pytest.mark.dag  # calls snakemake on a workflow copy

MODELS_2D = ["cgan"]
MODELS_3D = ["unet3d", "unetr", "swinunetr", "pix2pix3d", "cyclegan3d"]
CONFIG = {
    **SMALL_DEMO,
    "train": {"enabled": MODELS_2D, "enabled_3d": MODELS_3D, "threads": 1, "progress_bar": False},
    "perceptual": {"kind": "cyclic25d", "initial_duration": 1},  # 2 epochs: axial, then coronal
}
RES_MM = SMALL_DEMO["template"]["resolution_mm"]
_RESOLVED = resolve_config(CONFIG)
PATHS = RunPaths(_RESOLVED["results_dir"], _RESOLVED["template"]["name"])  # relative to the workdir


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


def touch_finished(wd) -> None:
    """Run the checkpoints for real, create every other planned output empty, mark all done."""
    run(wd, "--cores", "1", PATHS.splits, timeout=600)
    synth_dir = re.compile(re.escape(PATHS.synth_dir).replace(re.escape("{model}"), "[^/]+"))
    for rel in planned_outputs(wd, "all"):
        path = wd / rel
        if synth_dir.fullmatch(rel):  # directory() outputs
            path.mkdir(parents=True, exist_ok=True)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch()
    run(wd, "--cores", "1", "--touch", "all")
    # harmonize_fit reads the split checkpoint, whose input is the select_series checkpoint's:
    # Snakemake 9.27 touches it before the SUVRs it reads (see tests/test_reruns.py,
    # NESTED_CHECKPOINT_BUG). Touch it and everything after it again, now after its inputs.
    run(wd, "--cores", "1", "--touch", "--forcerun", "harmonize_fit", "all")


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    wd = copy_workflow(tmp_path_factory.mktemp("pipeline3d") / "wd", CONFIG)
    touch_finished(wd)
    return wd


def after_3d_training(models_3d: list[str]) -> set[str]:
    """3D training jobs and what consumes them: synthesis and regional SUVRs of the synthetic
    images per model, evaluation, figures, Table V."""
    return ({f"{rule}[model={m}]" for m in models_3d for rule in ("train_model_3d", "synthesize", "regional_synth")}
            | {"evaluate", "figures", "classifier_test", "all"})


def test_perceptual_kind_change_reruns_only_3d_training_and_what_follows(finished):
    planned = planned_jobs(finished, "all", "--config", "perceptual={kind: static25d}")
    assert planned == after_3d_training(MODELS_3D)  # no 2D training, slices, volumes, classifier training


def test_augmentation_change_retrains_3d_models_without_rebuilding_volumes(finished, tmp_path):
    override = tmp_path / "override.yaml"  # --config would pass the number as a string
    override.write_text(yaml.safe_dump({**CONFIG, "volumes": {"augment": {"flip_prob": 0.0}}}))
    planned = planned_jobs(finished, "all", "--configfile", str(override))
    assert planned == after_3d_training(MODELS_3D)


def write_demo_like_session(wd, sub: str, ses: str, amplitude: float) -> None:
    """Template-space T1 (the template head), brain mask and a standardized SUVR map with
    ``amplitude`` extra uptake in the Braak I-IV regions, on the ``RES_MM`` template grid."""
    from mri2tau.templates import load_template_mask, load_template_t1, roi_masks

    t1 = load_template_t1(RES_MM)
    brain = np.asarray(load_template_mask(RES_MM).dataobj) > 0
    rois = roi_masks(RES_MM)
    suvr = np.where(brain, 1.0, 0.0).astype(np.float32)
    for stage in ("braak1", "braak2", "braak3", "braak4"):
        suvr[rois[stage]] += amplitude
    images = {PATHS.t1_template: np.asarray(t1.dataobj), PATHS.brain_mask_template: brain.astype(np.uint8),
              PATHS.suvr_std_template: suvr}
    for pattern, data in images.items():
        path = wd / pattern.format(sub=sub, ses=ses)
        touched = path.stat()
        nib.save(nib.Nifti1Image(data, t1.affine), path)
        os.utime(path, ns=(touched.st_atime_ns, touched.st_mtime_ns))  # the other rules' outputs stay newer


def test_3d_model_trains_through_its_rule(finished, tmp_path):
    wd = copy_run(finished, tmp_path / "wd")
    splits = pd.read_csv(wd / PATHS.splits, sep="\t", dtype=str)
    for i, row in enumerate(splits.itertuples()):
        write_demo_like_session(wd, row.sub, row.ses, amplitude=0.5 + i)
    target = PATHS.model_file.format(model="unet3d")
    ran = run(wd, "--cores", "1", target, "--forcerun", "volumes", timeout=600).stdout
    assert set(parse_dry_run(ran)) == {"volumes", "train_model_3d[model=unet3d]"}  # the plan it ran

    # the volume set: one 64^3 box per session, scaled to [-1, 1], rows as the split table
    from mri2tau.data.volumes import open_volumes

    for split in ("train", "test"):
        volumes = open_volumes(wd / PATHS.volumes_dir, split)
        rows = splits[splits["split"] == split]
        assert list(volumes.index["sub"]) == sorted(rows["sub"])
        assert volumes.mri.shape == (len(rows), 1, 64, 64, 64)
        assert volumes.pet.min() >= -1 and volumes.pet.max() <= 1
        assert (volumes.mri > -1).mean() > 0.1  # the brain is inside the box

    # training: 2 epochs, the cyclic schedule, finite losses; a model file synthesis can load
    metrics = pd.read_csv(wd / PATHS.model_metrics.format(model="unet3d"))
    assert list(metrics["epoch"]) == [1, 2]
    assert np.isfinite(metrics["l1"]).all()
    assert list(metrics["perceptual_plane"]) == ["axial", "coronal"]  # initial_duration 1
    from mri2tau.synthesize import SynthSettings, infer_3d, load_model

    model = load_model(wd / target, device="cpu")
    assert (model.name, model.dims) == ("unet3d", 3)
    assert model.hparams["perceptual"]["kind"] == "cyclic25d"
    assert model.scaling.geometry == volumes.geometry
    t1_unit = np.asarray(volumes.mri[0, 0], dtype=np.float32)
    pet, windows = infer_3d(model, volumes.geometry.to_template(t1_unit, fill=-1.0), SynthSettings())
    assert windows == 1 and pet.shape == volumes.geometry.template_shape
    assert np.isfinite(pet).all() and pet.std() > 0
