# Stage: convert. ADNI DICOM tree + clinical CSV -> selected MRI-PET pairs -> raw BIDS.
from mri2tau.convert.select import session_dicom_dirs, session_series
from mri2tau.io.adni import clinical_csv_path

PARTICIPANTS_JSON = f"{BIDS}/participants.json"
BIDS_README = f"{BIDS}/README"
BIDS_CHANGES = f"{BIDS}/CHANGES"


checkpoint select_series:
    input:
        dicom=config["data"]["dicom_root"],
        csv=str(clinical_csv_path(config["data"]["clinical_csv"])),
    output:
        pairs=PAIRS,
        excluded=EXCLUDED,
    log:
        log_path("select_series", per_subject=False),
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
        t1w=T1W,
        t1w_json=T1W_JSON,
        pet=PET,
        pet_json=PET_JSON,
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
        pairs=PAIRS,
    output:
        participants=PARTICIPANTS,
        participants_json=PARTICIPANTS_JSON,
        description=DATASET_DESCRIPTION,
        readme=BIDS_README,
        changes=BIDS_CHANGES,
    log:
        log_path("bids_metadata", per_subject=False),
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


# Every converted BIDS file plus the dataset-level files.
FINAL_TARGETS.append(
    lambda: [f for p in (T1W, T1W_JSON, PET, PET_JSON) for f in expand_sessions(p)]
    + [PARTICIPANTS, PARTICIPANTS_JSON, DATASET_DESCRIPTION, BIDS_README, BIDS_CHANGES]
)
