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
        t1=lambda wc: expand_sessions(T1_TEMPLATE),
        pet=lambda wc: expand_sessions(SUVR_STD_TEMPLATE),
        mask=lambda wc: expand_sessions(BRAIN_MASK_TEMPLATE),
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
