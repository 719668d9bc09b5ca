"""The workflow on a real one-node SLURM cluster with ``--profile profiles/slurm``.

The cluster (munged + slurmctld + slurmd from Debian packages) is started by a session fixture
and stopped after, by PID; without root or apt the tests skip and say why.
"""

from __future__ import annotations

import subprocess

import pytest

from slurm.cluster import PARTITION, SlurmUnavailable, running
from slurm.runner import (
    compare_trees,
    copy_workflow,
    env,
    output_files,
    preprocessing_target,
    reference_run,
    run,
)

pytestmark = pytest.mark.slow

# The plugin's first status check comes this many seconds after a submission; squeue is then
# used as long as MinJobAge (600 s on the test cluster) >= 3 x this.
STATUS_CHECK_S = "2"

TINY_SNAKEFILE = """
rule all:
    input: expand("out/{s}.txt", s=["01", "02"])

rule step:
    output: "out/{s}.txt"
    threads: 1
    resources: mem_mb=100, runtime=5
    shell: "echo $SLURM_JOB_ID $SLURM_JOB_PARTITION > {output}"
"""


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


def test_tiny_workflow_runs_as_slurm_jobs(slurm_cluster, tmp_path):
    """Each job ran inside a SLURM allocation on the profile's partition; logs kept per rule."""
    wd = copy_workflow(tmp_path / "wd", {})
    (wd / "Snakefile").write_text(TINY_SNAKEFILE)
    before = len(completed_jobs(slurm_cluster))
    slurm_run(wd, slurm_cluster, "all")
    for s in ("01", "02"):
        job_id, partition = (wd / "out" / f"{s}.txt").read_text().split()
        assert job_id.isdigit() and partition == PARTITION
        assert (wd / "logs" / "slurm" / "rule_step" / s / f"{job_id}.log").exists()
    assert len(completed_jobs(slurm_cluster)) == before + 2


def test_demo_dag_on_slurm_equals_local_run(slurm_cluster, tmp_path, tmp_path_factory):
    """Demo cohort (2 subjects) through conversion and preprocessing: same outputs as locally."""
    local = reference_run(tmp_path_factory.getbasetemp())
    wd = copy_workflow(tmp_path / "slurm-run", {})
    (wd / "config.yaml").write_text((local / "config.yaml").read_text())
    res = slurm_run(wd, slurm_cluster, *preprocessing_target(), timeout=900)
    assert "submitted with SLURM jobid" in res.stdout
    assert output_files(wd), "the SLURM run wrote nothing under results/"
    assert compare_trees(local, wd) == []
    assert run(wd, *preprocessing_target(), "-n", environ=slurm_env(slurm_cluster)).stdout.count(
        "Nothing to be done"
    ) == 1
