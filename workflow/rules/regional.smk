# Stage: regional. Regional SUVR table of every session (Braak ROIs, every Desikan-Killiany label,
# the named reference regions; GTM partial-volume correction with pet.pvc: gtm), the cohort's
# tables and figure, and the derivatives tree's dataset_description.json. Only regional_suvr
# carries the PVC settings: changing them reruns the tables, never SUVR or registration.
from mri2tau import __version__

REGIONAL_WIDE = f"{GROUP}/regional_suvr_wide.tsv"
REGIONAL_LONG = f"{GROUP}/regional_suvr_long.tsv"
REGIONAL_FIGURE = f"{GROUP}/regional_suvr_by_diagnosis.png"
_REG_PET = config["pet"]
_PVC_ON = _REG_PET["pvc"] != "none"
_REG_TEMPLATE = dict(
    resolution_mm=config["template"]["resolution_mm"],
    erosion_vox=_REG_PET["erosion_vox"],
    template_path=config["template"].get("path"),
    template_mask=config["template"].get("mask_path"),
)


rule derivatives_description:
    output:
        description=DERIV_DESCRIPTION,
        readme=f"{DERIV}/README",
    log:
        log_path("derivatives_description", per_subject=False),
    conda:
        "../../envs/pet.yaml"
    threads: 1
    resources:
        mem_mb=500,
        runtime=5,
    params:
        raw_dir=BIDS,
        template=TPL,
        version=__version__,
    script:
        "../scripts/derivatives_description.py"


rule regional_suvr:
    input:
        suvr=SUVR_TEMPLATE,
        stats=SUVR_STATS,
        reference=PET_REFERENCE_MASK,
        pet_json=PET_JSON,
        pet_mean=PET_MEAN_NATIVE,
    output:
        tsv=REGIONAL_TSV,
        json=sidecar(REGIONAL_TSV),
    log:
        log_path("regional_suvr"),
    conda:
        "../../envs/pet.yaml"
    threads: 1
    resources:
        mem_mb=_REG_PET["mem_mb"],
        runtime=_REG_PET["runtime_min"],
    params:
        **_REG_TEMPLATE,
        pvc=_REG_PET["pvc"],
        pvc_resampling_fwhm_mm=_REG_PET["pvc_resampling_fwhm_mm"] if _PVC_ON else None,
        scanner_fwhm_mm=(
            config["harmonization"]["resolution_matching"]["scanner_fwhm_mm"]
            if _PVC_ON
            else None
        ),
    script:
        "../scripts/regional_suvr.py"


rule regional_group:
    input:
        indexes=session_index("regional"),
    output:
        wide=REGIONAL_WIDE,
        wide_json=sidecar(REGIONAL_WIDE),
        long=REGIONAL_LONG,
        long_json=sidecar(REGIONAL_LONG),
    log:
        log_path("regional_group", per_subject=False),
    conda:
        "../../envs/pet.yaml"
    threads: 1
    resources:
        mem_mb=_REG_PET["mem_mb"],
        runtime=_REG_PET["runtime_min"],
    params:
        **_REG_TEMPLATE,
    script:
        "../scripts/regional_group.py"


rule regional_figure:
    input:
        wide=REGIONAL_WIDE,
    output:
        png=report(
            REGIONAL_FIGURE,
            caption="../report/regional_suvr.rst",
            category="Regional SUVR",
            labels={"figure": "regional SUVR by diagnosis"},
        ),
    log:
        log_path("regional_figure", per_subject=False),
    conda:
        "../../envs/evaluate.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    script:
        "../scripts/regional_figure.py"


FINAL_TARGETS.extend([DERIV_DESCRIPTION, REGIONAL_FIGURE])
