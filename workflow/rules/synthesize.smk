# Stage: synthesize. One job per model: test subjects' template-space T1 -> synthetic tau SUVR
# in template space and in native T1 space (inverse transforms), plus inference time / memory.
# (paths.synth_dir: mri2tau.paths.synth_name files in template and T1w space, timing.tsv)
import re

_SYN = config["synthesize"]


rule synthesize:
    input:
        model=paths.model_file,
        splits=paths.splits,
        harmonization=paths.harmonization_params,
        mri=paths.session_indexes("mri", ["test"]),  # test sessions' T1 (raw, template), mask, transforms
    output:
        directory(paths.synth_dir),
    log:
        log_path("synthesize", "{model}"),
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
            t1_pattern=paths.t1_template,
            mask_pattern=paths.brain_mask_template,
            t1w_pattern=paths.t1w,
            affine_pattern=paths.xfm_affine,
            invwarp_pattern=paths.xfm_invwarp,
        ),
        resolution_mm=config["template"]["resolution_mm"],
        template_mask=config["template"].get("mask_path"),
        settings=_SYN,
        slices=config["slices"],
        volumes=VOLUME_SETTINGS,  # without `augment` (training only)
        on_unknown=config["harmonization"]["on_unknown_manufacturer"],
    script:
        "../scripts/synthesize.py"


FINAL_TARGETS.extend(expand(paths.synth_dir, model=SYNTH_MODELS))
