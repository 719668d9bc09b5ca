# Session indexes: for each split (train/test) and stage (mri, suvr, suvrstd, regional) one TSV
# listing the split's sessions and their files (columns: paths.index_patterns), written once those
# files all exist. Cohort-level rules (harmonize_fit, slices, volumes, synthesize, evaluate,
# figures, classifier_test, regional_group) depend on these instead of on every session's files:
# a much smaller DAG for large cohorts, and a failed test subject holds up only what needs the
# test split.
#
# Per session, an index waits for the files of its columns that no per-session rule reads. The
# others (raw and template-space T1w, affine) are inputs of mri_preprocess, pet_qc and
# pet_to_template and come from the same jobs, so the index waits for, and reruns after, the same
# jobs, and a deleted file is still rebuilt: one DAG edge less per session and file (bench/dag.py).
INDEX_INPUTS = {
    "mri": ("brain_mask_template", "xfm_invwarp"),
    "suvr": ("suvr_template",),
    "suvrstd": ("suvrstd_template",),
    "regional": ("regional_tsv", "regional_json"),
}


rule session_index:
    input:
        files=lambda w: [
            paths.index_patterns[w.stage][column].format(sub=sub, ses=ses)
            for sub, ses in split_sessions(w.split)
            for column in INDEX_INPUTS[w.stage]
        ],
        splits=paths.splits,
    output:
        paths.session_index,
    log:
        log_path("session_index", "{split}_{stage}"),
    wildcard_constraints:
        split="|".join(SPLIT_NAMES),
        stage="|".join(paths.index_patterns),
    conda:
        "../../envs/pet.yaml"
    threads: 1
    resources:
        mem_mb=500,
        runtime=5,
    params:
        patterns=lambda w: paths.index_patterns[w.stage],
    script:
        "../scripts/session_index.py"


FINAL_TARGETS.extend(
    f for stage in paths.index_patterns for f in paths.session_indexes(stage)
)
