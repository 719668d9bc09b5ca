# Stage: synthesize. One job per model: test subjects' template-space T1 -> synthetic tau SUVR
# in template space and in native T1 space (inverse transforms), plus inference time / memory.
import re

SYNTH_MODELS = config["synthesize"]["models"] or TRAIN_MODELS + TRAIN_MODELS_3D
SYNTH_DIR = f"{R}/synth/{{model}}"  # sub-X_ses-Y_space-{TPL|T1w}_desc-synth_pet.nii.gz + timing.tsv
_SYN = config["synthesize"]


rule synthesize:
    input:
        model=MODEL_FILE,
        splits=SPLITS,
        harmonization=HARMONIZATION_PARAMS,
        mri=session_index("mri", "test"),  # test sessions' T1 (raw, template), mask, transforms
    output:
        directory(SYNTH_DIR),
    log:
        "logs/synthesize/{model}.log",
    wildcard_constraints:
        model="|".join(map(re.escape, SYNTH_MODELS)) or "no-model-enabled",
    conda:
        "../../envs/evaluate.yaml"
    threads: _SYN["threads"]
    resources:
        mem_mb=_SYN["mem_mb"],
        runtime=_SYN["runtime_min"],
        gpu=_SYN["gpus"],  # SLURM: --gpus (profiles/slurm sets 1 on its GPU partition)
    params:
        patterns=lambda wildcards: dict(
            t1_pattern=T1_TEMPLATE,
            mask_pattern=BRAIN_MASK_TEMPLATE,
            t1w_pattern=T1W,
            affine_pattern=XFM_AFFINE,
            invwarp_pattern=XFM_INVWARP,
        ),
        resolution_mm=config["template"]["resolution_mm"],
        template_mask=config["template"].get("mask_path"),
        settings=_SYN,
        slices=config["slices"],
        volumes=VOLUME_SETTINGS,  # without `augment` (training only)
        on_unknown=config["harmonization"]["on_unknown_manufacturer"],
    script:
        "../scripts/synthesize.py"


FINAL_TARGETS.extend(expand(SYNTH_DIR, model=SYNTH_MODELS))
