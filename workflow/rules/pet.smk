# Stage: pet. 4D tau PET -> motion-corrected frame mean -> PET->T1 rigid -> template (one resampling)
# -> SUVR (reference region) -> by-manufacturer standardization (fitted on training subjects).
# Only pet_reference and suvr carry the reference-region settings, so changing them reruns SUVR
# and what follows, never motion correction or registration.

PET_MEAN_TEMPLATE = f"{_D}/pet/{_S}_trc-18FAV1451_space-{TPL}_desc-mean_pet.nii.gz"
PET_REFERENCE_MASK = f"{DERIV}/tpl-{TPL}/tpl-{TPL}_desc-petreference_mask.nii.gz"
PET_QC = f"{R}/qc/sub-{{sub}}_ses-{{ses}}_desc-pet_qc.png"

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
        pet=PET,
        sidecar=PET_JSON,
    output:
        mean=PET_MEAN_NATIVE,
        mean_json=sidecar(PET_MEAN_NATIVE),
        motion=PET_MOTION,
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
        mean=PET_MEAN_NATIVE,
        t1=T1_N4,
        brain_mask=BRAIN_MASK_NATIVE,
    output:
        xfm=XFM_PET2T1,
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
        mean=PET_MEAN_NATIVE,
        pet2t1=XFM_PET2T1,
        warp=XFM_WARP,
        affine=XFM_AFFINE,
    output:
        pet=PET_MEAN_TEMPLATE,
        pet_json=sidecar(PET_MEAN_TEMPLATE),
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
        mask=PET_REFERENCE_MASK,
        mask_json=sidecar(PET_REFERENCE_MASK),
    log:
        log_path("pet_reference", per_subject=False),
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
        pet=PET_MEAN_TEMPLATE,
        reference=PET_REFERENCE_MASK,
        motion=PET_MOTION,
    output:
        suvr=SUVR_TEMPLATE,
        suvr_json=sidecar(SUVR_TEMPLATE),
        stats=SUVR_STATS,
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
        suvr=SUVR_TEMPLATE,
        t1=T1_TEMPLATE,
        sidecar=PET_JSON,
    output:
        png=report(
            PET_QC, category="QC", subcategory="PET", caption="../report/qc_pet.rst"
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
        splits=SPLITS,
        suvr=session_index("suvr", "train"),
        reference=PET_REFERENCE_MASK,
    output:
        params=HARMONIZATION_PARAMS,
    log:
        log_path("harmonize_fit", per_subject=False),
    conda:
        "../../envs/pet.yaml"
    threads: 1
    resources:
        mem_mb=_PET["mem_mb"],
        runtime=_PET["runtime_min"],
    params:
        suvr_pattern=lambda wildcards: SUVR_TEMPLATE,
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
        suvr=SUVR_TEMPLATE,
        params=HARMONIZATION_PARAMS,
        splits=SPLITS,
        reference=PET_REFERENCE_MASK,
    output:
        suvr=SUVR_STD_TEMPLATE,
        suvr_json=sidecar(SUVR_STD_TEMPLATE),
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


FINAL_TARGETS.append(lambda: expand_sessions(PET_QC))  # + the session indexes (index.smk)
