# Stage: pet. 4D tau PET -> motion-corrected frame mean -> PET->T1 rigid -> template (one resampling)
# -> SUVR (reference region) -> by-manufacturer standardization (fitted on training subjects).
# Only pet_reference and suvr carry the reference-region settings, so changing them reruns SUVR
# and what follows, never motion correction or registration.

PET_MEAN_TEMPLATE = f"{_D}/pet/{_S}_trc-18FAV1451_space-{TPL}_desc-mean_pet.nii.gz"
PET_REFERENCE_MASK = f"{DERIV}/tpl-{TPL}/tpl-{TPL}_desc-petreference_mask.nii.gz"
PET_QC = f"{R}/qc/sub-{{sub}}_ses-{{ses}}_desc-pet_qc.png"

_PET = config["pet"]
_RES = config["template"]["resolution_mm"]
_TPL_PATH = config["template"].get("path")
_TPL_MASK = config["template"].get("mask_path")


def pet_reference_inputs(wildcards):
    """A user reference mask is an input (edits to the file rerun SUVR); cerebellar_gm needs none."""
    region = _PET["reference_region"]
    return [] if region == "cerebellar_gm" else [region]


def training_suvrs(wildcards):
    """SUVR of every training session in the split (read after the split checkpoint)."""
    with open(checkpoints.split.get().output.splits, newline="") as fh:
        rows = [r for r in csv.DictReader(fh, delimiter="\t") if r["split"] == "train"]
    return [SUVR_TEMPLATE.format(sub=r["sub"], ses=r["ses"]) for r in rows]


rule pet_motion:
    input:
        pet=PET,
        sidecar=PET_JSON,
    output:
        mean=PET_MEAN_NATIVE,
        motion=PET_MOTION,
    params:
        expected_frames=config["data"]["pet_n_frames"],
        method=_PET["motion_correction"],
    log:
        log_path("pet_motion"),
    threads: _PET["threads"]
    resources:
        mem_mb=_PET["mem_mb"],
        runtime=_PET["runtime_min"],
    conda:
        "../../envs/pet.yaml"
    script:
        "../scripts/pet_motion.py"


rule pet_to_t1:
    input:
        mean=PET_MEAN_NATIVE,
        t1=T1_N4,
        brain_mask=BRAIN_MASK_NATIVE,
    output:
        xfm=XFM_PET2T1,
    log:
        log_path("pet_to_t1"),
    threads: _PET["threads"]
    resources:
        mem_mb=_PET["mem_mb"],
        runtime=_PET["runtime_min"],
    conda:
        "../../envs/pet.yaml"
    script:
        "../scripts/pet_to_t1.py"


rule pet_to_template:
    input:
        mean=PET_MEAN_NATIVE,
        pet2t1=XFM_PET2T1,
        warp=XFM_WARP,
        affine=XFM_AFFINE,
    output:
        pet=PET_MEAN_TEMPLATE,
    params:
        resolution_mm=_RES,
        min_brain_overlap=_PET["min_brain_overlap"],
        template_mask=_TPL_MASK,
    log:
        log_path("pet_to_template"),
    threads: _PET["threads"]
    resources:
        mem_mb=_PET["mem_mb"],
        runtime=_PET["runtime_min"],
    conda:
        "../../envs/pet.yaml"
    script:
        "../scripts/pet_to_template.py"


rule pet_reference:
    input:
        pet_reference_inputs,
    output:
        mask=PET_REFERENCE_MASK,
    params:
        reference_region=_PET["reference_region"],
        erosion_vox=_PET["erosion_vox"],
        resolution_mm=_RES,
        template_path=_TPL_PATH,
        template_mask=_TPL_MASK,
    log:
        log_path("pet_reference", per_subject=False),
    threads: 1
    resources:
        mem_mb=_PET["mem_mb"],
        runtime=_PET["runtime_min"],
    conda:
        "../../envs/pet.yaml"
    script:
        "../scripts/pet_reference.py"


rule suvr:
    input:
        pet=PET_MEAN_TEMPLATE,
        reference=PET_REFERENCE_MASK,
        motion=PET_MOTION,
    output:
        suvr=SUVR_TEMPLATE,
        stats=SUVR_STATS,
    params:
        reference_region=_PET["reference_region"],
        erosion_vox=_PET["erosion_vox"],
        trimmed_mean_percent=_PET["trimmed_mean_percent"],
    log:
        log_path("suvr"),
    threads: 1
    resources:
        mem_mb=_PET["mem_mb"],
        runtime=10,
    conda:
        "../../envs/pet.yaml"
    script:
        "../scripts/suvr.py"


rule pet_qc:
    input:
        suvr=SUVR_TEMPLATE,
        t1=T1_TEMPLATE,
    output:
        png=report(PET_QC, category="QC", subcategory="PET", caption="../report/qc_pet.rst"),
    log:
        log_path("pet_qc"),
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    conda:
        "../../envs/pet.yaml"
    script:
        "../scripts/pet_qc.py"


rule harmonize_fit:
    input:
        splits=SPLITS,
        suvr=training_suvrs,
    output:
        params=HARMONIZATION_PARAMS,
    params:
        suvr_pattern=SUVR_TEMPLATE,
        method=config["harmonization"]["method"],
        robust_percentile=config["harmonization"]["robust_percentile"],
        resolution_mm=_RES,
        template_mask=_TPL_MASK,
    log:
        log_path("harmonize_fit", per_subject=False),
    threads: 1
    resources:
        mem_mb=_PET["mem_mb"],
        runtime=_PET["runtime_min"],
    conda:
        "../../envs/pet.yaml"
    script:
        "../scripts/harmonize_fit.py"


rule harmonize_apply:
    input:
        suvr=SUVR_TEMPLATE,
        params=HARMONIZATION_PARAMS,
        splits=SPLITS,
    output:
        suvr=SUVR_STD_TEMPLATE,
    params:
        on_unknown=config["harmonization"]["on_unknown_manufacturer"],
        resolution_mm=_RES,
        template_mask=_TPL_MASK,
    log:
        log_path("harmonize_apply"),
    threads: 1
    resources:
        mem_mb=_PET["mem_mb"],
        runtime=10,
    conda:
        "../../envs/pet.yaml"
    script:
        "../scripts/harmonize_apply.py"


FINAL_TARGETS.append(lambda: expand_sessions(SUVR_STD_TEMPLATE) + expand_sessions(PET_QC))
