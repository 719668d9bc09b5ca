"""Every output path of a run, built in one place: BIDS-style file names and the named patterns
that the workflow rules, the package and the tests share.

:func:`bids_name` / :func:`bids_path` build names the way snakebids' ``bids()`` does (entities
in a fixed order, then the suffix); :class:`RunPaths` holds every pattern of one run (results
folder + template name), computed once. Patterns keep ``{sub}``, ``{ses}``, ``{split}``,
``{stage}``, ``{model}``, ``{kind}`` as Snakemake wildcards / :meth:`str.format` fields::

    paths = RunPaths("results", "MNI152NLin6Asym")  # config results_dir, template.name
    paths.suvr_template.format(sub="002S0001", ses="bl")
    # results/derivatives/mri2tau/sub-002S0001/ses-bl/pet/sub-002S0001_ses-bl_trc-18FAV1451_space-MNI152NLin6Asym_desc-suvr_pet.nii.gz

Imported while the workflow parses (every Snakemake call, every cluster job): standard library only.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

TRACER_LABEL = "18FAV1451"  # BIDS ``trc-`` label of the tau tracer (flortaucipir, [18F]AV-1451)
# Order of entities in a file name (BIDS, then the xfm entities of BIDS derivatives); others follow in call order
ENTITY_ORDER = ("sub", "ses", "tpl", "trc", "split", "from", "to", "mode", "space", "desc")
SPLIT_NAMES = ("train", "test")
LOGS = "logs"
SESSION = {"sub": "{sub}", "ses": "{ses}"}  # the session wildcards


def bids_name(suffix: str, ext: str, *, prefix: str | None = None, **entities: str | None) -> str:
    """``[prefix_]key-value_..._suffix<ext>``: entities in :data:`ENTITY_ORDER`, then any others in
    the order given; ``None`` values are left out; ``from_`` stands for the ``from`` entity; an
    empty ``suffix`` ends the name with the last entity."""
    given = {key.rstrip("_"): value for key, value in entities.items() if value is not None}
    keys = [k for k in ENTITY_ORDER if k in given] + [k for k in given if k not in ENTITY_ORDER]
    parts = ([prefix] if prefix else []) + [f"{k}-{given[k]}" for k in keys] + ([suffix] if suffix else [])
    return "_".join(parts) + ext


def bids_path(root: str, suffix: str, ext: str, *, datatype: str | None = None, folders: bool = True,
              prefix: str | None = None, **entities: str | None) -> str:
    """``root/[sub-X/][ses-Y/][tpl-Z/][datatype/]`` + :func:`bids_name`; ``folders=False``: no
    ``sub``/``ses``/``tpl`` folders (the name alone under ``root``)."""
    name = bids_name(suffix, ext, prefix=prefix, **entities)
    dirs = [f"{k}-{entities[k]}" for k in ("sub", "ses", "tpl") if folders and entities.get(k) is not None]
    return "/".join([root, *dirs, *([datatype] if datatype else []), name])


SESSION_LOG = bids_name("", "", **SESSION)  # sub-{sub}_ses-{ses}: log name of a per-session job


# ---------------------------------------------------------------- names inside an output folder
# A package function writes these into the folder it is given; RunPaths joins them for the rules.
MODEL_NAME = "model.pt"  # a training job's generator (weights + hparams + registry name): synthesis loads it
BEST_MODEL_NAME = "best.pt"  # the generator of the best validation epoch
LAST_CHECKPOINT_NAME = "last.pt"  # the resume point of an interrupted training job
METRICS_NAME = "metrics.csv"  # one row per training epoch
TIMING_NAME = "timing.tsv"  # a synthesis folder's per-session inference time and memory
VOLUMES_META_NAME = "volumes.json"  # the volume sets' geometry on the template grid + scaling
EVAL_METRICS_NAMES = {"slice_metrics": "slice_metrics.tsv", "volume_metrics": "volume_metrics.tsv",
                      "roi_suvr": "roi_suvr.tsv"}  # per-session evaluation tables (eval/)
FIGURE_NAMES = {"by_diagnosis": "metrics_by_diagnosis.png", "losses": "loss_curves.png",
                "roi_scatter": "roi_scatter.png"}  # cohort figures (eval/figures/), besides comparison_name()


def slice_set_stem(split: str, central: bool = False) -> str:
    """Stem of a slice set: ``<split>`` (the paper's training positions) or ``<split>_central`` (classifier)."""
    return f"{split}_central" if central else split


def training_slice_stem(slice_set: str) -> str:
    """Stem of the 2D training set for ``train.slice_set``: ``paper`` -> ``train`` (14 positions),
    ``central`` -> ``train_central`` (the central 100)."""
    return slice_set_stem("train", central=slice_set == "central")


def slice_set_name(stem: str) -> str:
    """``<stem>.npz``: a slice set's arrays (mri, pet, meta)."""
    return f"{stem}.npz"


def index_name(stem: str) -> str:
    """``<stem>_index.tsv``: the row table of a slice set or of a split's volumes."""
    return f"{stem}_index.tsv"


def volume_array_name(split: str, kind: str) -> str:
    """``<split>_<kind>.npy`` (kind mri | pet): a split's volumes, (N, 1, X, Y, Z) in [-1, 1]."""
    return f"{split}_{kind}.npy"


def comparison_name(model: str) -> str:
    """``comparison_<model>.png``: real / synthetic / difference panels of ``model`` (eval/figures/)."""
    return f"comparison_{model}.png"


def synth_name(sub: str, ses: str, space: str) -> str:
    """File name of a synthetic SUVR volume in ``space`` (template name or ``T1w``), in a model's
    synthesis folder (:attr:`RunPaths.synth_dir`)."""
    return bids_name("pet", ".nii.gz", sub=sub, ses=ses, space=space, desc="synth")


def log_path(rule: str, name: str = SESSION_LOG) -> str:
    """``logs/<rule>/<name>.log`` (SPEC §7): ``name`` :data:`SESSION_LOG` (a job per session, the
    default), ``all`` (one job) or the rule's other wildcards, e.g. ``{model}``."""
    return f"{LOGS}/{rule}/{name}.log"


def demo_truth_dir(clinical_csv: str) -> str:
    """The demo cohort's truth folder (rule demo_cohort): ``truth/`` beside its clinical CSV."""
    return str(Path(clinical_csv).parent / "truth")


class RunPaths:
    """Every output path pattern of a run writing under ``results`` with template ``template``.

    Raw BIDS (``bids/``), the BIDS-derivatives tree (``derivatives/mri2tau/``: per session
    ``anat/`` and ``pet/``, ``tpl-<template>/``, ``group/``, the session indexes), QC, slices,
    volumes, models, synthesis, evaluation and classifier outputs; logs under ``logs/``.
    """

    def __init__(self, results: str, template: str) -> None:
        self.results, self.template = results, template
        # ------------------------------------------------ conversion: raw BIDS + selection tables
        self.bids = bids = f"{results}/bids"
        self.t1w = bids_path(bids, "T1w", ".nii.gz", datatype="anat", **SESSION)
        self.t1w_json = bids_path(bids, "T1w", ".json", datatype="anat", **SESSION)
        self.pet = bids_path(bids, "pet", ".nii.gz", datatype="pet", **SESSION, trc=TRACER_LABEL)
        self.pet_json = bids_path(bids, "pet", ".json", datatype="pet", **SESSION, trc=TRACER_LABEL)
        self.participants, self.participants_json = f"{bids}/participants.tsv", f"{bids}/participants.json"
        self.dataset_description = f"{bids}/dataset_description.json"
        self.bids_readme, self.bids_changes = f"{bids}/README", f"{bids}/CHANGES"
        self.pairs, self.excluded = f"{results}/convert/pairs.tsv", f"{results}/convert/excluded.tsv"
        self.splits = f"{results}/splits.tsv"
        # ------------------------------------------------ derivatives: MRI (anat/)
        self.deriv = deriv = f"{results}/derivatives/mri2tau"
        tpl = template

        def anat(suffix: str, ext: str = ".nii.gz", **entities: str) -> str:
            return bids_path(deriv, suffix, ext, datatype="anat", **SESSION, **entities)

        def pet(suffix: str, ext: str = ".nii.gz", trc: str | None = TRACER_LABEL, **entities: str) -> str:
            return bids_path(deriv, suffix, ext, datatype="pet", **SESSION, trc=trc, **entities)

        self.t1_n4 = anat("T1w", desc="n4")
        self.t1_template = anat("T1w", space=tpl, desc="preproc")
        self.brain_mask_template = anat("mask", space=tpl, desc="brain")
        self.brain_mask_native = anat("mask", desc="brain")
        self.xfm_affine = anat("xfm", ".mat", from_="T1w", to=tpl, mode="image", desc="affine")
        self.xfm_warp = anat("xfm", from_="T1w", to=tpl, mode="image", desc="warp")
        self.xfm_invwarp = anat("xfm", from_=tpl, to="T1w", mode="image", desc="warp")
        # ------------------------------------------------ derivatives: PET (pet/, tpl-<template>/)
        self.pet_mean_native = pet("pet", desc="mean")
        self.pet_motion = pet("timeseries", ".tsv", desc="motion")
        self.xfm_pet2t1 = pet("xfm", ".mat", trc=None, from_="pet", to="T1w", mode="image")
        self.pet_mean_template = pet("pet", space=tpl, desc="mean")
        self.suvr_template = pet("pet", space=tpl, desc="suvr")
        self.suvr_stats = pet("stats", ".tsv", desc="reference")
        self.suvr_std_template = pet("pet", space=tpl, desc="suvrstd")
        self.regional_tsv = pet("stats", ".tsv", space=tpl, desc="regional")
        self.pet_reference_mask = bids_path(deriv, "mask", ".nii.gz", tpl=tpl, desc="petreference")
        self.harmonization_params = f"{deriv}/harmonization.json"
        self.deriv_description, self.deriv_readme = f"{deriv}/dataset_description.json", f"{deriv}/README"
        # ------------------------------------------------ cohort tables (group/) and session indexes
        self.group = group = f"{deriv}/group"
        self.regional_wide = bids_path(group, "wide", ".tsv", prefix="regional_suvr")
        self.regional_long = bids_path(group, "long", ".tsv", prefix="regional_suvr")
        self.regional_figure = bids_path(group, "by_diagnosis", ".png", prefix="regional_suvr")
        self.session_index = bids_path(deriv, "index", ".tsv", prefix="sessions", split="{split}", desc="{stage}")
        # each index's columns: the files of every session of the split, per stage
        self.index_patterns: dict[str, dict[str, str]] = {
            "mri": dict(t1w=self.t1w, t1_template=self.t1_template, brain_mask_template=self.brain_mask_template,
                        xfm_affine=self.xfm_affine, xfm_invwarp=self.xfm_invwarp),
            "suvr": dict(suvr_template=self.suvr_template),
            "suvrstd": dict(suvrstd_template=self.suvr_std_template),
            "regional": dict(regional_tsv=self.regional_tsv, regional_json=sidecar(self.regional_tsv)),
        }
        # ------------------------------------------------ QC
        qc = f"{results}/qc"
        self.mri_qc_tsv = bids_path(qc, "qc", ".tsv", folders=False, **SESSION, desc="mri")
        self.mri_qc_png = bids_path(qc, "qc", ".png", folders=False, **SESSION, desc="mri")
        self.pet_qc = bids_path(qc, "qc", ".png", folders=False, **SESSION, desc="pet")
        self.registration_qc = f"{qc}/registration.tsv"
        # ------------------------------------------------ slices (2D) and volumes (3D) per split
        self.slices_dir = slices = f"{results}/slices"
        split, central = "{split}", slice_set_stem("{split}", central=True)
        self.slices = f"{slices}/{slice_set_name(split)}"  # the paper's 14 axial positions: mri, pet (N, 1, H, W)
        self.slices_index = f"{slices}/{index_name(split)}"  # sub, ses, slice, diagnosis, dx_group, manufacturer
        self.slices_central = f"{slices}/{slice_set_name(central)}"  # central 100 axial positions (classifier)
        self.slices_central_index = f"{slices}/{index_name(central)}"
        self.volumes_dir = volumes = f"{results}/volumes"
        self.volume_arrays = f"{volumes}/{volume_array_name(split, '{kind}')}"
        self.volumes_index = f"{volumes}/{index_name(split)}"  # sub, ses, diagnosis, dx_group, manufacturer
        self.volumes_meta = f"{volumes}/{VOLUMES_META_NAME}"
        # ------------------------------------------------ models, synthesis, evaluation, classifier
        self.model_dir = f"{results}/models/{{model}}"
        self.model_file = f"{self.model_dir}/{MODEL_NAME}"
        self.model_metrics = f"{self.model_dir}/{METRICS_NAME}"
        self.synth_dir = f"{results}/synth/{{model}}"  # synth_name(...) files + TIMING_NAME
        self.regional_synth = bids_path(group, "{table}", ".{ext}", prefix="regional_suvr", synth="{model}")
        self.eval_dir = f"{results}/eval"
        self.figures_dir = f"{self.eval_dir}/figures"
        self.classifier_dir = f"{results}/classifier"

    def training_slices(self, slice_set: str) -> tuple[str, str]:
        """The 2D training slice set and its index for ``train.slice_set`` (:func:`training_slice_stem`)."""
        stem = training_slice_stem(slice_set)
        return f"{self.slices_dir}/{slice_set_name(stem)}", f"{self.slices_dir}/{index_name(stem)}"

    def session_indexes(self, stage: str, splits: Sequence[str] = SPLIT_NAMES) -> list[str]:
        """The session index file of ``stage`` for each of ``splits``."""
        return [self.session_index.format(split=split, stage=stage) for split in splits]

    def eval_file(self, name: str) -> str:
        """``eval/<name>`` (tables: ``<stem>.tsv|md|html``, per-session metrics)."""
        return f"{self.eval_dir}/{name}"

    def figure(self, name: str) -> str:
        """``eval/figures/<name>``."""
        return f"{self.figures_dir}/{name}"

    def classifier_file(self, name: str) -> str:
        """``classifier/<name>`` (model, history, Table V, decisions)."""
        return f"{self.classifier_dir}/{name}"

    def regional_synth_table(self, table: str, ext: str) -> str:
        """A model's synthetic-PET regional table (``table`` wide | long, ``ext`` tsv | json), ``{model}`` kept."""
        return self.regional_synth.replace("{table}", table).replace("{ext}", ext)


def sidecar(path: str) -> str:
    """The JSON sidecar of an image or table path or pattern (``x.nii.gz`` / ``x.nii`` / ``x.tsv`` -> ``x.json``)."""
    for ext in (".nii.gz", ".nii", ".tsv"):
        if path.endswith(ext):
            return path[: -len(ext)] + ".json"
    raise ValueError(f"not a NIfTI or TSV file: {path}")
