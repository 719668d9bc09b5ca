"""The path builder (mri2tau.paths): BIDS entity order, and the names a run's outputs have.

The literal names below are the BIDS(-derivatives) names the pipeline has always written (the
patterns ``common.smk`` declared before the builder, and what finished runs hold on disk): a
change to the builder that renames an existing output fails here.
"""

from __future__ import annotations

import re
import string

import pytest

from mri2tau.paths import (
    SESSION_LOG,
    RunPaths,
    bids_name,
    bids_path,
    log_path,
    sidecar,
    slice_set_name,
    slice_set_stem,
    synth_name,
)

TPL = "MNI152NLin6Asym"
SES = {"sub": "002S0001", "ses": "bl"}
D = "results/derivatives/mri2tau/sub-002S0001/ses-bl"
S = "sub-002S0001_ses-bl"
# attribute -> the file (for sub 002S0001, session bl) a run writes
EXPECTED = {
    "t1w": f"results/bids/sub-002S0001/ses-bl/anat/{S}_T1w.nii.gz",
    "pet_json": f"results/bids/sub-002S0001/ses-bl/pet/{S}_trc-18FAV1451_pet.json",
    "t1_n4": f"{D}/anat/{S}_desc-n4_T1w.nii.gz",
    "t1_template": f"{D}/anat/{S}_space-{TPL}_desc-preproc_T1w.nii.gz",
    "brain_mask_template": f"{D}/anat/{S}_space-{TPL}_desc-brain_mask.nii.gz",
    "brain_mask_native": f"{D}/anat/{S}_desc-brain_mask.nii.gz",
    "xfm_affine": f"{D}/anat/{S}_from-T1w_to-{TPL}_mode-image_desc-affine_xfm.mat",
    "xfm_warp": f"{D}/anat/{S}_from-T1w_to-{TPL}_mode-image_desc-warp_xfm.nii.gz",
    "xfm_invwarp": f"{D}/anat/{S}_from-{TPL}_to-T1w_mode-image_desc-warp_xfm.nii.gz",
    "pet_mean_native": f"{D}/pet/{S}_trc-18FAV1451_desc-mean_pet.nii.gz",
    "pet_motion": f"{D}/pet/{S}_trc-18FAV1451_desc-motion_timeseries.tsv",
    "xfm_pet2t1": f"{D}/pet/{S}_from-pet_to-T1w_mode-image_xfm.mat",
    "pet_mean_template": f"{D}/pet/{S}_trc-18FAV1451_space-{TPL}_desc-mean_pet.nii.gz",
    "suvr_template": f"{D}/pet/{S}_trc-18FAV1451_space-{TPL}_desc-suvr_pet.nii.gz",
    "suvr_stats": f"{D}/pet/{S}_trc-18FAV1451_desc-reference_stats.tsv",
    "suvr_std_template": f"{D}/pet/{S}_trc-18FAV1451_space-{TPL}_desc-suvrstd_pet.nii.gz",
    "regional_tsv": f"{D}/pet/{S}_trc-18FAV1451_space-{TPL}_desc-regional_stats.tsv",
    "mri_qc_png": f"results/qc/{S}_desc-mri_qc.png",
    "pet_qc": f"results/qc/{S}_desc-pet_qc.png",
}
COHORT = {  # patterns without session wildcards
    "pet_reference_mask": f"results/derivatives/mri2tau/tpl-{TPL}/tpl-{TPL}_desc-petreference_mask.nii.gz",
    "regional_wide": "results/derivatives/mri2tau/group/regional_suvr_wide.tsv",
    "regional_figure": "results/derivatives/mri2tau/group/regional_suvr_by_diagnosis.png",
    "session_index": "results/derivatives/mri2tau/sessions_split-{split}_desc-{stage}_index.tsv",
    "slices_central_index": "results/slices/{split}_central_index.tsv",
    "volume_arrays": "results/volumes/{split}_{kind}.npy",
    "model_file": "results/models/{model}/model.pt",
    "synth_dir": "results/synth/{model}",
}
WILDCARDS = {"sub", "ses", "split", "stage", "model", "kind"}


@pytest.fixture(scope="module")
def paths() -> RunPaths:
    return RunPaths("results", TPL)


@pytest.mark.parametrize("attr", sorted(EXPECTED))
def test_session_paths_are_the_bids_names_runs_write(paths, attr):
    assert getattr(paths, attr).format(**SES) == EXPECTED[attr]


@pytest.mark.parametrize("attr", sorted(COHORT))
def test_cohort_patterns(paths, attr):
    assert getattr(paths, attr) == COHORT[attr]


def test_synthetic_and_group_tables(paths):
    assert paths.regional_synth_table("long", "json").format(model="cgan") == (
        "results/derivatives/mri2tau/group/regional_suvr_synth-cgan_long.json")
    assert synth_name("002S0001", "bl", "T1w") == f"{S}_space-T1w_desc-synth_pet.nii.gz"
    assert paths.session_indexes("mri", ["test"]) == [
        "results/derivatives/mri2tau/sessions_split-test_desc-mri_index.tsv"]
    assert slice_set_name(slice_set_stem("train", central=True)) == "train_central.npz"
    assert paths.training_slices("paper") == ("results/slices/train.npz", "results/slices/train_index.tsv")
    assert paths.training_slices("central") == ("results/slices/train_central.npz",
                                                "results/slices/train_central_index.tsv")


def test_entities_follow_bids_order_whatever_the_call_order():
    name = bids_name("xfm", ".mat", desc="affine", mode="image", to="B", from_="A", ses="bl", sub="1", trc=None)
    assert name == "sub-1_ses-bl_from-A_to-B_mode-image_desc-affine_xfm.mat"
    assert bids_name("pet", ".nii.gz", desc="x", space="S", trc="T", ses="2", sub="1") == \
        "sub-1_ses-2_trc-T_space-S_desc-x_pet.nii.gz"
    # entities outside the BIDS order follow, in call order; a prefix leads; no suffix: ends with an entity
    assert bids_name("wide", ".tsv", prefix="p", zz="2", synth="m", desc="d") == "p_desc-d_zz-2_synth-m_wide.tsv"
    assert bids_name("", "", sub="1", ses="2") == "sub-1_ses-2"


def test_bids_path_folders():
    assert bids_path("r", "T1w", ".nii.gz", datatype="anat", ses="2", sub="1") == "r/sub-1/ses-2/anat/sub-1_ses-2_T1w.nii.gz"
    assert bids_path("r", "qc", ".png", folders=False, sub="1", desc="q") == "r/sub-1_desc-q_qc.png"
    assert bids_path("r", "mask", ".nii.gz", tpl="T", desc="m") == "r/tpl-T/tpl-T_desc-m_mask.nii.gz"


def test_every_pattern_is_unique_and_uses_known_wildcards(paths):
    patterns = {k: v for k, v in vars(paths).items() if isinstance(v, str) and k not in ("results", "template")}
    fields = {f for p in patterns.values() for _, f, _, _ in string.Formatter().parse(p) if f}
    assert fields <= WILDCARDS | {"table", "ext"}, fields  # regional_synth: filled by regional_synth_table
    files = [v for k, v in patterns.items() if not k.endswith("_dir") and k not in ("bids", "deriv", "group")]
    assert len(files) == len(set(files)), "two outputs share a path"
    for stage, columns in paths.index_patterns.items():  # an index lists files of one session each
        assert all({"sub", "ses"} <= set(re.findall(r"{(\w+)}", p)) for p in columns.values()), stage


def test_templates_and_results_folder_change_every_derivative(paths):
    other = RunPaths("/data/run2", "OtherTpl")
    assert other.suvr_template.format(**SES) == EXPECTED["suvr_template"].replace(
        "results/", "/data/run2/", 1).replace(TPL, "OtherTpl")
    assert other.xfm_invwarp.startswith("/data/run2/derivatives/mri2tau/") and "from-OtherTpl_to-T1w" in other.xfm_invwarp


def test_sidecars_and_logs():
    assert sidecar("a/x_desc-y_pet.nii.gz") == "a/x_desc-y_pet.json"
    assert sidecar("a/x.tsv") == "a/x.json"
    with pytest.raises(ValueError):
        sidecar("a/x.mat")
    assert log_path("suvr") == "logs/suvr/sub-{sub}_ses-{ses}.log"
    assert SESSION_LOG == "sub-{sub}_ses-{ses}"
    assert log_path("evaluate", "all") == "logs/evaluate/all.log"
