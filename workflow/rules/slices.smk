# Stage: slices. Template-space T1 + standardized SUVR -> one slice file per split (2D models, classifier).
import os

SLICE_SPLITS = config["slices"]["splits"]
SLICES_DIR = f"{R}/slices"
SLICES = (
    f"{SLICES_DIR}/{{split}}.npz"  # paper's 14 axial positions: mri, pet (N, 1, H, W)
)
SLICES_INDEX = f"{SLICES_DIR}/{{split}}_index.tsv"  # sub, ses, slice, diagnosis, dx_group, manufacturer
SLICES_CENTRAL = (
    f"{SLICES_DIR}/{{split}}_central.npz"  # central 100 axial positions (classifier)
)
SLICES_CENTRAL_INDEX = f"{SLICES_DIR}/{{split}}_central_index.tsv"


rule slices:
    input:
        mri=session_index("mri"),  # every session's template-space T1 and brain mask
        pet=session_index("suvrstd"),  # every session's standardized SUVR
        splits=SPLITS,
    output:
        sets=expand(SLICES, split=SLICE_SPLITS),
        index=expand(SLICES_INDEX, split=SLICE_SPLITS),
        central=expand(SLICES_CENTRAL, split=SLICE_SPLITS),
        central_index=expand(SLICES_CENTRAL_INDEX, split=SLICE_SPLITS),
    log:
        log_path("slices", per_subject=False),
    conda:
        "../../envs/train.yaml"
    threads: 1
    resources:
        mem_mb=config["slices"]["mem_mb"],
        runtime=30,
    params:
        # path patterns with {sub}/{ses}, read per row of the split table (lambdas: not expanded)
        t1_pattern=lambda wc: T1_TEMPLATE,
        pet_pattern=lambda wc: SUVR_STD_TEMPLATE,
        mask_pattern=lambda wc: BRAIN_MASK_TEMPLATE,
        out_dir=lambda wc, output: os.path.dirname(output.sets[0]),
        settings=config["slices"],
    script:
        "../scripts/slices.py"


# 3D models: cropped/padded template-space volumes per split (mri2tau.data.volumes). Only the
# slice settings that scale intensities and name the splits, and the volumes section without
# `augment` (applied at training time), are params: other changes don't rebuild the volumes.
VOLUMES_DIR = f"{R}/volumes"
VOLUME_ARRAYS = (
    f"{VOLUMES_DIR}/{{split}}_{{kind}}.npy"  # (N, 1, X, Y, Z), [-1, 1]; kind: mri | pet
)
VOLUMES_INDEX = (
    f"{VOLUMES_DIR}/{{split}}_index.tsv"  # sub, ses, diagnosis, dx_group, manufacturer
)
VOLUMES_META = f"{VOLUMES_DIR}/volumes.json"  # geometry on the template grid + scaling
VOLUME_SCALING = {
    k: config["slices"][k]
    for k in ("pet_window", "t1_percentiles", "mask_brain", "splits")
}
VOLUME_SETTINGS = {k: v for k, v in config["volumes"].items() if k != "augment"}


rule volumes:
    input:
        mri=session_index("mri"),  # every session's template-space T1 and brain mask
        pet=session_index("suvrstd"),  # every session's standardized SUVR
        splits=SPLITS,
    output:
        arrays=expand(VOLUME_ARRAYS, split=SLICE_SPLITS, kind=["mri", "pet"]),
        index=expand(VOLUMES_INDEX, split=SLICE_SPLITS),
        meta=VOLUMES_META,
    log:
        log_path("volumes", per_subject=False),
    conda:
        "../../envs/train.yaml"
    threads: 1
    resources:
        mem_mb=config["slices"]["mem_mb"],
        runtime=30,
    params:
        t1_pattern=lambda wc: T1_TEMPLATE,
        pet_pattern=lambda wc: SUVR_STD_TEMPLATE,
        mask_pattern=lambda wc: BRAIN_MASK_TEMPLATE,
        out_dir=lambda wc, output: os.path.dirname(output.meta),
        slices=VOLUME_SCALING,
        volumes=VOLUME_SETTINGS,
        resolution_mm=config["template"]["resolution_mm"],
        template_mask=config["template"].get("mask_path"),
    script:
        "../scripts/volumes.py"
