"""Fault tolerance: a killed run resumes cleanly; one corrupt subject does not stop the others;
killed training resumes from its checkpoint.

The first two start from a copy of the finished small demo run (tests/slurm/runner.py:
reference_run) with the outputs of a per-session PET rule and everything downstream removed
(as if that part had not run yet: cheap), then break that run. Training is killed while the
shared training run is built (tests/slurm/runner.py:training_run).
"""

from __future__ import annotations

import base64
import csv
import re
import time
from pathlib import Path

import pytest

from slurm.runner import (
    TRAINING_EPOCHS,
    compare_trees,
    copy_run,
    forced_jobs,
    kill_when,
    planned_jobs,
    planned_outputs,
    reference_run,
    run,
    training_run,
    workdir_paths,
)

from mri2tau.paths import log_path

pytestmark = [pytest.mark.dag, pytest.mark.slow]  # whole-workflow runs

LOCAL = ("--profile", "profiles/local")
FIRST_PET_RULE = "pet_motion"  # one job per session, first of the PET stage


@pytest.fixture(scope="module")
def done(tmp_path_factory):
    return reference_run(tmp_path_factory.getbasetemp())


def split_rows(workdir: Path) -> list[dict[str, str]]:
    with open(workdir_paths(workdir).splits, newline="") as fh:
        return list(csv.DictReader(fh, delimiter="\t"))


def incomplete_outputs(workdir: Path) -> set[str]:
    """Outputs Snakemake has marked incomplete (``.snakemake/incomplete/<base64 path>``)."""
    marks = workdir / ".snakemake" / "incomplete"
    names = [p.name for p in marks.iterdir()] if marks.is_dir() else []
    return {base64.b64decode(n).decode() for n in names if n != "migration_underway"}


def without_outputs_from(done: Path, dst: Path, rule: str) -> tuple[Path, set[str]]:
    """A copy of ``done`` without the outputs of ``rule``'s jobs and all downstream; returns those jobs."""
    wd = copy_run(done, dst)
    jobs = forced_jobs(wd, [rule], "all")
    for f in planned_outputs(wd, "all", "--forcerun", rule):
        (wd / f).unlink(missing_ok=True)
    assert planned_jobs(wd, "all") == jobs
    return wd, jobs


def test_sigkill_mid_run_then_rerun_incomplete_redoes_the_outputs(done, tmp_path):
    wd, _ = without_outputs_from(done, tmp_path / "killed", "pet_qc")
    incomplete: set[str] = set()

    def a_job_is_running() -> bool:
        incomplete.update(incomplete_outputs(wd))
        return bool(incomplete)

    kill_when(wd, a_job_is_running, "all", "--cores", "1")
    killed_at = time.time()

    # the killed run left its lock: Snakemake refuses until --unlock (docs/cluster.md)
    locked = run(wd, "all", *LOCAL, check=False)
    assert locked.returncode != 0 and "--unlock" in locked.stdout
    run(wd, "--unlock")
    run(wd, "all", *LOCAL)  # the profile sets rerun-incomplete
    for f in incomplete:
        assert (wd / f).stat().st_mtime > killed_at, f"{f} was not redone"
    assert not incomplete_outputs(wd)
    assert planned_jobs(wd, "all") == set()
    assert compare_trees(done, wd) == []  # same results; no temporary leftovers under results/


@pytest.fixture(scope="module")
def corrupt_run(done, tmp_path_factory):
    """A keep-going run whose test-split session has a truncated raw PET (the others are fine)."""
    wd, pet_jobs = without_outputs_from(done, tmp_path_factory.mktemp("corrupt") / "wd", FIRST_PET_RULE)
    bad = next(r for r in split_rows(wd) if r["split"] == "test")
    raw = next((wd / "results" / "bids" / f"sub-{bad['sub']}" / f"ses-{bad['ses']}" / "pet").glob("*_pet.nii.gz"))
    raw.write_bytes(raw.read_bytes()[:400])  # truncated download
    res = run(wd, "all", *LOCAL, check=False)
    return wd, pet_jobs, bad, raw, res


def test_keep_going_with_one_corrupt_subject_finishes_the_others(corrupt_run):
    wd, pet_jobs, bad, _, res = corrupt_run
    sub, ses = bad["sub"], bad["ses"]
    assert res.returncode != 0
    of_bad = {j for j in pet_jobs if f"sub={sub}" in j}
    assert of_bad and len(of_bad) < len(pet_jobs) - 1
    # everything else finished: only the test split's PET indexes (and the cohort's regional tables
    # built on them) wait for the failed test session (harmonize_fit needs the training split only,
    # so standardization ran for everyone else)
    waiting = {f"session_index[split=test,stage={stage}]" for stage in ("suvr", "suvrstd", "regional")}
    waiting |= {"regional_group", "regional_figure"}
    assert planned_jobs(wd, "all") == of_bad | waiting | {"all"}
    # the summary names the failed rule and session, and only that one
    summary = res.stdout[res.stdout.index("Error in rule") :]
    assert f"Error in rule {FIRST_PET_RULE}" in summary
    assert log_path(FIRST_PET_RULE).format(sub=sub, ses=ses) in summary and summary.count("Error in rule") == 1
    # no partial output of the failed job survives
    paths = workdir_paths(wd)
    mean, motion = (Path(p.format(sub=sub, ses=ses)) for p in (paths.pet_mean_native, paths.pet_motion))
    assert not mean.exists() and not motion.exists()
    assert not [p.name for p in mean.parent.glob(".*")]  # no temporary files


def test_failed_subject_log_names_subject_and_file(corrupt_run):
    wd, _, bad, raw, _ = corrupt_run
    log = (wd / "logs" / FIRST_PET_RULE / f"sub-{bad['sub']}_ses-{bad['ses']}.log").read_text()
    assert bad["sub"] in log and raw.name in log, log


def test_training_killed_mid_run_resumes_from_its_checkpoint(tmp_path_factory):
    """Snakemake was SIGKILLed once the first last.pt existed (tests/slurm/runner.py:training_run);
    the rerun resumed from that checkpoint: every epoch trained exactly once."""
    wd = training_run(tmp_path_factory.getbasetemp())
    log = (wd / "logs" / "train_model" / "cgan.log").read_text()
    resumed = re.search(r"resuming after epoch (\d+)", log)
    assert resumed and 1 <= int(resumed.group(1)) < TRAINING_EPOCHS, log
    with open(wd / "results" / "models" / "cgan" / "metrics.csv", newline="") as fh:
        epochs = [int(r["epoch"]) for r in csv.DictReader(fh)]
    assert epochs == list(range(1, TRAINING_EPOCHS + 1))  # none lost, none repeated
    assert (wd / "results" / "models" / "cgan" / "model.pt").is_file()
    assert planned_jobs(wd, "all") == set()
