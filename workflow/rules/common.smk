# Config loading + validation, path patterns shared by every stage, and input functions.
import csv
from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake.utils import min_version

from mri2tau.config import resolve_config, validate_config
from mri2tau.data.split import sessions_in_split
from mri2tau.io.derivatives import sidecar_path

min_version("9.0")

_resolved = resolve_config(config)
config.clear()
config.update(_resolved)
try:  # the package's one validation (schemas in mri2tau/schemas, then cross-key checks)
    validate_config(config)
except ValueError as exc:
    raise WorkflowError(f"invalid configuration: {exc}") from None

R = config["results_dir"]
TPL = config["template"]["name"]

wildcard_constraints:
    sub="[A-Za-z0-9]+",
    ses="[A-Za-z0-9]+",


# ---------------------------------------------------------------- path patterns
# Raw BIDS (conversion output)
BIDS = f"{R}/bids"
SES_PREFIX = "sub-{sub}/ses-{ses}/"
T1W = f"{BIDS}/sub-{{sub}}/ses-{{ses}}/anat/sub-{{sub}}_ses-{{ses}}_T1w.nii.gz"
T1W_JSON = f"{BIDS}/sub-{{sub}}/ses-{{ses}}/anat/sub-{{sub}}_ses-{{ses}}_T1w.json"
PET = f"{BIDS}/sub-{{sub}}/ses-{{ses}}/pet/sub-{{sub}}_ses-{{ses}}_trc-18FAV1451_pet.nii.gz"
PET_JSON = f"{BIDS}/sub-{{sub}}/ses-{{ses}}/pet/sub-{{sub}}_ses-{{ses}}_trc-18FAV1451_pet.json"
PARTICIPANTS = f"{BIDS}/participants.tsv"
DATASET_DESCRIPTION = f"{BIDS}/dataset_description.json"
PAIRS = f"{R}/convert/pairs.tsv"
EXCLUDED = f"{R}/convert/excluded.tsv"

# BIDS-derivatives (preprocessing output)
DERIV = f"{R}/derivatives/mri2tau"
_D = f"{DERIV}/sub-{{sub}}/ses-{{ses}}"
_S = "sub-{sub}_ses-{ses}"
T1_TEMPLATE = f"{_D}/anat/{_S}_space-{TPL}_desc-preproc_T1w.nii.gz"
BRAIN_MASK_TEMPLATE = f"{_D}/anat/{_S}_space-{TPL}_desc-brain_mask.nii.gz"
BRAIN_MASK_NATIVE = f"{_D}/anat/{_S}_desc-brain_mask.nii.gz"
T1_N4 = f"{_D}/anat/{_S}_desc-n4_T1w.nii.gz"
XFM_AFFINE = f"{_D}/anat/{_S}_from-T1w_to-{TPL}_mode-image_desc-affine_xfm.mat"
XFM_WARP = f"{_D}/anat/{_S}_from-T1w_to-{TPL}_mode-image_desc-warp_xfm.nii.gz"
XFM_INVWARP = f"{_D}/anat/{_S}_from-{TPL}_to-T1w_mode-image_desc-warp_xfm.nii.gz"
PET_MEAN_NATIVE = f"{_D}/pet/{_S}_trc-18FAV1451_desc-mean_pet.nii.gz"
PET_MOTION = f"{_D}/pet/{_S}_trc-18FAV1451_desc-motion_timeseries.tsv"
XFM_PET2T1 = f"{_D}/pet/{_S}_from-pet_to-T1w_mode-image_xfm.mat"
SUVR_TEMPLATE = f"{_D}/pet/{_S}_trc-18FAV1451_space-{TPL}_desc-suvr_pet.nii.gz"
SUVR_STATS = f"{_D}/pet/{_S}_trc-18FAV1451_desc-reference_stats.tsv"
SUVR_STD_TEMPLATE = f"{_D}/pet/{_S}_trc-18FAV1451_space-{TPL}_desc-suvrstd_pet.nii.gz"
REGIONAL_TSV = f"{_D}/pet/{_S}_trc-18FAV1451_space-{TPL}_desc-regional_stats.tsv"
HARMONIZATION_PARAMS = f"{DERIV}/harmonization.json"
DERIV_DESCRIPTION = f"{DERIV}/dataset_description.json"
GROUP = f"{DERIV}/group"


def sidecar(pattern):
    """The BIDS JSON sidecar path of an image or table pattern (``x.nii.gz`` / ``x.tsv`` -> ``x.json``)."""
    return str(sidecar_path(pattern))

SPLITS = f"{R}/splits.tsv"


def log_path(rule_name, per_subject=True):
    """logs/<rule>/<subject>.log (SPEC §7)."""
    return f"logs/{rule_name}/sub-{{sub}}_ses-{{ses}}.log" if per_subject else f"logs/{rule_name}/all.log"


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
    """(sub, ses) of ``split`` (train/test): the rows the ``split`` rule writes to splits.tsv.

    Computed from the select_series checkpoint's pairs.tsv and the ``split`` settings with the
    split rule's own function, so no input function waits for splits.tsv: a second checkpoint
    nested on select_series would stop Snakemake 9 re-checking those jobs' code and params.
    """
    section = config["split"]
    return sessions_in_split(checkpoints.select_series.get().output.pairs, split,
                             test_fraction=section["test_fraction"], seed=section["seed"],
                             stratify_by=section["stratify_by"])


# Session indexes (rule session_index, index.smk): one TSV per split and stage listing every
# session's files. Cohort-level rules depend on an index (one input edge, not thousands: DAG
# size) plus splits.tsv, and read the files through the patterns.
SPLIT_NAMES = ("train", "test")
SESSION_INDEX = f"{DERIV}/sessions_split-{{split}}_desc-{{stage}}_index.tsv"
INDEX_PATTERNS = {
    "mri": dict(t1w=T1W, t1_template=T1_TEMPLATE, brain_mask_template=BRAIN_MASK_TEMPLATE,
                xfm_affine=XFM_AFFINE, xfm_invwarp=XFM_INVWARP),
    "suvr": dict(suvr_template=SUVR_TEMPLATE),
    "suvrstd": dict(suvrstd_template=SUVR_STD_TEMPLATE),
    "regional": dict(regional_tsv=REGIONAL_TSV, regional_json=sidecar(REGIONAL_TSV)),
}


def session_index(stage, *splits):
    """The index file(s) of ``stage`` for ``splits`` (default: both)."""
    return [SESSION_INDEX.format(stage=stage, split=split) for split in splits or SPLIT_NAMES]


# Each stage file appends the final targets it contributes (functions of wildcards or paths).
FINAL_TARGETS = []


def all_targets(wildcards):
    out = []
    for target in FINAL_TARGETS:
        out.extend(target() if callable(target) else [target])
    return out
