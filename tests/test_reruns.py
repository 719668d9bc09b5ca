"""Incremental reruns: after a full run only what a change touches is planned again.

The full run is the demo DAG (2 sessions, coarse voxels) through conversion and preprocessing
(tests/slurm/runner.py:reference_run). Assertions compare EXACT job sets (``rule[wildcards]``):
what a dry run plans after the change, against what Snakemake plans when the changed rule(s)
are forced (``--forcerun``: their jobs and everything downstream), plus the stages that must
not run again.
"""

from __future__ import annotations

import os
import shutil

import pytest
from slurm.runner import (
    PREPROCESSING_STAGES,
    REPO,
    config_override,
    forced_jobs,
    planned_jobs,
    reference_run,
    rule_scripts,
    rules_of,
    stage_rules,
    training_run,
    workdir_paths,
)

pytestmark = [pytest.mark.dag, pytest.mark.slow]  # whole-workflow runs


@pytest.fixture(scope="module")
def done(tmp_path_factory):
    return reference_run(tmp_path_factory.getbasetemp())


def sessions_in(jobs: set[str], rule: str) -> int:
    return sum(j.startswith(f"{rule}[") for j in jobs)


def test_nothing_to_do_after_full_run(done):
    assert planned_jobs(done, "all") == set()
    # conversion forced: every later per-session job is planned again, for both sessions
    everything = forced_jobs(done, ["convert_session"], "all")
    per_session = rules_of(j for j in everything if "sub=" in j)
    assert {"convert_session", "mri_preprocess", "suvr"} <= per_session
    assert all(sessions_in(everything, rule) == 2 for rule in per_session)


# One per-session rule per stage, one aggregate, and harmonize_fit (each costs two dry runs).
EDITED_RULES = ["convert_session", "mri_preprocess", "qc_registration", "suvr", "harmonize_fit"]


def _edited_scripts() -> list:
    script_of = {rule: script for script, rules in rule_scripts(REPO).items() for rule in rules}
    return [script_of[r] for r in EDITED_RULES]


@pytest.mark.parametrize("script", _edited_scripts())
def test_editing_a_script_reruns_only_its_rules_jobs(done, script):
    """A newer script reruns every job of the rule(s) running it and what follows, nothing else."""
    rules = rule_scripts(done)[script]
    path = done / script
    st = path.stat()
    try:
        os.utime(path)  # edited now
        planned = planned_jobs(done, "all")
    finally:
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert planned == forced_jobs(done, rules, "all")
    assert set(rules) <= rules_of(planned)


def test_reference_region_change_reruns_suvr_and_what_follows_only(done, tmp_path):
    """A user reference mask instead of cerebellar GM: SUVR onwards, never conversion/registration."""
    mask = workdir_paths(done).pet_reference_mask
    custom = done / "custom_reference_mask.nii.gz"
    shutil.copy2(mask, custom)
    try:
        override = config_override(tmp_path / "pet.yaml", {"pet": {"reference_region": custom.name}})
        planned = planned_jobs(done, "all", *override)
    finally:
        custom.unlink()
    assert planned == forced_jobs(done, ["pet_reference", "suvr"], "all")
    assert sessions_in(planned, "suvr") == 2
    not_again = {*stage_rules("demo", "convert", "mri", "split"), "pet_motion", "pet_to_t1", "pet_to_template"}
    assert not rules_of(planned) & not_again


def test_named_reference_region_reruns_suvr_and_regional_tables_never_registration(done, tmp_path):
    override = config_override(tmp_path / "pet.yaml", {"pet": {"reference_region": "inferior_cerebellar_gm"}})
    planned = planned_jobs(done, "all", *override)
    assert planned == forced_jobs(done, ["pet_reference", "suvr"], "all")
    assert sessions_in(planned, "regional_suvr") == 2 and "regional_group" in rules_of(planned)
    not_again = {*stage_rules("demo", "convert", "mri", "split"), "pet_motion", "pet_to_t1", "pet_to_template"}
    assert not rules_of(planned) & not_again


def test_pvc_change_reruns_the_regional_tables_only(done, tmp_path):
    """pet.pvc (and its PSF settings) reach only the regional tables: not SUVR, not standardization."""
    override = config_override(tmp_path / "pvc.yaml", {"pet": {"pvc": "none"}})
    planned = planned_jobs(done, "all", *override)
    assert planned == forced_jobs(done, ["regional_suvr"], "all")
    assert sessions_in(planned, "regional_suvr") == 2
    assert rules_of(planned) == {"regional_suvr", "session_index", "regional_group", "regional_figure", "all"}
    fwhm = config_override(tmp_path / "fwhm.yaml", {"pet": {"pvc_resampling_fwhm_mm": 3.0}})
    assert planned_jobs(done, "all", *fwhm) == planned


def test_harmonization_setting_change_reruns_harmonization_only(done, tmp_path):
    override = config_override(tmp_path / "h.yaml", {"harmonization": {"robust_percentile": 2.0}})
    planned = planned_jobs(done, "all", *override)
    assert planned == forced_jobs(done, ["harmonize_fit"], "all")


def test_training_setting_reruns_training_and_what_follows_only(tmp_path_factory, tmp_path):
    """After a run through training (one small model): a new training seed, or the other 2D
    training slice set (demo: central -> paper), retrains only.

    (synthesize/evaluate, which follow training, are not in this run: test budget.)
    """
    trained = training_run(tmp_path_factory.getbasetemp())
    assert planned_jobs(trained, "all") == set()
    for name, change in [("seed", {"seed": 1}), ("slices", {"slice_set": "paper"})]:
        override = config_override(tmp_path / f"{name}.yaml", {"train": change})
        planned = planned_jobs(trained, "all", *override)
        assert planned == forced_jobs(trained, ["train_model"], "all") == {"train_model[model=cgan]", "all"}, name
        assert not rules_of(planned) & set(stage_rules(*PREPROCESSING_STAGES, "slices")), name
