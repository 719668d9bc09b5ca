# Stage: convert. ADNI DICOM tree + clinical CSV -> selected MRI-PET pairs -> raw BIDS.
import csv

PARTICIPANTS_JSON = f"{BIDS}/participants.json"
BIDS_README = f"{BIDS}/README"
BIDS_CHANGES = f"{BIDS}/CHANGES"


def session_dicom_dirs(wildcards):
    """The T1 and PET DICOM folders that select_series paired for {sub}/{ses}."""
    with open(checkpoints.select_series.get().output.pairs, newline="") as fh:
        for row in csv.DictReader(fh, delimiter="\t"):
            if (row["sub"], row["ses"]) == (wildcards.sub, wildcards.ses):
                return {"t1_dir": row["t1_dir"], "pet_dir": row["pet_dir"]}
    raise ValueError(f"sub-{wildcards.sub} ses-{wildcards.ses} is not in {PAIRS}")


checkpoint select_series:
    input:
        dicom=config["data"]["dicom_root"],
        csv=config["data"]["clinical_csv"],
    output:
        pairs=PAIRS,
        excluded=EXCLUDED,
    params:
        t1_patterns=config["data"]["t1_description_patterns"],
        pet_patterns=config["data"]["pet_description_patterns"],
        exclude_patterns=config["data"].get("exclude_description_patterns", []),
        max_days=config["data"]["max_mri_pet_days"],
    log:
        log_path("select_series", per_subject=False),
    threads: 1
    resources:
        mem_mb=1000,
        runtime=30,
    conda:
        "../../envs/convert.yaml"
    script:
        "../scripts/select_series.py"


rule convert_session:
    input:
        unpack(session_dicom_dirs),
    output:
        t1w=T1W,
        t1w_json=T1W_JSON,
        pet=PET,
        pet_json=PET_JSON,
    params:
        expected_frames=config["data"]["pet_n_frames"],
    log:
        log_path("convert_session"),
    threads: 1
    resources:
        mem_mb=2000,
        runtime=20,
    conda:
        "../../envs/convert.yaml"
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
    params:
        name="mri2tau " + config["data"]["source"] + " cohort",
        max_days=config["data"]["max_mri_pet_days"],
    log:
        log_path("bids_metadata", per_subject=False),
    threads: 1
    resources:
        mem_mb=500,
        runtime=5,
    conda:
        "../../envs/convert.yaml"
    script:
        "../scripts/bids_metadata.py"


def converted_bids():
    """Every converted BIDS file plus the dataset-level files."""
    per_session = [T1W, T1W_JSON, PET, PET_JSON]
    return [f for pattern in per_session for f in expand_sessions(pattern)] + [
        PARTICIPANTS,
        PARTICIPANTS_JSON,
        DATASET_DESCRIPTION,
        BIDS_README,
        BIDS_CHANGES,
    ]


FINAL_TARGETS.append(converted_bids)
