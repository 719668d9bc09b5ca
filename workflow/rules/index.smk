# Session indexes: for each split (train/test) and stage (mri, suvr, suvrstd) one TSV listing the
# split's sessions and their files, written once those files all exist. Cohort-level rules
# (harmonize_fit, slices, volumes, synthesize, evaluate, figures, classifier_test) depend on these
# instead of on every session's files: a much smaller DAG for large cohorts, and a failed test
# subject holds up only what needs the test split.


rule session_index:
    input:
        files=lambda w: [
            p.format(sub=sub, ses=ses)
            for sub, ses in split_sessions(w.split)
            for p in INDEX_PATTERNS[w.stage].values()
        ],
        splits=SPLITS,
    output:
        SESSION_INDEX,
    log:
        "logs/session_index/{split}_{stage}.log",
    wildcard_constraints:
        split="|".join(SPLIT_NAMES),
        stage="|".join(INDEX_PATTERNS),
    conda:
        "../../envs/pet.yaml"
    threads: 1
    resources:
        mem_mb=500,
        runtime=5,
    params:
        patterns=lambda w: INDEX_PATTERNS[w.stage],
    script:
        "../scripts/session_index.py"


FINAL_TARGETS.extend(f for stage in INDEX_PATTERNS for f in session_index(stage))
