"""DAG-building time of the real workflow for large cohorts (no images involved).

For each cohort size N this copies the workflow into a temporary working directory, fakes the
two checkpoints as done (conversion's ``pairs.tsv`` with N sessions and empty DICOM folders,
the split's ``splits.tsv``, with consistent mtimes), then times ``snakemake -n all``, which
builds the whole DAG for N sessions (every stage) and prints the plan. Only DAG building and
planning are measured; nothing runs.

    .venv/bin/python bench/dag.py                 # 100, 500, 2000 subjects, one session each
    .venv/bin/python bench/dag.py 1000 --visits 2 # data.sessions: all, 2 tau PET visits a subject
    .venv/bin/python bench/dag.py 100 --keep DIR  # keep the working directory for a look
    .venv/bin/python bench/dag.py 2000 --repeat 3 # best of 3 dry runs each (noisy machines)

For scale, the last columns time the same dry run of a minimal Snakefile of the same shape (a
checkpoint listing the sessions, a chain of empty per-session rules giving the same number of
jobs, one aggregate): what Snakemake itself needs for that many jobs, whatever the rules do.
Target (issue 15): within 1.3x of that floor at 2,000 sessions. CPU seconds (user+sys of the
child) are what a shared machine does not inflate.

``--script-floor`` adds a column: the same minimal workflow with rules of this project's kind
(``script:``, ``conda:``, ``log:``, ``threads``, ``resources``: what every rule here declares,
still 1 input and 1 output per job), separating what the rule kind costs Snakemake from what
our jobs' declared files (inputs, outputs) cost.
"""

from __future__ import annotations

import argparse
import re
import resource
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from slurm.runner import copy_workflow, env, snakemake_cmd  # noqa: E402

from mri2tau.config import resolve_config  # noqa: E402
from mri2tau.convert.select import EXCLUDED_COLUMNS, PAIR_COLUMNS  # noqa: E402
from mri2tau.data.split import stratified_split  # noqa: E402

DIAGNOSES = ("CN", "SMC", "EMCI", "LMCI", "AD")
MANUFACTURERS = ("Siemens", "GE", "Philips")
MAX_SETUP_ROUNDS = 5


def fake_checkpoints(workdir: Path, config: dict, n: int, visits: int = 1) -> None:
    """Write both checkpoints' outputs for ``n`` subjects with ``visits`` sessions each, newer
    than their inputs.

    select_series -> ``pairs.tsv`` (+ empty ``excluded.tsv``), with an empty DICOM folder per
    series; split -> ``splits.tsv`` from the pipeline's own stratified split. Paths follow
    workflow/rules/common.smk (PAIRS, EXCLUDED, SPLITS under ``results_dir``).
    """
    data = config["data"]
    dicom_root = workdir / data["dicom_root"]
    dicom_root.mkdir(parents=True, exist_ok=True)
    (workdir / data["clinical_csv"]).touch()
    rows = []
    for i, v in ((i, v) for i in range(n) for v in range(visits)):
        ptid, year, viscode = f"{i // 1000:03d}_S_{i % 1000 + 1000:04d}", 2020 + v, "bl" if v == 0 else f"m{12 * v}"
        t1_dir = dicom_root / ptid / "MPRAGE" / f"{year}-01-01" / f"I{2 * (i * visits + v) + 1}"
        pet_dir = dicom_root / ptid / "AV1451" / f"{year}-02-01" / f"I{2 * (i * visits + v) + 2}"
        for d in (t1_dir, pet_dir):
            d.mkdir(parents=True, exist_ok=True)
        dx = DIAGNOSES[i % len(DIAGNOSES)]
        rows.append({
            "sub": ptid.replace("_", ""), "ses": viscode, "ptid": ptid, "rid": i + 1000, "viscode": viscode,
            "t1_dir": str(t1_dir.relative_to(workdir)), "pet_dir": str(pet_dir.relative_to(workdir)),
            "t1_date": f"{year}-01-01", "pet_date": f"{year}-02-01", "gap_days": 31,
            "manufacturer": MANUFACTURERS[i % len(MANUFACTURERS)], "dx": dx,
            "dx_group": {"CN": "CN", "AD": "AD"}.get(dx, "MCI"),
            "pet_input": "raw", "pet_step": 0, "pet_frames": data["pet_n_frames"], "t1_kind": "original",
            "t1_series_uid": "", "pet_series_uid": "",
        })  # fmt: skip
    pairs = pd.DataFrame(rows).reindex(columns=PAIR_COLUMNS, fill_value="n/a")
    results = workdir / config["results_dir"]
    (results / "convert").mkdir(parents=True, exist_ok=True)
    time.sleep(0.01)  # outputs strictly newer than inputs
    pairs.to_csv(results / "convert" / "pairs.tsv", sep="\t", index=False)
    (results / "convert" / "excluded.tsv").write_text("\t".join(EXCLUDED_COLUMNS) + "\n")
    time.sleep(0.01)
    split = config["split"]
    splits = stratified_split(pairs, test_fraction=split["test_fraction"], seed=split["seed"],
                              stratify_by=split["stratify_by"])  # fmt: skip
    splits.to_csv(results / "splits.tsv", sep="\t", index=False)


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


def prepare(workdir: Path, n: int, visits: int = 1) -> int:
    """The workflow in ``workdir`` with ``n`` subjects of ``visits`` sessions each
    (``data.sessions: all`` when more than one), both checkpoints faked as done; jobs planned."""
    user = {"preset": "demo", "demo": {"subjects": n},
            "data": {"sessions": "first" if visits == 1 else "all"}}  # fmt: skip
    copy_workflow(workdir, user)
    fake_checkpoints(workdir, resolve_config(user), n, visits)
    for _ in range(MAX_SETUP_ROUNDS):  # inputs other stages need beyond the checkpoint
        res = dry_run(workdir)
        if res.returncode == 0 or not touch_missing_inputs(workdir, res.stdout):
            break
    if res.returncode != 0:
        raise SystemExit(f"dry run failed for n={n}:\n{res.stdout[-4000:]}")
    m = re.search(r"^total\s+(\d+)$", res.stdout, re.M)
    return int(m.group(1)) if m else 0


FLOOR_SNAKEFILE = """
import csv

checkpoint sessions:
    output: "sessions.tsv"
    shell: "false"

def all_sessions(pattern):
    with open(checkpoints.sessions.get().output[0]) as fh:
        return [pattern.format(s=row[0]) for row in csv.reader(fh)]

rule step0:
    output: "s/{s}/0"
    shell: "touch {output}"

for k in range(1, STEPS):
    rule:
        name: f"step{k}"
        input: f"s/{{s}}/{k - 1}"
        output: f"s/{{s}}/{k}"
        shell: "touch {output}"

rule all:
    input: lambda w: all_sessions(f"s/{{s}}/{STEPS - 1}")
    default_target: True
"""
# the floor's rules with this project's directives (script, conda env, log, threads, resources)
SCRIPT_DIRECTIVES = """log: {log}
conda: "env.yaml"
threads: 1
resources: mem_mb=1000, runtime=10
script: "step.py"
"""


def script_floor_snakefile() -> str:
    """FLOOR_SNAKEFILE with each step rule's ``shell:`` replaced by :data:`SCRIPT_DIRECTIVES`."""
    def directives(m: re.Match) -> str:
        log = '"logs/{s}/0.log"' if len(m.group(1)) == 4 else 'f"logs/{{s}}/{k}.log"'  # step0 / the loop
        return textwrap.indent(SCRIPT_DIRECTIVES.format(log=log), m.group(1)).rstrip("\n")
    return re.sub(r'^( +)shell: "touch \{output\}"$', directives, FLOOR_SNAKEFILE, flags=re.M)


def prepare_floor(workdir: Path, n: int, jobs: int, script: bool = False) -> None:
    """A minimal workflow in ``workdir`` with ``n`` sessions and ~``jobs`` jobs (``script``:
    rules with ``script:``, ``conda:``, ``log:`` etc., not ``shell:``)."""
    steps = max(1, round((jobs - 1) / n))
    snakefile = script_floor_snakefile() if script else FLOOR_SNAKEFILE
    (workdir / "Snakefile").write_text(f"STEPS = {steps}\n" + snakefile)
    (workdir / "step.py").write_text("")
    (workdir / "env.yaml").write_text("dependencies: [python]\n")
    (workdir / "sessions.tsv").write_text("".join(f"S{i:05d}\n" for i in range(n)))


def timed_dry_run(workdir: Path) -> tuple[float, float]:
    """Wall and CPU (user+sys) seconds of ``snakemake -n all`` in ``workdir``.

    CPU time is what a loaded machine does not inflate (wall = CPU on an idle one)."""
    cpu0, start = _children_cpu(), time.perf_counter()
    res = dry_run(workdir)
    wall, cpu = time.perf_counter() - start, _children_cpu() - cpu0
    if res.returncode != 0:
        raise SystemExit(f"dry run failed in {workdir}:\n{res.stdout[-3000:]}")
    return wall, cpu


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("sizes", nargs="*", type=int, default=[100, 500, 2000], help="subjects")
    ap.add_argument("--visits", type=int, default=1,
                    help="tau PET sessions per subject (> 1: data.sessions: all)")
    ap.add_argument("--keep", type=Path, help="build the working directories here and keep them")
    ap.add_argument("--repeat", type=int, default=1, help="dry runs per figure; the least is printed")
    ap.add_argument("--script-floor", action="store_true",
                    help="also time the floor with script/conda/log/resources rules (CPU s, ratio)")
    args = ap.parse_args(argv)
    print(f"{'subjects':>8}  {'sessions':>8}  {'jobs':>7}  {'snakemake -n wall / cpu (s)':>27}  "
          f"{'floor, same jobs: wall / cpu (s)':>32}  {'cpu ratio':>9}"
          + (f"  {'script floor cpu (s)':>20}  {'ratio':>5}" if args.script_floor else ""))
    for n in args.sizes:
        print(_row(n, args), flush=True)


def _row(n: int, args: argparse.Namespace) -> str:
    """One table line for ``n`` subjects: the workflow and its floors timed in turn,
    ``args.repeat`` times, so a slow spell of a shared machine hits all of them; least of each."""
    kinds = ["ours", "floor"] + (["script floor"] if args.script_floor else [])
    with tempfile.TemporaryDirectory(prefix=f"mri2tau-dag-{n}-") as tmp:
        dirs = {kind: (args.keep / f"n{n}" if args.keep and kind == "ours" else Path(tmp) / kind.replace(" ", "_"))
                for kind in kinds}  # fmt: skip
        for d in dirs.values():
            d.mkdir(parents=True, exist_ok=True)
        jobs = prepare(dirs["ours"], n, args.visits)
        for kind in kinds[1:]:
            prepare_floor(dirs[kind], n * args.visits, jobs, script=kind == "script floor")
        runs: dict[str, list[tuple[float, float]]] = {kind: [] for kind in kinds}
        for _ in range(args.repeat):
            for kind in kinds:
                runs[kind].append(timed_dry_run(dirs[kind]))
    (wall, cpu), (floor_wall, floor_cpu) = (tuple(map(min, zip(*runs[k]))) for k in kinds[:2])
    line = (f"{n:>8}  {n * args.visits:>8}  {jobs:>7}  {wall:>18.1f} / {cpu:>5.1f}  "
            f"{floor_wall:>23.1f} / {floor_cpu:>5.1f}  {cpu / floor_cpu:>9.2f}")
    if args.script_floor:
        script_cpu = min(c for _, c in runs["script floor"])
        line += f"  {script_cpu:>20.1f}  {cpu / script_cpu:>5.2f}"
    return line


if __name__ == "__main__":
    main()
