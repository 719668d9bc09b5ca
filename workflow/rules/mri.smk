# Stage: mri. Raw T1w -> N4 -> affine (head to head) -> SyN to the full-head template -> brain masks,
# transforms, registration QC (per-subject TSV + PNG, and a summary TSV over all sessions).
MRI_QC_TSV = f"{R}/qc/sub-{{sub}}_ses-{{ses}}_desc-mri_qc.tsv"
MRI_QC_PNG = f"{R}/qc/sub-{{sub}}_ses-{{ses}}_desc-mri_qc.png"
REGISTRATION_QC = f"{R}/qc/registration.tsv"


rule mri_preprocess:
    input:
        t1=T1W,
    output:
        t1_n4=T1_N4,
        t1_n4_json=sidecar(T1_N4),
        t1_template=T1_TEMPLATE,
        t1_template_json=sidecar(T1_TEMPLATE),
        brain_mask_template=BRAIN_MASK_TEMPLATE,
        brain_mask_template_json=sidecar(BRAIN_MASK_TEMPLATE),
        brain_mask_native=BRAIN_MASK_NATIVE,
        brain_mask_native_json=sidecar(BRAIN_MASK_NATIVE),
        xfm_affine=XFM_AFFINE,
        xfm_warp=XFM_WARP,
        xfm_invwarp=XFM_INVWARP,
        qc_tsv=MRI_QC_TSV,
        qc_png=report(
            MRI_QC_PNG,
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
        lambda wildcards: expand_sessions(MRI_QC_TSV),
    output:
        REGISTRATION_QC,
    log:
        log_path("qc_registration", per_subject=False),
    conda:
        "../../envs/mri.yaml"
    threads: 1
    resources:
        mem_mb=500,
        runtime=5,
    script:
        "../scripts/mri_qc_summary.py"


FINAL_TARGETS.append(REGISTRATION_QC)
