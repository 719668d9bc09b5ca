# Stage: demo. The synthetic ADNI-like cohort (only when data.source is "demo").
from mri2tau.paths import demo_truth_dir

if config["data"]["source"] == "demo":
    DEMO_MB_PER_SUBJECT = 2000 if config["demo"]["voxel_mm"] >= 2 else 4000

    rule demo_cohort:
        output:
            clinical_csv=config["data"]["clinical_csv"],
            dicom_root=directory(config["data"]["dicom_root"]),
            truth=directory(demo_truth_dir(config["data"]["clinical_csv"])),
        log:
            log_path("demo_cohort", "all"),
        conda:
            "../../envs/demo.yaml"
        threads: config["demo"].get("threads", 1)
        resources:
            mem_mb=lambda wc, threads: DEMO_MB_PER_SUBJECT * threads,  # per subject in flight
            runtime=10 if config["demo"]["voxel_mm"] >= 2 else 60,
        params:
            demo={
                "subjects": config["demo"]["subjects"],
                "seed": config["demo"]["seed"],
                "voxel_mm": config["demo"]["voxel_mm"],
                "all_manufacturers": config["demo"].get("all_manufacturers", False),
                "processed_pet_steps": config["demo"]["processed_pet_steps"],
                "second_visits": config["demo"]["second_visits"],
            },
        script:
            "../scripts/demo_cohort.py"
