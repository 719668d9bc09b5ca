# Stage: convert. ADNI DICOM tree + clinical CSV -> selected MRI-PET pairs -> raw BIDS.
from mri2tau.convert.select import session_dicom_dirs, session_series
from mri2tau.io.adni import clinical_csv_path


checkpoint select_series:
    input:
        dicom=config["data"]["dicom_root"],
        csv=str(clinical_csv_path(config["data"]["clinical_csv"])),
    output:
        pairs=paths.pairs,
        excluded=paths.excluded,
    log:
        log_path("select_series", "all"),
    conda:
        "../../envs/convert.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=30,
    params:
        t1_patterns=config["data"]["t1_description_patterns"],
        pet_patterns=config["data"]["pet_description_patterns"],
        exclude_patterns=config["data"].get("exclude_description_patterns", []),
        max_days=config["data"]["max_mri_pet_days"],
        exclude_subjects=config["data"].get("exclude_subjects", []),
        pet_input=config["data"]["pet_input"],
        sessions=config["data"]["sessions"],
        pet_n_frames=config["data"]["pet_n_frames"],
    script:
        "../scripts/select_series.py"


rule convert_session:
    input:
        unpack(
            lambda w: session_dicom_dirs(
                checkpoints.select_series.get().output.pairs, w.sub, w.ses
            )
        ),
    output:
        t1w=paths.t1w,
        t1w_json=paths.t1w_json,
        pet=paths.pet,
        pet_json=paths.pet_json,
    log:
        log_path("convert_session"),
    conda:
        "../../envs/convert.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=20,
    params:
        # the selected series (pairs.tsv): SeriesInstanceUIDs, PET input (raw / ADNI step), frames
        series=lambda w: session_series(
            checkpoints.select_series.get().output.pairs, w.sub, w.ses
        ),
    script:
        "../scripts/convert_session.py"


rule bids_metadata:
    input:
        pairs=paths.pairs,
    output:
        participants=paths.participants,
        participants_json=paths.participants_json,
        description=paths.dataset_description,
        readme=paths.bids_readme,
        changes=paths.bids_changes,
    log:
        log_path("bids_metadata", "all"),
    conda:
        "../../envs/convert.yaml"
    threads: 1
    resources:
        mem_mb=500,
        runtime=5,
    params:
        name=f"mri2tau {config['data']['source']} cohort",
        max_days=config["data"]["max_mri_pet_days"],
    script:
        "../scripts/bids_metadata.py"


# The dataset-level files and each session's T1w sidecar: the session's other BIDS files are
# inputs of the MRI and PET stages (one DAG edge per file: a large cohort plans faster).
FINAL_TARGETS.append(
    lambda: expand_sessions(paths.t1w_json)
    + [
        paths.participants,
        paths.participants_json,
        paths.dataset_description,
        paths.bids_readme,
        paths.bids_changes,
    ]
)
