"""The convert stage through Snakemake: bad inputs fail only their own subject (--keep-going),
the default DAG lists, and the stage's rules lint clean."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pydicom
import pytest
import yaml
from slurm.runner import workdir_paths

from mri2tau.paths import RunPaths
from mri2tau.templates import TEMPLATE_NAME

pytestmark = pytest.mark.dag  # calls snakemake on a workflow copy

REPO = Path(__file__).resolve().parents[1]
CONVERT_RULES = ("select_series", "convert_session", "bids_metadata")


def snakemake(workdir: Path, *args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    """Run this repo's Snakefile in ``workdir`` with the venv's tools first on PATH."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(workdir), *args]
    return subprocess.run(cmd, cwd=workdir, env=env, capture_output=True, text=True, timeout=timeout)


# ------------------------------------------------------------------ a cohort with planted faults
def _series(subject_dir: Path, kind: str) -> Path:
    """The single I<id> folder of the T1 (MPRAGE/SPGR) or PET series under a subject."""
    pattern = "*PET*" if kind == "PET" else "*[MS][PR][RG]*"
    return next(p for p in sorted(subject_dir.glob(f"{pattern}/*/I*")) if ("PET" in str(p)) == (kind == "PET"))


def _by_position(series: Path) -> list[Path]:
    files = sorted(series.glob("*.dcm"))
    return sorted(files, key=lambda f: float(pydicom.dcmread(f, stop_before_pixels=True).SliceLocation or 0))


def _drop_last_frame(series: Path) -> Path:
    frames: dict[str, list[Path]] = {}
    for path in sorted(series.glob("*.dcm")):
        frames.setdefault(str(pydicom.dcmread(path, stop_before_pixels=True).AcquisitionTime), []).append(path)
    for path in frames[max(frames)]:
        path.unlink()
    return series


def _corrupt(series: Path) -> Path:
    path = sorted(series.glob("*.dcm"))[len(list(series.glob("*.dcm"))) // 2]
    path.write_bytes(os.urandom(path.stat().st_size))
    return path


def _missing_slice(series: Path) -> Path:
    _by_position(series)[len(list(series.glob("*.dcm"))) // 2].unlink()
    return series


def _zero_byte(series: Path) -> Path:
    path = sorted(series.glob("*.dcm"))[7]
    path.write_bytes(b"")
    return path


# PTID -> (what is wrong, how to plant it (returns the file or folder the error must name), error text)
BAD_CASES = {
    "901_S_0001": ("corrupt T1 file", lambda s: _corrupt(_series(s, "T1")), "unreadable DICOM file"),
    "901_S_0002": ("T1 missing a slice", lambda s: _missing_slice(_series(s, "T1")), "missing slice"),
    "901_S_0003": ("PET with 5 frames", lambda s: _drop_last_frame(_series(s, "PET")), "expected 6"),
    "901_S_0004": ("absent from the CSV", lambda s: None, None),
    "901_S_0005": ("zero-byte PET file", lambda s: _zero_byte(_series(s, "PET")), "zero-byte DICOM file"),
}


@pytest.fixture(scope="module")
def faulty_run(demo_cohort, tmp_path_factory):
    """Copy the demo cohort, add one copy of a good subject per fault, run the convert stage."""
    work = tmp_path_factory.mktemp("faulty")
    adni = work / "ADNI"
    shutil.copytree(demo_cohort / "ADNI", adni)
    csv = pd.read_csv(demo_cohort / "ADNIMERGE.csv", dtype=str)
    truth = pd.read_csv(demo_cohort / "truth" / "cohort.tsv", sep="\t", dtype=str)
    source = truth[truth["expected_pair"] == "True"].iloc[0]
    planted = {}
    for n, (ptid, (_, plant, _)) in enumerate(BAD_CASES.items()):
        shutil.copytree(adni / source["ptid"], adni / ptid)
        planted[ptid] = plant(adni / ptid)
        if ptid != "901_S_0004":
            rows = csv[csv["PTID"] == source["ptid"]].assign(PTID=ptid, RID=str(9000 + n))
            csv = pd.concat([csv, rows])
    csv.to_csv(work / "ADNIMERGE.csv", index=False)
    # paths relative to the working directory, as a user's config.yaml would have them
    config = {"preset": "demo", "data": {"source": "adni", "dicom_root": "ADNI", "clinical_csv": "ADNIMERGE.csv"}}
    (work / "config.yaml").write_text(yaml.safe_dump(config))
    sessions = [(source["sub"], source["viscode"])]  # one good subject (test_convert_demo converts all)
    sessions += [(ptid.replace("_", ""), source["viscode"]) for ptid in BAD_CASES if ptid != "901_S_0004"]
    paths = RunPaths("results", TEMPLATE_NAME)  # config.yaml: the default results folder
    targets = [p.format(sub=s, ses=v) for s, v in sessions for p in (paths.t1w, paths.pet_json)]
    run = snakemake(work, "--cores", "2", "--keep-going", *targets, paths.participants)
    return work, run, source, planted


def test_good_subject_converts_despite_bad_ones(faulty_run):
    work, run, source, _ = faulty_run
    assert run.returncode != 0, "bad subjects must fail their jobs"
    sub, ses = source["sub"], source["viscode"]
    paths = workdir_paths(work)
    assert Path(paths.t1w.format(sub=sub, ses=ses)).is_file(), run.stderr[-3000:]
    assert Path(paths.pet_json.format(sub=sub, ses=ses)).is_file()
    assert Path(paths.participants).is_file()


@pytest.mark.parametrize("ptid", [p for p in BAD_CASES if p != "901_S_0004"])
def test_bad_subject_fails_with_clear_error(faulty_run, ptid):
    work, run, source, planted = faulty_run
    sub, ses = ptid.replace("_", ""), source["viscode"]
    log = (work / "logs" / "convert_session" / f"sub-{sub}_ses-{ses}.log").read_text()
    expected = BAD_CASES[ptid][2]
    assert expected in log and f"sub-{sub}" in log
    assert str(planted[ptid].relative_to(work)) in log  # the offending file or series folder
    assert "fix:" in log
    session = work / "results" / "bids" / f"sub-{sub}"
    leftovers = [p for p in session.rglob("*") if p.is_file()] if session.exists() else []
    assert leftovers == [], f"partial outputs left for {ptid}: {leftovers}"
    assert f"sub-{sub}" in run.stderr  # snakemake's failure summary names the job


def test_subject_absent_from_csv_is_excluded_and_logged(faulty_run):
    work, _, _, _ = faulty_run
    excluded = pd.read_csv(work / "results" / "convert" / "excluded.tsv", sep="\t", dtype=str)
    reason = excluded.loc[excluded["ptid"] == "901_S_0004", "reason"].str.cat()
    assert "not in the clinical CSV" in reason
    assert "901_S_0004" in (work / "logs" / "select_series" / "all.log").read_text()
    pairs = pd.read_csv(work / "results" / "convert" / "pairs.tsv", sep="\t", dtype=str)
    assert "901S0004" not in set(pairs["sub"])


# ------------------------------------------------------------------ DAG and lint
def test_dry_run_lists_the_dag(tmp_path):
    shutil.copy(REPO / "config.yaml", tmp_path / "config.yaml")  # the default config
    run = snakemake(tmp_path, "-n", "all")
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "select_series" in run.stdout and "demo_cohort" in run.stdout


def test_lint_clean_for_convert_rules(tmp_path):
    shutil.copy(REPO / "config.yaml", tmp_path / "config.yaml")
    run = snakemake(tmp_path, "--lint")
    text = run.stdout + run.stderr
    assert run.returncode == 0 or "Lints for" in text, text[-3000:]  # the workflow parsed and was linted
    sections = [line for line in text.splitlines() if line.startswith("Lints for")]
    mine = [s for s in sections if "convert.smk" in s or any(f"rule {r} " in s for r in CONVERT_RULES)]
    assert not mine, text
