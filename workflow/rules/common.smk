# Config loading + validation, the run's paths, names several stage files share, and the
# session list (from the conversion checkpoint).
import csv

from snakemake.exceptions import WorkflowError
from snakemake.utils import min_version

from mri2tau.config import resolve_config, validate_config
from mri2tau.data.split import sessions_in_split
from mri2tau.paths import SPLIT_NAMES, RunPaths, log_path, sidecar
from mri2tau.smk import tune_gc_for_planning

# torch-free (read while the workflow parses: every snakemake call and every cluster job)
from mri2tau.train.hparams import enabled_2d_models, enabled_3d_models

min_version("9.0")
# a large cohort's DAG is millions of small objects: collect garbage less often (bench/dag.py)
tune_gc_for_planning()

_resolved = resolve_config(config)
config.clear()
config.update(_resolved)
try:  # the package's one validation (schemas in mri2tau/schemas, then cross-key checks)
    validate_config(config)
except ValueError as exc:
    raise WorkflowError(f"invalid configuration: {exc}") from None


wildcard_constraints:
    sub="[A-Za-z0-9]+",
    ses="[A-Za-z0-9]+",


# Every output path pattern (mri2tau.paths): the stage files, the package and the tests use these.
paths = RunPaths(config["results_dir"], config["template"]["name"])

# ---------------------------------------------------------------- names shared by stage files
TRAIN_MODELS = enabled_2d_models(config)  # train.enabled (2D)
# 3D models (train.enabled_3d): disjoint from TRAIN_MODELS, so the two train rules never compete
TRAIN_MODELS_3D = enabled_3d_models(config)
SYNTH_MODELS = config["synthesize"]["models"] or TRAIN_MODELS + TRAIN_MODELS_3D
# the volumes section without `augment` (applied at training time): what the volume files and
# 3D synthesis depend on, so an augmentation change retrains without rebuilding the volumes
VOLUME_SETTINGS = {k: v for k, v in config["volumes"].items() if k != "augment"}


# ---------------------------------------------------------------- sessions (from the checkpoint)
def sessions():
    """(sub, ses) pairs selected by the conversion checkpoint (MRI–PET pairs within the window)."""
    pairs = checkpoints.select_series.get().output.pairs
    with open(pairs, newline="") as fh:
        return [(row["sub"], row["ses"]) for row in csv.DictReader(fh, delimiter="\t")]


def expand_sessions(pattern):
    """``pattern`` for every selected session."""
    return [pattern.format(sub=s, ses=v) for s, v in sessions()]


def split_sessions(split):
    """(sub, ses) of ``split`` (train/test): the rows the ``split`` step writes to splits.tsv.

    Computed from the select_series checkpoint's pairs.tsv and the ``split`` settings with the
    split step's own function, so no input function waits for splits.tsv: a second checkpoint
    nested on select_series would stop Snakemake 9 re-checking those jobs' code and params.
    """
    section = config["split"]
    return sessions_in_split(
        checkpoints.select_series.get().output.pairs,
        split,
        test_fraction=section["test_fraction"],
        seed=section["seed"],
        stratify_by=section["stratify_by"],
    )


# Each stage file appends the final targets it contributes (functions of wildcards or paths).
FINAL_TARGETS = []


def all_targets(wildcards):
    out = []
    for target in FINAL_TARGETS:
        out.extend(target() if callable(target) else [target])
    return out
