"""DAG-building time of the real workflow for large cohorts (no images involved).

For each cohort size N this copies the workflow into a temporary working directory, fakes the
conversion checkpoint as done (a ``pairs.tsv`` with N sessions, empty DICOM folders, and the
checkpoint's own inputs/outputs with consistent mtimes), then times ``snakemake -n all``,
which builds the whole DAG for N sessions and prints the plan. Only DAG building and planning
are measured; nothing runs.

    .venv/bin/python bench/dag.py                 # 100, 500, 2000 sessions
    .venv/bin/python bench/dag.py 100 --keep DIR  # keep the working directory for a look

Target: < 10 s for 2,000 sessions.
"""

from __future__ import annotations

import argparse
import csv
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from slurm.runner import copy_workflow, env, snakemake_cmd  # noqa: E402

from mri2tau.config import resolve_config  # noqa: E402

DIAGNOSES = ("CN", "SMC", "EMCI", "LMCI", "AD")
MANUFACTURERS = ("Siemens", "GE", "Philips")
MAX_SETUP_ROUNDS = 5


def fake_pairs(workdir: Path, config: dict, n: int) -> None:
    """Write the select_series checkpoint's outputs for ``n`` sessions, newer than its inputs.

    Paths follow workflow/rules/common.smk (PAIRS, EXCLUDED under ``results_dir``) and the
    checkpoint's inputs (``data.dicom_root``, ``data.clinical_csv``).
    """
    data = config["data"]
    dicom_root = workdir / data["dicom_root"]
    dicom_root.mkdir(parents=True, exist_ok=True)
    (workdir / data["clinical_csv"]).touch()
    rows = []
    for i in range(n):
        ptid = f"{i // 1000:03d}_S_{i % 1000 + 1000:04d}"
        t1_dir = dicom_root / ptid / "MPRAGE" / "2020-01-01" / f"I{2 * i + 1}"
        pet_dir = dicom_root / ptid / "AV1451" / "2020-02-01" / f"I{2 * i + 2}"
        for d in (t1_dir, pet_dir):
            d.mkdir(parents=True, exist_ok=True)
        rows.append({
            "sub": ptid.replace("_", ""), "ses": "bl", "ptid": ptid, "viscode": "bl",
            "diagnosis": DIAGNOSES[i % len(DIAGNOSES)], "manufacturer": MANUFACTURERS[i % len(MANUFACTURERS)],
            "t1_dir": str(t1_dir.relative_to(workdir)), "pet_dir": str(pet_dir.relative_to(workdir)),
            "mri_date": "2020-01-01", "pet_date": "2020-02-01", "days_apart": 31,
        })  # fmt: skip
    convert = workdir / config["results_dir"] / "convert"
    convert.mkdir(parents=True, exist_ok=True)
    time.sleep(0.01)  # outputs strictly newer than inputs
    with open(convert / "pairs.tsv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]), delimiter="\t")
        writer.writeheader()
        writer.writerows(rows)
    (convert / "excluded.tsv").write_text("ptid\tseries\treason\n")


def dry_run(workdir: Path) -> subprocess.CompletedProcess:
    return subprocess.run(snakemake_cmd("-n", "all"), cwd=workdir, env=env(), text=True,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT)  # fmt: skip


def touch_missing_inputs(workdir: Path, output: str) -> bool:
    """Create the files a MissingInputException lists (empty); False if there were none."""
    paths = []
    for block in re.findall(r"affected files:\n((?:[ \t]+\S.*\n?)+)", output):
        paths += [line.strip() for line in block.splitlines()]
    for p in paths:
        path = workdir / p
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()
    return bool(paths)


def bench(n: int, keep: Path | None = None) -> tuple[float, int]:
    """Seconds for ``snakemake -n all`` with ``n`` sessions, and the number of jobs planned."""
    with tempfile.TemporaryDirectory(prefix=f"mri2tau-dag-{n}-") as tmp:
        workdir = keep / f"n{n}" if keep else Path(tmp)
        user = {"preset": "demo", "demo": {"subjects": n}}
        copy_workflow(workdir, user)
        fake_pairs(workdir, resolve_config(user), n)
        for _ in range(MAX_SETUP_ROUNDS):  # inputs other stages need beyond the checkpoint
            res = dry_run(workdir)
            if res.returncode == 0 or not touch_missing_inputs(workdir, res.stdout):
                break
        if res.returncode != 0:
            raise SystemExit(f"dry run failed for n={n}:\n{res.stdout[-4000:]}")
        start = time.perf_counter()
        res = dry_run(workdir)
        seconds = time.perf_counter() - start
        m = re.search(r"^total\s+(\d+)$", res.stdout, re.M)
        return seconds, int(m.group(1)) if m else 0


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("sizes", nargs="*", type=int, default=[100, 500, 2000])
    ap.add_argument("--keep", type=Path, help="build the working directories here and keep them")
    args = ap.parse_args(argv)
    print(f"{'sessions':>8}  {'jobs':>7}  {'snakemake -n (s)':>16}")
    for n in args.sizes:
        seconds, jobs = bench(n, args.keep)
        print(f"{n:>8}  {jobs:>7}  {seconds:>16.1f}", flush=True)


if __name__ == "__main__":
    main()
