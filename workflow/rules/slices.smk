# Stage: slices. Template-space T1 + standardized SUVR -> one slice file per split (2D models, classifier).
import os

SLICE_SPLITS = config["slices"]["splits"]


rule slices:
    input:
        mri=paths.session_indexes("mri"),  # every session's template-space T1 and brain mask
        pet=paths.session_indexes("suvrstd"),  # every session's standardized SUVR
        splits=paths.splits,
    output:
        sets=expand(paths.slices, split=SLICE_SPLITS),
        index=expand(paths.slices_index, split=SLICE_SPLITS),
        central=expand(paths.slices_central, split=SLICE_SPLITS),
        central_index=expand(paths.slices_central_index, split=SLICE_SPLITS),
    log:
        log_path("slices", "all"),
    conda:
        "../../envs/train.yaml"
    threads: 1
    resources:
        mem_mb=config["slices"]["mem_mb"],
        runtime=30,
    params:
        # path patterns with {sub}/{ses}, read per row of the split table (lambdas: not expanded)
        t1_pattern=lambda wc: paths.t1_template,
        pet_pattern=lambda wc: paths.suvr_std_template,
        mask_pattern=lambda wc: paths.brain_mask_template,
        out_dir=lambda wc, output: os.path.dirname(output.sets[0]),
        settings=config["slices"],
    script:
        "../scripts/slices.py"


# 3D models: cropped/padded template-space volumes per split (mri2tau.data.volumes). Only the
# slice settings that scale intensities and name the splits, and the volumes section without
# `augment` (VOLUME_SETTINGS, common.smk), are params: other changes don't rebuild the volumes.
VOLUME_SCALING = {
    k: config["slices"][k]
    for k in ("pet_window", "t1_percentiles", "mask_brain", "splits")
}


rule volumes:
    input:
        mri=paths.session_indexes("mri"),  # every session's template-space T1 and brain mask
        pet=paths.session_indexes("suvrstd"),  # every session's standardized SUVR
        splits=paths.splits,
    output:
        arrays=expand(paths.volume_arrays, split=SLICE_SPLITS, kind=["mri", "pet"]),
        index=expand(paths.volumes_index, split=SLICE_SPLITS),
        meta=paths.volumes_meta,
    log:
        log_path("volumes", "all"),
    conda:
        "../../envs/train.yaml"
    threads: 1
    resources:
        mem_mb=config["slices"]["mem_mb"],
        runtime=30,
    params:
        t1_pattern=lambda wc: paths.t1_template,
        pet_pattern=lambda wc: paths.suvr_std_template,
        mask_pattern=lambda wc: paths.brain_mask_template,
        out_dir=lambda wc, output: os.path.dirname(output.meta),
        slices=VOLUME_SCALING,
        volumes=VOLUME_SETTINGS,
        resolution_mm=config["template"]["resolution_mm"],
        template_mask=config["template"].get("mask_path"),
    script:
        "../scripts/volumes.py"
