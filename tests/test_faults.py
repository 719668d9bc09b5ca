"""Fault tolerance: a killed run resumes cleanly; one corrupt subject does not stop the others.

Both start from a copy of the finished small demo run (tests/slurm/runner.py:reference_run)
with the outputs of a per-session PET rule and everything downstream removed (as if that part
had not run yet: cheap), then break that run.
"""

from __future__ import annotations

import base64
import csv
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from slurm.runner import (
    compare_trees,
    copy_run,
    env,
    forced_jobs,
    planned_outputs,
    planned_jobs,
    reference_run,
    run,
    snakemake_cmd,
)

pytestmark = pytest.mark.slow

LOCAL = ("--profile", "profiles/local")
FIRST_PET_RULE = "pet_motion"  # one job per session, first of the PET stage


@pytest.fixture(scope="module")
def done(tmp_path_factory):
    return reference_run(tmp_path_factory.getbasetemp())


def split_rows(workdir: Path) -> list[dict[str, str]]:
    with open(workdir / "results" / "splits.tsv", newline="") as fh:
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
    wd, _ = without_outputs_from(done, tmp_path / "killed", "suvr")
    cmd = snakemake_cmd("all", "--cores", "1")
    proc = subprocess.Popen(cmd, cwd=wd, env=env(), start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.monotonic() + 300
    try:
        while not (incomplete := incomplete_outputs(wd)) and time.monotonic() < deadline:
            assert proc.poll() is None, "snakemake finished before it could be killed"
            time.sleep(0.02)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # snakemake and the job it runs, as on a node loss
        proc.wait()
    killed_at = time.time()
    assert incomplete, "no job started within 300 s"

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
    assert planned_jobs(wd, "all") == of_bad | {"all"}  # everything else finished
    # the summary names the failed rule and session, and only that one
    summary = res.stdout[res.stdout.index("Error in rule") :]
    assert f"Error in rule {FIRST_PET_RULE}" in summary
    assert f"sub={sub}" in summary and summary.count("Error in rule") == 1
    # no partial output of the failed job survives
    pet_out = wd / "results" / "derivatives" / "mri2tau" / f"sub-{sub}" / f"ses-{ses}" / "pet"
    prefix = f"sub-{sub}_ses-{ses}_trc-18FAV1451_desc-"
    assert not (pet_out / f"{prefix}mean_pet.nii.gz").exists()
    assert not (pet_out / f"{prefix}motion_timeseries.tsv").exists()
    assert not [p.name for p in pet_out.iterdir() if p.name.startswith(".")]  # no temporary files


@pytest.mark.xfail(strict=True, reason="pet_motion lets nibabel's error through: the log says 'Compressed "
                   "file ended ...' without the file or a fix (SPEC section 7: PipelineInputError)")  # fmt: skip
def test_failed_subject_log_names_subject_and_file(corrupt_run):
    wd, _, bad, raw, _ = corrupt_run
    log = (wd / "logs" / FIRST_PET_RULE / f"sub-{bad['sub']}_ses-{bad['ses']}.log").read_text()
    assert bad["sub"] in log and raw.name in log, log


@pytest.mark.skip(reason="needs a run through the train stage (rule train_model) within the test budget; "
                  "the training loop's own resume is tested in the train stage's tests")  # fmt: skip
def test_training_killed_mid_epoch_resumes_from_checkpoint():
    pass
