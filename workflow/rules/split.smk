# Stage: split. Subject-level train/test split stratified by diagnosis, from the pairs table only
# (no images), so reprocessing PET never changes it. A plain rule, not a checkpoint: rules that
# need the training or test sessions take every session's file and splits.tsv and pick rows in
# code (see all_sessions in common.smk).


rule split:
    input:
        pairs=PAIRS,
    output:
        splits=SPLITS,
    log:
        log_path("split", per_subject=False),
    conda:
        "../../envs/pet.yaml"
    threads: 1
    resources:
        mem_mb=500,
        runtime=5,
    params:
        test_fraction=config["split"]["test_fraction"],
        seed=config["split"]["seed"],
        stratify_by=config["split"]["stratify_by"],
    script:
        "../scripts/split.py"


FINAL_TARGETS.append(SPLITS)
