"""The workflow on a real one-node SLURM cluster with ``--profile profiles/slurm``.

The cluster (munged + slurmctld + slurmd from Debian packages) is started by a session fixture
and stopped after, by PID; without root or apt the tests skip and say why.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from slurm.cluster import PARTITION, SlurmUnavailable, running
from slurm.runner import (
    PREPROCESSING_STAGES,
    SMALL_DEMO,
    compare_trees,
    copy_workflow,
    env,
    output_files,
    planned_jobs,
    reference_run,
    run,
)

pytestmark = [pytest.mark.dag, pytest.mark.slow]  # whole-workflow runs

# The plugin checks job states this many seconds after submitting, then 10 s later each time
# until a job has finished. A demo job takes ~5 s, so most finish before the first check.
# squeue serves as long as MinJobAge (600 s on the test cluster) >= 3 x this.
STATUS_CHECK_S = "8"


@pytest.fixture(scope="module")
def slurm_cluster():
    try:
        with running() as cluster:
            yield cluster
    except SlurmUnavailable as exc:
        pytest.skip(f"no SLURM for this test: {exc}")


def slurm_env(cluster) -> dict[str, str]:
    return env(cluster.env())


def slurm_run(workdir, cluster, *target: str, timeout: float = 600) -> subprocess.CompletedProcess:
    """``snakemake TARGET --profile profiles/slurm`` (target first: later options take lists)."""
    return run(workdir, *target, "--profile", "profiles/slurm",
               "--slurm-init-seconds-before-status-checks", STATUS_CHECK_S,
               environ=slurm_env(cluster), timeout=timeout)  # fmt: skip


def completed_jobs(cluster) -> list[str]:
    res = subprocess.run(["squeue", "--states=all", "-h", "-o", "%i|%T|%P"], env=cluster.env(),
                         capture_output=True, text=True, check=True)  # fmt: skip
    return [line for line in res.stdout.splitlines() if "|COMPLETED|" in line]


def test_demo_dag_on_slurm_equals_local_run(slurm_cluster, tmp_path, tmp_path_factory):
    """Demo cohort (2 sessions) through conversion and preprocessing: same outputs as locally.

    Every job ran as its own SLURM job on the profile's partition, and its SLURM log is kept.
    """
    local = reference_run(tmp_path_factory.getbasetemp())
    wd = copy_workflow(tmp_path / "slurm-run", SMALL_DEMO, PREPROCESSING_STAGES)
    before = len(completed_jobs(slurm_cluster))
    res = slurm_run(wd, slurm_cluster, "all", timeout=900)

    finished = [r for r in re.findall(r"Finished jobid: \d+ \(Rule: (\w+)\)", res.stdout) if r != "all"]
    submitted = re.findall(r"submitted with SLURM jobid (\d+) \(log: (\S+)\)", res.stdout)
    assert len(submitted) == len(finished) == len(completed_jobs(slurm_cluster)) - before > 10
    assert all(Path(log).is_file() for _, log in submitted)
    assert all(line.endswith(f"|{PARTITION}") for line in completed_jobs(slurm_cluster))
    assert output_files(wd), "the SLURM run wrote nothing under results/"
    assert compare_trees(local, wd) == []
    assert planned_jobs(wd, "all") == set()
