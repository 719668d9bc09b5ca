# Stage: split. Subject-level train/test split stratified by diagnosis, from the pairs table only
# (no images), so reprocessing PET never changes it. A plain rule, not a checkpoint: input
# functions get a split's sessions from split_sessions() (common.smk), which applies the same
# function to pairs.tsv.


rule split:
    input:
        pairs=paths.pairs,
    output:
        splits=paths.splits,
    log:
        log_path("split", "all"),
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


FINAL_TARGETS.append(paths.splits)
