"""Static checks of the workflow: every rule declares threads and resources; profiles load.

A cluster runs each rule as its own job with the rule's ``threads`` and ``resources`` (mem_mb,
runtime): a rule without them would get the profile's defaults silently, so we fail instead.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from slurm.runner import REPO, copy_workflow, declared_rules, directive, rule_blocks, run

ACTIONS = ("script:", "shell:", "run:", "wrapper:", "notebook:", "cwl:")
REQUIRED_RESOURCES = ("mem_mb", "runtime")
def workflow_rule_blocks() -> dict[str, str]:
    blocks: dict[str, str] = {}
    for path in [REPO / "Snakefile", *sorted((REPO / "workflow" / "rules").glob("*.smk"))]:
        blocks.update(rule_blocks(path))
    return blocks


def test_rule_parser_sees_every_rule():
    assert set(workflow_rule_blocks()) == declared_rules()


def test_every_rule_declares_threads_and_resources():
    missing = []
    for name, block in workflow_rule_blocks().items():
        if not any(re.search(rf"^\s+{a}", block, re.M) for a in ACTIONS):
            continue  # a target-only rule (e.g. `all`) runs nothing
        if directive(block, "threads") is None:
            missing.append(f"{name}: threads")
        resources = directive(block, "resources") or ""
        missing += [f"{name}: resources.{r}" for r in REQUIRED_RESOURCES if not re.search(rf"\b{r}\s*=", resources)]
    assert not missing, "rules without threads/resources (see profiles/slurm): " + ", ".join(missing)


def test_rule_parser_finds_missing_directives(tmp_path):
    smk = tmp_path / "x.smk"
    smk.write_text(
        "rule good:\n    output: 'a'\n    threads: 2\n    resources:\n        mem_mb=100,\n"
        "        runtime=5,\n    script: 's.py'\n\n# comment\nrule bad:\n    output: 'b'\n"
        "    resources: mem_mb=10\n    shell: 'touch {output}'\nX = 1\nif X:\n\n    rule inner:\n"
        "        threads: 1\n\n    Y = 2\n"
    )
    blocks = rule_blocks(smk)
    assert set(blocks) == {"good", "bad", "inner"}
    assert "Y = 2" not in blocks["inner"] and directive(blocks["inner"], "threads").strip() == "1"
    assert directive(blocks["good"], "threads").strip() == "2"
    assert "runtime=5" in directive(blocks["good"], "resources")
    assert directive(blocks["bad"], "threads") is None
    assert "runtime" not in directive(blocks["bad"], "resources")


def load_profile(name: str) -> dict:
    return yaml.safe_load((REPO / "profiles" / name / "config.yaml").read_text())


def test_slurm_profile_keys():
    prof = load_profile("slurm")
    assert prof["executor"] == "slurm"
    assert prof["slurm-status-command"] == "squeue"  # no slurmdbd -> sacct cannot answer
    assert {"slurm_partition", "mem_mb", "runtime"} <= set(prof["default-resources"])
    for rule, res in prof["set-resources"].items():  # resources live in the config, not here
        assert set(res) == {"slurm_partition"}, f"{rule}: the profile repeats config resources {sorted(res)}"


def test_paper_preset_asks_a_gpu_for_every_gpu_rule():
    """GPU counts come from the config (one place): the paper preset asks one per GPU-capable job."""
    from mri2tau.config import resolve_config

    paper = resolve_config({"preset": "paper"})
    assert [paper[s]["gpus"] for s in ("train", "synthesize", "classifier")] == [1, 1, 1]


def test_every_gpu_rule_gets_a_gpu_on_slurm():
    """Rules declaring a ``gpu`` resource get the GPU partition in profiles/slurm.

    set-resources silently ignores unknown rule names, so a renamed rule would lose its GPU.
    """
    set_resources = load_profile("slurm")["set-resources"]
    unknown = sorted(set(set_resources) - declared_rules())
    assert not unknown, f"profiles/slurm set-resources names rules the workflow lacks: {unknown}"
    gpu_rules = {name for name, block in workflow_rule_blocks().items()
                 if re.search(r"\bgpu\s*=", directive(block, "resources") or "")}  # fmt: skip
    assert {"train_model", "synthesize"} <= gpu_rules
    assert not sorted(gpu_rules - set(set_resources)), "GPU rules without a GPU request in profiles/slurm"


@pytest.mark.dag
@pytest.mark.parametrize("profile", ["local", "slurm"])
def test_profiles_load_and_dry_run(tmp_path, profile):
    """Both profiles are valid Snakemake 9 profiles (unknown keys fail) and plan the DAG."""
    wd = copy_workflow(tmp_path / "wd", {"preset": "demo"})
    res = run(wd, "--profile", f"profiles/{profile}", "-n")
    assert "Building DAG of jobs" in res.stdout


def test_workflow_parse_imports_no_torch():
    """What the .smk files import while Snakemake parses (every call, every cluster job) stays light:
    importing torch + MONAI there costs ~10 s per parse."""
    modules = sorted({line.split()[1] for smk in (REPO / "workflow" / "rules").glob("*.smk")
                      for line in smk.read_text().splitlines() if line.startswith(("from mri2tau", "import mri2tau"))})
    code = f"import sys; import {', '.join(modules)}; print(sorted(m for m in ('torch', 'monai') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]", (modules, out)


def test_parsing_the_workflow_tunes_the_planning_gc(tmp_path):
    """Snakemake's process runs with the collector tuned for large DAGs once it has parsed the
    workflow (bench/dag.py: ~1/5 less dry-run CPU at 500-2,000 sessions); Python's defaults
    (700, 10, 10; nothing frozen) would fail this."""
    from mri2tau.smk import GC_YOUNG_THRESHOLD

    wd = copy_workflow(tmp_path / "wd", {"preset": "demo"})
    code = ("import atexit, gc, sys; atexit.register(lambda: print('GC', gc.get_threshold()[0], gc.get_freeze_count()));"
            "sys.argv = ['snakemake', '--list-rules']; from snakemake.cli import main; main()")
    out = subprocess.run([sys.executable, "-c", code], cwd=wd, capture_output=True, text=True).stdout
    threshold, frozen = map(int, re.search(r"^GC (\d+) (\d+)$", out, re.M).groups())
    assert threshold == GC_YOUNG_THRESHOLD and frozen > 10_000, out


def test_torch_free_model_table_matches_the_registry():
    from mri2tau.models import registry
    from mri2tau.models.defaults import DIMS, PRESETS

    registry._load_all()
    assert {n: s.dims for n, s in registry.REGISTRY.items()} == DIMS
    assert all(registry.REGISTRY[n].defaults == PRESETS[n] for n in DIMS)
