"""Default hyper-parameters of every registered model, per preset, without importing torch.

The Snakefile reads these while it parses (``train.smk``: which models exist, their dims, their
resolved hyper-parameters as rule params), on every ``snakemake`` call and in every cluster job,
so this module imports nothing heavier than the standard library. The model modules
(:mod:`mri2tau.models.mcr_vqgan` ...) register their builders with these same dictionaries;
``tests/test_models_2d.py`` checks the registry and this table agree.

Units: ``image_size`` in voxels of the slice grid (2D) or of the volume box (3D, [x, y, z]);
learning rates per optimizer step; epochs are passes over the training set.
"""

from __future__ import annotations

import copy
from typing import Any

# ---------------------------------------------------------------- 2D: MCR-VQGAN and its Table I rows
#: Training hyper-parameters shared by the VQGAN rows (SPEC §4); keys read by the training loop.
VQGAN_TRAIN_PAPER: dict[str, Any] = {
    "image_size": 256, "batch_size": 2, "lr": 2e-4, "epochs": 500, "optimizer": "adamw",
    "betas": [0.5, 0.999], "weight_decay": 0.01, "scheduler": "cosine", "lambda_adv": 1.0,
    "lambda_rec": 10.0, "lambda_perc": 10.0, "lambda_vq": 5.0, "r1_gamma": 10.0,
    "instance_noise": 0.1, "real_label_range": [0.9, 1.0],
}  # fmt: skip
VQGAN_ARCH_PAPER: dict[str, Any] = {
    "base_channels": 64, "n_down": 3, "n_res_blocks": 6, "codebook_size": 1024, "embedding_dim": 256,
    "dropout": 0.5, "branch_fraction": 5 / 32, "cbam_reduction": 16, "ema_decay": 0.99,
    "commitment_beta": 0.25, "disc_channels": [64, 128, 256],
}  # fmt: skip
VQGAN_DEMO_OVERRIDES: dict[str, Any] = {
    "image_size": 32, "epochs": 2, "base_channels": 8, "n_res_blocks": 2, "codebook_size": 64,
    "embedding_dim": 32, "cbam_reduction": 4, "disc_channels": [8, 16, 32],
}  # fmt: skip
#: Table I rows: name -> (architecture flags, description).
VQGAN_ABLATIONS: dict[str, tuple[dict[str, bool], str]] = {
    "vqgan": ({"multiscale": False, "resblocks": False, "cbam": False}, "Standard VQGAN (Table I row 1)"),
    "mcr_vqgan_ms": ({"multiscale": True, "resblocks": False, "cbam": False}, "VQGAN + multi-scale conv (Table I row 2)"),
    "mcr_vqgan_ms_res": ({"multiscale": True, "resblocks": True, "cbam": False},
                         "VQGAN + multi-scale conv + ResNet blocks (Table I row 3)"),
    "mcr_vqgan": ({"multiscale": True, "resblocks": True, "cbam": True}, "MCR-VQGAN, full (Table I row 4)"),
}  # fmt: skip

# ---------------------------------------------------------------- 2D: GAN baselines
#: Training hyper-parameters of the GAN baselines (SPEC §4): Adam (0.5, 0.999), lr 2e-4, cosine.
BASELINE_TRAIN_PAPER: dict[str, Any] = {
    "image_size": 256, "batch_size": 4, "lr": 2e-4, "epochs": 500, "optimizer": "adam",
    "betas": [0.5, 0.999], "weight_decay": 0.0, "scheduler": "cosine",
}  # fmt: skip
UNET_ARCH_PAPER: dict[str, Any] = {"num_downs": 8, "ngf": 32, "dropout": 0.5, "disc_channels": [64, 128, 256]}
UNET_DEMO_OVERRIDES: dict[str, Any] = {"image_size": 32, "epochs": 2, "num_downs": 5, "ngf": 8, "disc_channels": [8, 16, 32]}
CGAN_LOSS: dict[str, Any] = {"lambda_adv": 1.0, "lambda_perc": 0.0, "lambda_l1": 100.0, "real_label_range": [0.9, 1.0]}
WGAN_GP_LOSS: dict[str, Any] = {"lambda_adv": 1.0, "lambda_perc": 0.0, "lambda_gp": 10.0, "lambda_l1": 100.0, "n_critic": 5}
CYCLEGAN_PAPER: dict[str, Any] = {
    **BASELINE_TRAIN_PAPER, "batch_size": 2, "ngf": 64, "n_blocks": 9, "dropout": 0.0,
    "disc_channels": [64, 128, 256], "lambda_adv": 1.0, "lambda_cyc": 10.0, "lambda_idt": 0.0, "lambda_perc": 0.0,
}  # fmt: skip
CYCLEGAN_DEMO: dict[str, Any] = {**CYCLEGAN_PAPER, "image_size": 32, "epochs": 2, "ngf": 8, "n_blocks": 2,
                                 "disc_channels": [8, 16, 32]}  # fmt: skip

# ---------------------------------------------------------------- 3D models (cyclic 2.5D perceptual loss paper)
TRAIN_3D_PAPER: dict[str, Any] = {
    "image_size": [160, 192, 160],  # brain bounding box of the 1 mm template, padded to 32
    "batch_size": 1, "lr": 5e-4, "epochs": 1000, "optimizer": "adam", "betas": [0.9, 0.999], "scheduler": "cosine",
}  # fmt: skip
TRAIN_3D_DEMO: dict[str, Any] = {"image_size": [64, 64, 64], "epochs": 2}
UNET3D_PAPER: dict[str, Any] = {"channels": [64, 128, 256, 512, 1024], "strides": [2, 2, 2, 2], "num_res_units": 0,
                                "dropout": 0.2}  # fmt: skip
UNET3D_DEMO: dict[str, Any] = {"channels": [4, 8, 16, 32], "strides": [2, 2, 2]}
GAN3D_PAPER: dict[str, Any] = {"output_activation": "tanh", "disc_channels": [64, 128, 256], "lambda_adv": 1.0,
                               "lambda_synthesis": 1.0}  # fmt: skip
GAN3D_DEMO: dict[str, Any] = {"disc_channels": [4, 8, 16]}
#: name -> (paper hyper-parameters over TRAIN_3D_PAPER, demo overrides over TRAIN_3D_DEMO)
MODELS_3D: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "unet3d": ({**UNET3D_PAPER, "output_activation": "linear"}, UNET3D_DEMO),
    "unetr": ({"feature_size": 16, "hidden_size": 768, "mlp_dim": 3072, "num_heads": 12, "dropout": 0.0,
               "output_activation": "linear"},
              {"feature_size": 4, "hidden_size": 48, "mlp_dim": 96, "num_heads": 4}),
    "swinunetr": ({"feature_size": 48, "depths": [2, 2, 2, 2], "num_heads": [3, 6, 12, 24], "dropout": 0.0,
                   "gradient_checkpointing": True, "output_activation": "linear"},
                  {"feature_size": 12, "depths": [1, 1, 1, 1], "num_heads": [3, 3, 3, 3],
                   "gradient_checkpointing": False}),
    "pix2pix3d": ({**UNET3D_PAPER, **GAN3D_PAPER, "lambda_l1": 100.0, "betas": [0.5, 0.999]},
                  {**UNET3D_DEMO, **GAN3D_DEMO}),
    "cyclegan3d": ({**UNET3D_PAPER, **GAN3D_PAPER, "lambda_cyc": 10.0, "betas": [0.5, 0.999]},
                   {**UNET3D_DEMO, **GAN3D_DEMO}),
}  # fmt: skip

# ---------------------------------------------------------------- the mean-image baseline (models.baseline)
#: Models without an MRI input: no training loss or augmentation, listed first in every table.
BASELINES: tuple[str, ...] = ("mean",)
MEAN_PAPER: dict[str, Any] = {"image_size": TRAIN_3D_PAPER["image_size"], "epochs": 1, "batch_size": 1}
MEAN_DEMO: dict[str, Any] = {"image_size": TRAIN_3D_DEMO["image_size"]}


def _presets() -> dict[str, dict[str, dict[str, Any]]]:
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for name, (flags, _) in VQGAN_ABLATIONS.items():
        paper = {**VQGAN_TRAIN_PAPER, **VQGAN_ARCH_PAPER, **flags}
        out[name] = {"paper": paper, "demo": {**paper, **VQGAN_DEMO_OVERRIDES}}
    for name, loss in (("cgan", CGAN_LOSS), ("wgan_gp", WGAN_GP_LOSS)):
        paper = {**BASELINE_TRAIN_PAPER, **UNET_ARCH_PAPER, **loss}
        out[name] = {"paper": paper, "demo": {**paper, **UNET_DEMO_OVERRIDES}}
    out["cyclegan"] = {"paper": CYCLEGAN_PAPER, "demo": CYCLEGAN_DEMO}
    for name, (paper, demo) in MODELS_3D.items():
        full = {**TRAIN_3D_PAPER, **paper}
        out[name] = {"paper": full, "demo": {**full, **TRAIN_3D_DEMO, **demo}}
    out["mean"] = {"paper": MEAN_PAPER, "demo": {**MEAN_PAPER, **MEAN_DEMO}}
    return out


#: model name -> preset -> default hyper-parameters (what ModelSpec.defaults holds).
PRESETS: dict[str, dict[str, dict[str, Any]]] = _presets()
#: model name -> 2 (slices) or 3 (volumes).
DIMS: dict[str, int] = {name: 3 if name in MODELS_3D or name in BASELINES else 2 for name in PRESETS}


def model_dims(name: str) -> int:
    """2 or 3 for a registered model; KeyError listing the registered names otherwise."""
    if name not in DIMS:
        raise KeyError(f"unknown model {name!r}; registered: {sorted(DIMS)}")
    return DIMS[name]


def default_hparams(name: str, preset: str = "demo", **overrides: Any) -> dict[str, Any]:
    """Defaults of ``name`` for ``preset`` updated by ``overrides`` (a fresh dict)."""
    model_dims(name)
    if preset not in PRESETS[name]:
        raise KeyError(f"model {name!r} has no {preset!r} preset; has {sorted(PRESETS[name])}")
    out = copy.deepcopy(PRESETS[name][preset])
    out.update(overrides)
    return out


def baselines_first(names: list[str]) -> list[str]:
    """``names`` with the baselines (:data:`BASELINES`) moved to the front, order otherwise kept."""
    return [n for n in names if n in BASELINES] + [n for n in names if n not in BASELINES]
