# Stage: train. One job per enabled model -> results/models/{model}/model.pt (+ metrics.csv):
# 2D models (train.enabled) on slices, 3D models (train.enabled_3d) on volumes.
import os
import re

# torch-free (read while the workflow parses: every snakemake call and every cluster job)
from mri2tau.train.hparams import model_hparams, model_hparams_3d

# Settings that change what is learned (a change retrains); device/workers/logging are read at run time.
# VGG16 weights for the 2D perceptual loss: the same file as the 3D losses (section `perceptual`).
TRAIN_SETTINGS = {
    "seed": config["train"]["seed"],
    "deterministic": config["train"].get("deterministic", False),
    "amp": config["train"]["amp"],
    "val_fraction": config["train"].get("val_fraction", 0.0),
    "vgg_weights": config.get("perceptual", {}).get("vgg_weights", "imagenet"),
}


# (npz, index) of train.slice_set: paper (14 positions) | central (100)
TRAINING_SLICES = paths.training_slices(config["train"]["slice_set"])


rule train_model:
    input:
        slices=TRAINING_SLICES[0],
        index=TRAINING_SLICES[1],
    output:
        model=paths.model_file,
        metrics=paths.model_metrics,
    log:
        log_path("train_model", "{model}"),
    wildcard_constraints:
        model="|".join(map(re.escape, TRAIN_MODELS)) or "no-model-enabled",
    conda:
        "../../envs/train.yaml"
    threads: config["train"]["threads"]
    resources:
        mem_mb=config["train"]["mem_mb"],
        runtime=config["train"]["runtime_min"],
        gpu=config["train"]["gpus"],  # SLURM: --gpus (profiles/slurm sets 1 on its GPU partition)
    params:
        hparams=lambda wc: model_hparams(wc.model, config),
        settings=TRAIN_SETTINGS,
        out_dir=lambda wc, output: os.path.dirname(output.model),
    script:
        "../scripts/train.py"


FINAL_TARGETS.extend(expand(paths.model_file, model=TRAIN_MODELS))


# 3D models: hparams carry the volume box, the `perceptual` section and `volumes.augment`, so
# changing any of them reruns only these jobs (and synthesis/evaluation after them).
rule train_model_3d:
    input:
        arrays=expand(paths.volume_arrays, split="train", kind=["mri", "pet"]),
        index=paths.volumes_index.format(split="train"),
        meta=paths.volumes_meta,
    output:
        model=paths.model_file,
        metrics=paths.model_metrics,
    log:
        log_path("train_model_3d", "{model}"),
    wildcard_constraints:
        model="|".join(map(re.escape, TRAIN_MODELS_3D)) or "no-model-enabled",
    conda:
        "../../envs/train.yaml"
    threads: config["train"]["threads"]
    resources:
        mem_mb=config["train"]["mem_mb_3d"],
        runtime=config["train"]["runtime_min"],
        gpu=config["train"]["gpus"],  # SLURM: --gpus (profiles/slurm sets 1 on its GPU partition)
    params:
        hparams=lambda wc: model_hparams_3d(wc.model, config),
        settings=TRAIN_SETTINGS,
        volumes_dir=lambda wc, input: os.path.dirname(input.meta),
        out_dir=lambda wc, output: os.path.dirname(output.model),
    script:
        "../scripts/train3d.py"


FINAL_TARGETS.extend(expand(paths.model_file, model=TRAIN_MODELS_3D))
