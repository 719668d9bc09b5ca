"""Run the project's Snakemake workflow in a throw-away working directory and read its plans.

A working directory gets its own copy of the workflow code (``Snakefile``, ``workflow/``,
``envs/``, ``profiles/``) so a test may edit a script or the config there without touching the
repository, plus a ``config.yaml`` written from a dict. The copy may include only the first
stages (``stages=``): its ``all`` then builds exactly what those stages add to the final
targets, e.g. the DAG through conversion and preprocessing. (``--until``/``--omit-from``
cannot express that: with the conversion checkpoint they plan nothing after it.) Jobs are named ``rule[key=value,...]``
(wildcards sorted) as parsed from a dry run's plan, so tests can assert exact job sets.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import yaml

from mri2tau.config import resolve_config
from mri2tau.paths import RunPaths

REPO = Path(__file__).resolve().parents[2]
WORKFLOW_PATHS = ("Snakefile", "workflow", "envs", "profiles")
RULE_FILES = REPO / "workflow" / "rules"

# The demo DAG through conversion and preprocessing, small: 2 subjects, coarse voxels.
# 3 generated subjects: the generator gives one no MRI within 100 days of its PET -> 2 sessions,
# split 1 train / 1 test (so a failing test subject blocks no shared job); the test subject's
# manufacturer then has no training subject, so harmonization passes it through unchanged.
SMALL_DEMO = {
    "preset": "demo",
    "demo": {"subjects": 3, "seed": 0, "voxel_mm": 4.0},
    "template": {"resolution_mm": 4.0},
    "split": {"test_fraction": 0.5},
    "harmonization": {"on_unknown_manufacturer": "identity"},
}


_INCLUDE = re.compile(r'^include: "workflow/rules/(\w+)\.smk"\s*$')


def all_stages() -> list[str]:
    """Stage names in the order the Snakefile includes them (``common`` first)."""
    lines = (REPO / "Snakefile").read_text().splitlines()
    return [m.group(1) for line in lines if (m := _INCLUDE.match(line))]


def stages_through(last: str) -> list[str]:
    """The stages up to and including ``last`` (Snakefile order)."""
    stages = all_stages()
    return stages[: stages.index(last) + 1]


def copy_workflow(workdir: Path, config: dict[str, Any], stages: Iterable[str] | None = None) -> Path:
    """Copy the workflow code into ``workdir`` and write ``config`` as its ``config.yaml``.

    With ``stages``, the copied Snakefile includes only those stage files (and ``common``).
    An existing copy is overwritten (file times are the repository's).
    """
    workdir.mkdir(parents=True, exist_ok=True)
    for name in WORKFLOW_PATHS:
        src = REPO / name
        if src.is_dir():
            shutil.copytree(src, workdir / name, ignore=shutil.ignore_patterns("__pycache__"),
                            dirs_exist_ok=True)  # fmt: skip
        elif src.exists():
            shutil.copy2(src, workdir / name)
    if stages is not None:
        keep = {"common", *stages}
        lines = (workdir / "Snakefile").read_text().splitlines(keepends=True)
        kept = [ln for ln in lines if not (m := _INCLUDE.match(ln)) or m.group(1) in keep]
        (workdir / "Snakefile").write_text("".join(kept))
    (workdir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return workdir


def workdir_paths(workdir: Path) -> RunPaths:
    """The output paths (:class:`mri2tau.paths.RunPaths`) of the workflow copy in ``workdir``,
    from its ``config.yaml`` (results folder, template), as absolute paths."""
    config = resolve_config(yaml.safe_load((workdir / "config.yaml").read_text()))
    return RunPaths(str(workdir / config["results_dir"]), config["template"]["name"])


def env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """Environment with this interpreter's bin dir (snakemake, dcm2niix) first on PATH."""
    bin_dir = str(Path(sys.executable).parent)
    base = {**os.environ, **(extra or {})}
    base["PATH"] = f"{bin_dir}:{base.get('PATH', '')}"
    return base


def snakemake_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "snakemake", *args]


def run(workdir: Path, *args: str, timeout: float = 600, environ: dict[str, str] | None = None,
        check: bool = True) -> subprocess.CompletedProcess:  # fmt: skip
    """Run ``snakemake ARGS`` in ``workdir``; stdout+stderr together in ``.stdout``.

    With ``check`` a non-zero exit raises AssertionError quoting the output's tail.
    """
    res = subprocess.run(snakemake_cmd(*args), cwd=workdir, env=environ or env(), timeout=timeout,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # fmt: skip
    if check and res.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} exited {res.returncode}:\n{res.stdout[-6000:]}")
    return res


# ---------------------------------------------------------------- job names
def job_name(rule: str, wildcards: dict[str, str]) -> str:
    """``rule[k1=v1,k2=v2]`` with keys sorted (``rule`` alone without wildcards)."""
    if not wildcards:
        return rule
    return f"{rule}[{','.join(f'{k}={wildcards[k]}' for k in sorted(wildcards))}]"


_JOB_HEAD = re.compile(r"^(?:local)?(?:rule|checkpoint) (\w+):$")
_STATS_ROW = re.compile(r"^(\w+)\s+(\d+)$")


def parse_dry_run(text: str) -> Counter[str]:
    """Jobs a ``snakemake -n`` run plans, as a Counter of job names (1 each normally).

    Cross-checked against Snakemake's own "Job stats" table so a format change fails loudly.
    """
    jobs: Counter[str] = Counter()
    rule = None
    wildcards: dict[str, str] = {}

    def flush() -> None:
        if rule is not None:
            jobs[job_name(rule, wildcards)] += 1

    for line in text.splitlines():
        head = _JOB_HEAD.match(line)
        if head:
            flush()
            rule, wildcards = head.group(1), {}
        elif rule is not None and line.startswith("    wildcards: "):
            pairs = line.split(":", 1)[1].strip().split(", ")
            wildcards = dict(p.split("=", 1) for p in pairs if p)
        elif rule is not None and not line.startswith("    "):
            flush()
            rule = None
    flush()
    stats = _job_stats(text)
    per_rule = Counter(name.split("[", 1)[0] for name in jobs.elements())
    if stats != per_rule:
        raise AssertionError(f"dry-run parse disagrees with Job stats: parsed {per_rule}, stats {stats}")
    return jobs


def _job_stats(text: str) -> Counter[str]:
    """The first "Job stats" table of a dry run (rule -> count), without the total row."""
    if "Nothing to be done" in text:
        return Counter()
    lines = text.splitlines()
    start = lines.index("Job stats:") + 3  # header, dashes
    stats: Counter[str] = Counter()
    for line in lines[start:]:
        row = _STATS_ROW.match(line.strip())
        if not row:
            break
        if row.group(1) != "total":
            stats[row.group(1)] = int(row.group(2))
    return stats


def planned_jobs(workdir: Path, *args: str) -> set[str]:
    """Job names a dry run (``snakemake -n ARGS``) would execute now."""
    res = run(workdir, "-n", *args)
    return set(parse_dry_run(res.stdout))


def config_override(path: Path, override: dict[str, Any]) -> list[str]:
    """Write ``override`` to ``path``; return the arguments that merge it over config.yaml.

    (``--configfile`` merges section by section; ``--config key={...}`` would hand nested
    values over as strings.)
    """
    path.write_text(yaml.safe_dump(override))
    return ["--configfile", str(path)]


def forced_jobs(workdir: Path, rules: Iterable[str], *args: str) -> set[str]:
    """Jobs Snakemake plans when ``rules`` are forced: their jobs and everything downstream."""
    return planned_jobs(workdir, *args, "--forcerun", *rules)


def planned_outputs(workdir: Path, *args: str) -> set[str]:
    """Output files of the jobs a dry run (``snakemake -n ARGS``) would execute now."""
    text = run(workdir, "-n", *args).stdout
    return {f for line in re.findall(r"^    output: (.*)$", text, re.M) for f in line.split(", ")}


def rule_of(job: str) -> str:
    return job.split("[", 1)[0]


def rules_of(jobs: Iterable[str]) -> set[str]:
    return {rule_of(j) for j in jobs}


# ---------------------------------------------------------------- workflow rules
_HEAD = re.compile(r"^(\s*)(?:rule|checkpoint) (\w+):")


def rule_blocks(path: Path) -> dict[str, str]:
    """Rule name -> the text of its block, for each ``rule``/``checkpoint`` in one file.

    A block is every following line indented deeper than its head (rules inside an ``if`` too).
    """
    blocks: dict[str, list[str]] = {}
    current, indent = None, 0
    for line in path.read_text().splitlines():
        if head := _HEAD.match(line):
            current, indent = head.group(2), len(head.group(1))
            blocks[current] = []
        elif current is not None and line.strip() and len(line) - len(line.lstrip()) <= indent:
            current = None
        elif current is not None:
            blocks[current].append(line)
    return {name: "\n".join(lines) for name, lines in blocks.items()}


def directive(block: str, name: str) -> str | None:
    """The text of directive ``name`` in a rule block (its line and deeper-indented lines)."""
    m = re.search(rf"^( +){name}:(.*(?:\n\1 +.*)*)", block, re.M)
    return m.group(2) if m else None


def stage_rules(*stages: str) -> list[str]:
    """Rules defined in ``workflow/rules/<stage>.smk`` for each stage, in file order."""
    return [name for st in stages for name in rule_blocks(RULE_FILES / f"{st}.smk")]


def rule_scripts(workdir: Path = REPO) -> dict[str, list[str]]:
    """Script path (relative to ``workdir``) -> rules that run it."""
    out: dict[str, list[str]] = {}
    for smk in sorted((workdir / "workflow" / "rules").glob("*.smk")):
        for name, block in rule_blocks(smk).items():
            script = directive(block, "script")
            if script:
                rel = os.path.normpath(Path("workflow/rules") / script.strip().strip("\"'"))
                out.setdefault(rel, []).append(name)
    return out


@functools.cache
def declared_rules() -> frozenset[str]:
    """Rule names the workflow defines (``snakemake --list-rules`` on the repo)."""
    out = subprocess.run(snakemake_cmd("--list-rules"), cwd=REPO, env=env(), capture_output=True,
                         text=True, timeout=300, check=True).stdout  # fmt: skip
    return frozenset(line.strip() for line in out.splitlines() if re.fullmatch(r"\s*\w+\s*", line))


# ---------------------------------------------------------------- reference run
# Conversion and preprocessing; split is included because PET harmonization is fitted on the
# training subjects; regional: every session's regional SUVR table and the cohort's.
PREPROCESSING_STAGES = ("demo", "convert", "mri", "pet", "split", "index", "regional")
_REFERENCE: dict[str, Path] = {}


def reference_run(base: Path) -> Path:
    """A finished local run (profiles/local) of SMALL_DEMO through PREPROCESSING_STAGES.

    Built once per test session under ``base`` and shared: tests must leave it as they found
    it (copy it with :func:`copy_run` to change anything).
    """
    if "small" not in _REFERENCE:
        wd = copy_workflow(base / "reference-run", SMALL_DEMO, PREPROCESSING_STAGES)
        run(wd, "all", "--profile", "profiles/local", timeout=900)
        _REFERENCE["small"] = wd
    return _REFERENCE["small"]


# The reference run continued through the train stage: one small 2D model.
TRAINING_STAGES = (*PREPROCESSING_STAGES, "slices", "train")
TRAINING_EPOCHS = 12
# train.overrides.cgan.epochs (the demo preset's 100) wins over train.epochs: set both
SMALL_TRAINING = {**SMALL_DEMO, "train": {"enabled": ["cgan"], "enabled_3d": [], "epochs": TRAINING_EPOCHS,
                                          "overrides": {"cgan": {"epochs": TRAINING_EPOCHS}}}}


def training_run(base: Path) -> Path:
    """:func:`reference_run` continued through TRAINING_STAGES with SMALL_TRAINING.

    Built once per session, the hard way: Snakemake is SIGKILLed as soon as the model's first
    ``last.pt`` exists, then unlocked and rerun, so training resumes from that checkpoint
    (tests/test_faults.py checks the resume; tests/test_reruns.py reruns from the result).
    """
    if "training" not in _REFERENCE:
        wd = copy_run(reference_run(base), base / "training-run")
        copy_workflow(wd, SMALL_TRAINING, TRAINING_STAGES)
        last = wd / "results" / "models" / "cgan" / "last.pt"
        kill_when(wd, last.exists, "all", "--cores", "1")
        run(wd, "--unlock")
        run(wd, "all", "--profile", "profiles/local", timeout=900)
        _REFERENCE["training"] = wd
    return _REFERENCE["training"]


def kill_when(workdir: Path, condition: Callable[[], bool], *args: str, timeout: float = 300) -> None:
    """Start ``snakemake ARGS``; SIGKILL it and its jobs (process group) once ``condition()``.

    Like a lost node: no cleanup runs. Fails if Snakemake ends first or ``timeout`` passes.
    """
    proc = subprocess.Popen(snakemake_cmd(*args), cwd=workdir, env=env(), start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.monotonic() + timeout
    try:
        while not condition():
            if proc.poll() is not None:
                raise AssertionError(f"snakemake {' '.join(args)} ended before it could be killed")
            if time.monotonic() > deadline:
                raise AssertionError(f"condition not met within {timeout} s")
            time.sleep(0.02)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def copy_run(src: Path, dst: Path) -> Path:
    """Copy a working directory with its results and Snakemake metadata, keeping mtimes."""
    shutil.copytree(src, dst, symlinks=True)
    return dst


# ---------------------------------------------------------------- output comparison
def output_files(workdir: Path, subdir: str = "results") -> set[str]:
    root = workdir / subdir
    return {str(p.relative_to(workdir)) for p in root.rglob("*") if p.is_file()}


def compare_trees(a: Path, b: Path, subdir: str = "results", rtol: float = 1e-5,
                  atol: float = 1e-5) -> list[str]:  # fmt: skip
    """Differences between the outputs of two runs (empty when equal).

    Same relative file set; NIfTI: same shape, affine and data (allclose); TSV/CSV/JSON/text:
    equal text; anything else: equal bytes.
    """
    files_a, files_b = output_files(a, subdir), output_files(b, subdir)
    diffs = [f"only in {a.name}: {f}" for f in sorted(files_a - files_b)]
    diffs += [f"only in {b.name}: {f}" for f in sorted(files_b - files_a)]
    for rel in sorted(files_a & files_b):
        if diff := _compare_file(a / rel, b / rel, rtol, atol):
            diffs.append(f"{rel}: {diff}")
    return diffs


def _compare_file(fa: Path, fb: Path, rtol: float, atol: float) -> str | None:
    if fa.name.endswith((".nii", ".nii.gz")):
        import nibabel as nib
        import numpy as np

        ia, ib = nib.load(fa), nib.load(fb)
        if ia.shape != ib.shape:
            return f"shape {ia.shape} != {ib.shape}"
        if not np.allclose(ia.affine, ib.affine, atol=1e-6):
            return "affine differs"
        da, db = np.asanyarray(ia.dataobj), np.asanyarray(ib.dataobj)
        if not np.allclose(da, db, rtol=rtol, atol=atol, equal_nan=True):
            return f"data differ (max abs {float(np.nanmax(np.abs(da.astype(float) - db))):.3g})"
        return None
    if fa.read_bytes() != fb.read_bytes():
        return "content differs"
    return None
