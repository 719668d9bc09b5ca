# Stage: regional. Regional SUVR table of every session (Braak ROIs, every Desikan-Killiany label,
# the named reference regions; GTM partial-volume correction with pet.pvc: gtm), the cohort's
# tables and figure, and the derivatives tree's dataset_description.json. Only regional_suvr
# carries the PVC settings: changing them reruns the tables, never SUVR or registration.
from mri2tau import __version__

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
        description=paths.deriv_description,
        readme=paths.deriv_readme,
    log:
        log_path("derivatives_description", "all"),
    conda:
        "../../envs/pet.yaml"
    threads: 1
    resources:
        mem_mb=500,
        runtime=5,
    params:
        raw_dir=paths.bids,
        template=paths.template,
        version=__version__,
    script:
        "../scripts/derivatives_description.py"


rule regional_suvr:
    input:
        suvr=paths.suvr_template,
        stats=paths.suvr_stats,
        reference=paths.pet_reference_mask,
        pet_json=paths.pet_json,
        pet_mean=paths.pet_mean_native,
    output:
        tsv=paths.regional_tsv,
        json=sidecar(paths.regional_tsv),
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
        indexes=paths.session_indexes("regional"),
    output:
        wide=paths.regional_wide,
        wide_json=sidecar(paths.regional_wide),
        long=paths.regional_long,
        long_json=sidecar(paths.regional_long),
    log:
        log_path("regional_group", "all"),
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
        wide=paths.regional_wide,
    output:
        png=report(
            paths.regional_figure,
            caption="../report/regional_suvr.rst",
            category="Regional SUVR",
            labels={"figure": "regional SUVR by diagnosis"},
        ),
    log:
        log_path("regional_figure", "all"),
    conda:
        "../../envs/evaluate.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    script:
        "../scripts/regional_figure.py"


FINAL_TARGETS.extend([paths.deriv_description, paths.regional_figure])
