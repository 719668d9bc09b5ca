# Stage: mri. Raw T1w -> N4 -> affine (head to head) -> SyN to the full-head template -> brain masks,
# transforms, registration QC (per-subject TSV + PNG, and a summary TSV over all sessions).


rule mri_preprocess:
    input:
        t1=paths.t1w,
    output:
        t1_n4=paths.t1_n4,
        t1_n4_json=sidecar(paths.t1_n4),
        t1_template=paths.t1_template,
        t1_template_json=sidecar(paths.t1_template),
        brain_mask_template=paths.brain_mask_template,
        brain_mask_template_json=sidecar(paths.brain_mask_template),
        brain_mask_native=paths.brain_mask_native,
        brain_mask_native_json=sidecar(paths.brain_mask_native),
        xfm_affine=paths.xfm_affine,
        xfm_warp=paths.xfm_warp,
        xfm_invwarp=paths.xfm_invwarp,
        qc_tsv=paths.mri_qc_tsv,
        qc_png=report(
            paths.mri_qc_png,
            caption="../report/qc_mri.rst",
            category="QC",
            subcategory="MRI registration",
            labels={
                "subject": "{sub}",
                "session": "{ses}",
                "figure": "T1 over template edges",
            },
        ),
    log:
        log_path("mri_preprocess"),
    conda:
        "../../envs/mri.yaml"
    threads: config["registration"]["threads"]
    resources:
        mem_mb=config["registration"]["mem_mb"],
        runtime=config["registration"]["runtime_min"],
    params:
        resolution_mm=config["template"]["resolution_mm"],
        template_path=config["template"].get("path"),
        template_mask_path=config["template"].get("mask_path"),
        registration=config["registration"],
    script:
        "../scripts/mri_preprocess.py"


rule qc_registration:
    input:
        lambda wildcards: expand_sessions(paths.mri_qc_tsv),
    output:
        paths.registration_qc,
    log:
        log_path("qc_registration", "all"),
    conda:
        "../../envs/mri.yaml"
    threads: 1
    resources:
        mem_mb=500,
        runtime=5,
    script:
        "../scripts/mri_qc_summary.py"


FINAL_TARGETS.append(paths.registration_qc)
