# Stage: pet. 4D tau PET -> motion-corrected frame mean -> PET->T1 rigid -> template (one resampling)
# -> SUVR (reference region) -> by-manufacturer standardization (fitted on training subjects).
# Only pet_reference and suvr carry the reference-region settings, so changing them reruns SUVR
# and what follows, never motion correction or registration.
from mri2tau.templates import REFERENCE_REGIONS

_PET = config["pet"]
_RES = config["template"]["resolution_mm"]
_TPL_PATH = config["template"].get("path")
_TPL_MASK = config["template"].get("mask_path")
# a user reference mask is an input (editing the file reruns SUVR); a named region needs none
_REFERENCE_INPUT = (
    [] if _PET["reference_region"] in REFERENCE_REGIONS else [_PET["reference_region"]]
)


rule pet_motion:
    input:
        pet=paths.pet,
        sidecar=paths.pet_json,
    output:
        mean=paths.pet_mean_native,
        mean_json=sidecar(paths.pet_mean_native),
        motion=paths.pet_motion,
    log:
        log_path("pet_motion"),
    conda:
        "../../envs/pet.yaml"
    threads: _PET["threads"]
    resources:
        mem_mb=_PET["mem_mb"],
        runtime=_PET["runtime_min"],
    params:
        expected_frames=config["data"]["pet_n_frames"],
        method=_PET["motion_correction"],
    script:
        "../scripts/pet_motion.py"


rule pet_to_t1:
    input:
        mean=paths.pet_mean_native,
        t1=paths.t1_n4,
        brain_mask=paths.brain_mask_native,
    output:
        xfm=paths.xfm_pet2t1,
    log:
        log_path("pet_to_t1"),
    conda:
        "../../envs/pet.yaml"
    threads: _PET["threads"]
    resources:
        mem_mb=_PET["mem_mb"],
        runtime=_PET["runtime_min"],
    script:
        "../scripts/pet_to_t1.py"


rule pet_to_template:
    input:
        mean=paths.pet_mean_native,
        pet2t1=paths.xfm_pet2t1,
        warp=paths.xfm_warp,
        affine=paths.xfm_affine,
    output:
        pet=paths.pet_mean_template,
        pet_json=sidecar(paths.pet_mean_template),
    log:
        log_path("pet_to_template"),
    conda:
        "../../envs/pet.yaml"
    threads: _PET["threads"]
    resources:
        mem_mb=_PET["mem_mb"],
        runtime=_PET["runtime_min"],
    params:
        resolution_mm=_RES,
        min_brain_overlap=_PET["min_brain_overlap"],
        template_mask=_TPL_MASK,
    script:
        "../scripts/pet_to_template.py"


rule pet_reference:
    input:
        _REFERENCE_INPUT,
    output:
        mask=paths.pet_reference_mask,
        mask_json=sidecar(paths.pet_reference_mask),
    log:
        log_path("pet_reference", "all"),
    conda:
        "../../envs/pet.yaml"
    threads: 1
    resources:
        mem_mb=_PET["mem_mb"],
        runtime=_PET["runtime_min"],
    params:
        reference_region=_PET["reference_region"],
        erosion_vox=_PET["erosion_vox"],
        resolution_mm=_RES,
        template_path=_TPL_PATH,
        template_mask=_TPL_MASK,
    script:
        "../scripts/pet_reference.py"


rule suvr:
    input:
        pet=paths.pet_mean_template,
        reference=paths.pet_reference_mask,
        motion=paths.pet_motion,
    output:
        suvr=paths.suvr_template,
        suvr_json=sidecar(paths.suvr_template),
        stats=paths.suvr_stats,
    log:
        log_path("suvr"),
    conda:
        "../../envs/pet.yaml"
    threads: 1
    resources:
        mem_mb=_PET["mem_mb"],
        runtime=10,
    params:
        reference_region=_PET["reference_region"],
        erosion_vox=_PET["erosion_vox"],
        trimmed_mean_percent=_PET["trimmed_mean_percent"],
    script:
        "../scripts/suvr.py"


rule pet_qc:
    input:
        suvr=paths.suvr_template,
        t1=paths.t1_template,
        sidecar=paths.pet_json,
    output:
        png=report(
            paths.pet_qc,
            category="QC",
            subcategory="PET",
            caption="../report/qc_pet.rst",
        ),
    log:
        log_path("pet_qc"),
    conda:
        "../../envs/pet.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    script:
        "../scripts/pet_qc.py"


rule harmonize_fit:
    input:
        splits=paths.splits,
        suvr=paths.session_indexes("suvr", ["train"]),
        reference=paths.pet_reference_mask,
    output:
        params=paths.harmonization_params,
    log:
        log_path("harmonize_fit", "all"),
    conda:
        "../../envs/pet.yaml"
    threads: 1
    resources:
        mem_mb=_PET["mem_mb"],
        runtime=_PET["runtime_min"],
    params:
        suvr_pattern=lambda wildcards: paths.suvr_template,
        method=config["harmonization"]["method"],
        robust_percentile=config["harmonization"]["robust_percentile"],
        resolution_matching=config["harmonization"]["resolution_matching"],
        trimmed_mean_percent=_PET["trimmed_mean_percent"],
        resolution_mm=_RES,
        template_mask=_TPL_MASK,
    script:
        "../scripts/harmonize_fit.py"


rule harmonize_apply:
    input:
        suvr=paths.suvr_template,
        params=paths.harmonization_params,
        splits=paths.splits,
        reference=paths.pet_reference_mask,
    output:
        suvr=paths.suvr_std_template,
        suvr_json=sidecar(paths.suvr_std_template),
    log:
        log_path("harmonize_apply"),
    conda:
        "../../envs/pet.yaml"
    threads: 1
    resources:
        mem_mb=_PET["mem_mb"],
        runtime=10,
    params:
        on_unknown=config["harmonization"]["on_unknown_manufacturer"],
        resolution_mm=_RES,
        template_mask=_TPL_MASK,
    script:
        "../scripts/harmonize_apply.py"


FINAL_TARGETS.append(
    lambda: expand_sessions(paths.pet_qc)
)  # + the session indexes (index.smk)
