"""A private one-node SLURM cluster (munged + slurmctld + slurmd) for tests, without systemd.

Everything lives under one directory (config, state, spool, logs, munge key and socket) and
uses free TCP ports, so it cannot disturb a SLURM that the machine already runs. Only the
daemons started here are stopped, by PID. Client commands (sbatch, squeue, sinfo) find this
cluster through ``SLURM_CONF`` (see :meth:`SlurmCluster.env`).

Facts this encodes (Debian bookworm, slurm-wlm 22.05):
- no slurmdbd, so ``AccountingStorageType=accounting_storage/none``; ``sacct`` cannot answer
  and Snakemake's slurm executor must poll with ``squeue``, which sees a finished job only for
  ``MinJobAge`` seconds (600 here, >= 3 x the executor's status-check delay);
- ``ProctrackType=proctrack/linuxproc`` and ``TaskPlugin=task/none``: no cgroups needed;
- ``RealMemory`` <= 90 % of MemTotal, or slurmd registers the node as invalid.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

PACKAGES = ("slurmctld", "slurmd", "slurm-client", "munge")
DAEMONS = ("munged", "slurmctld", "slurmd")
PARTITION = "main"


class SlurmUnavailable(RuntimeError):
    """SLURM cannot be provided here (not root, no apt, install failed); the message says why."""


def _run(cmd: list[str], timeout: float = 300, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kwargs)


def ensure_packages() -> None:
    """Install the Debian SLURM + munge packages if a daemon binary is missing.

    Raises :class:`SlurmUnavailable` when not root, without apt-get, or when apt fails.
    """
    if all(shutil.which(b, path="/usr/sbin:/usr/bin:/sbin:/bin") for b in (*DAEMONS, "sbatch")):
        return
    if os.geteuid() != 0:
        raise SlurmUnavailable("SLURM is not installed and installing it needs root (apt-get)")
    if not shutil.which("apt-get"):
        raise SlurmUnavailable("SLURM is not installed and apt-get is not available")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", *PACKAGES]):
        try:
            res = _run(cmd, env=env, timeout=600)
        except subprocess.TimeoutExpired as exc:
            raise SlurmUnavailable(f"{' '.join(cmd)} timed out") from exc
        if res.returncode != 0:
            raise SlurmUnavailable(f"{' '.join(cmd)} failed: {res.stderr.strip()[-500:]}")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _mem_total_mb() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) // 1024
    raise RuntimeError("MemTotal missing from /proc/meminfo")


@dataclass
class SlurmCluster:
    """A one-node cluster rooted at ``root``; ``start()`` it, ``stop()`` it (or use :func:`running`)."""

    root: Path
    cpus: int = field(default_factory=lambda: os.cpu_count() or 1)
    real_memory_mb: int = field(default_factory=lambda: int(0.9 * _mem_total_mb()))
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)

    @property
    def conf(self) -> Path:
        return self.root / "etc" / "slurm.conf"

    @property
    def munge_socket(self) -> Path:
        return self.root / "munge" / "munge.socket"

    @property
    def node(self) -> str:
        return socket.gethostname().split(".")[0]

    @property
    def bin_dir(self) -> Path:
        return self.root / "bin"

    def env(self) -> dict[str, str]:
        """Environment in which sbatch/srun/squeue/sinfo talk to this cluster.

        ``SLURM_CONF`` names the config; the jobstep executor strips ``SLURM_*`` variables
        before its nested ``srun``, so ``bin_dir`` (first on PATH) also holds an ``srun``
        wrapper that sets it again.
        """
        path = f"{self.bin_dir}:{os.environ.get('PATH', '')}"
        return {**os.environ, "SLURM_CONF": str(self.conf), "PATH": path}

    def _write_client_wrappers(self) -> None:
        self.bin_dir.mkdir(parents=True, exist_ok=True)
        real = shutil.which("srun", path="/usr/bin:/usr/local/bin:/bin")
        wrapper = self.bin_dir / "srun"
        wrapper.write_text(f'#!/bin/sh\nSLURM_CONF="{self.conf}" exec {real} "$@"\n')
        wrapper.chmod(0o755)

    # ------------------------------------------------------------ setup
    def _write_munge(self) -> list[str]:
        munge = pwd.getpwnam("munge")
        mdir = self.root / "munge"
        mdir.mkdir(parents=True)
        key = mdir / "munge.key"
        key.write_bytes(os.urandom(1024))
        key.chmod(0o400)
        for p in (mdir, key):
            os.chown(p, munge.pw_uid, munge.pw_gid)
        mdir.chmod(0o700)
        return [
            "munged", "--foreground", "--force",
            f"--socket={self.munge_socket}", f"--key-file={key}",
            f"--pid-file={mdir / 'munged.pid'}", f"--log-file={mdir / 'munged.log'}",
            f"--seed-file={mdir / 'munged.seed'}",
        ]  # fmt: skip

    def _write_conf(self) -> None:
        for sub in ("etc", "state", "spool", "log"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        r = self.root
        self.conf.write_text(
            "\n".join(
                [
                    "ClusterName=mri2tau-test",
                    f"SlurmctldHost={self.node}(127.0.0.1)",
                    f"SlurmctldPort={_free_port()}",
                    f"SlurmdPort={_free_port()}",
                    "SlurmUser=root",
                    "SlurmdUser=root",
                    "AuthType=auth/munge",
                    "CredType=cred/munge",
                    f"AuthInfo=socket={self.munge_socket}",
                    f"StateSaveLocation={r / 'state'}",
                    f"SlurmdSpoolDir={r / 'spool'}",
                    f"SlurmctldPidFile={r / 'slurmctld.pid'}",
                    f"SlurmdPidFile={r / 'slurmd.pid'}",
                    f"SlurmctldLogFile={r / 'log' / 'slurmctld.log'}",
                    f"SlurmdLogFile={r / 'log' / 'slurmd.log'}",
                    "AccountingStorageType=accounting_storage/none",
                    "JobAcctGatherType=jobacct_gather/none",
                    "JobCompType=jobcomp/none",
                    "ProctrackType=proctrack/linuxproc",
                    "TaskPlugin=task/none",
                    "MpiDefault=none",
                    "SchedulerType=sched/backfill",
                    "SelectType=select/cons_tres",
                    "SelectTypeParameters=CR_Core_Memory",
                    "ReturnToService=2",
                    "MinJobAge=600",
                    "SlurmctldDebug=info",
                    "SlurmdDebug=info",
                    f"NodeName={self.node} NodeAddr=127.0.0.1 CPUs={self.cpus} "
                    f"RealMemory={self.real_memory_mb} State=UNKNOWN",
                    f"PartitionName={PARTITION} Nodes={self.node} Default=YES "
                    "MaxTime=INFINITE State=UP",
                    "",
                ]
            )
        )

    # ------------------------------------------------------------ lifecycle
    def start(self, timeout_s: float = 60) -> None:
        """Start munged, slurmctld and slurmd in the foreground (our children); wait for idle."""
        munged = self._write_munge()
        self._write_conf()
        self._write_client_wrappers()
        logs = self.root / "log"
        self._spawn("munged", munged, logs, user="munge")
        self._wait(lambda: self.munge_socket.exists(), 15, "munged socket")
        self._spawn("slurmctld", ["slurmctld", "-D", "-c", "-f", str(self.conf)], logs)
        self._wait(lambda: _run(["scontrol", "ping"], env=self.env()).returncode == 0, 30,
                   "slurmctld to answer 'scontrol ping'")  # fmt: skip
        self._spawn("slurmd", ["slurmd", "-D", "-f", str(self.conf)], logs)
        self._wait(lambda: self.node_state() == "idle", timeout_s, "the node to be idle in sinfo")

    def _spawn(self, name: str, cmd: list[str], logs: Path, user: str | None = None) -> None:
        ids = {"user": user, "group": user, "extra_groups": []} if user else {}
        with open(logs / f"{name}.stdout", "w") as out:
            self.procs[name] = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT,
                                                env=self.env(), start_new_session=True, **ids)  # fmt: skip

    def _wait(self, ok, timeout_s: float, what: str) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for name, proc in self.procs.items():
                if proc.poll() is not None:
                    raise RuntimeError(f"{name} exited with {proc.returncode}:\n{self.logs_tail()}")
            if ok():
                return
            time.sleep(0.5)
        raise RuntimeError(f"timed out after {timeout_s}s waiting for {what}:\n{self.logs_tail()}")

    def node_state(self) -> str:
        res = _run(["sinfo", "-h", "-N", "-o", "%T", "-n", self.node], env=self.env(), timeout=10)
        return res.stdout.strip().rstrip("*~#$@+-")

    def logs_tail(self, n: int = 20) -> str:
        out = []
        for path in sorted((self.root / "log").glob("*")) + [self.root / "munge" / "munged.log"]:
            if path.exists():
                lines = path.read_text(errors="replace").splitlines()[-n:]
                out.append(f"--- {path.name}\n" + "\n".join(lines))
        return "\n".join(out)

    def stop(self) -> None:
        """Cancel this cluster's jobs, then stop the daemons started here, by PID, in reverse."""
        if "slurmctld" in self.procs and self.procs["slurmctld"].poll() is None:
            _run(["scancel", "--full", "--user", pwd.getpwuid(os.geteuid()).pw_name],
                 env=self.env(), timeout=30)  # fmt: skip
        for name in reversed(list(self.procs)):
            proc = self.procs[name]
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=10)
        self.procs.clear()


@contextmanager
def running() -> Iterator[SlurmCluster]:
    """Install if needed, start a cluster in a fresh /tmp directory, yield it, always stop it.

    The directory is created here (mode 0755: munged runs as user munge and must reach its
    socket and key, so it cannot live under pytest's private 0700 tmp dirs) and removed after.
    """
    if os.geteuid() != 0:
        raise SlurmUnavailable("starting munged (as user munge), slurmctld and slurmd needs root")
    ensure_packages()
    root = Path(tempfile.mkdtemp(prefix="mri2tau-slurm-"))
    root.chmod(0o755)
    cluster = SlurmCluster(root)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)
