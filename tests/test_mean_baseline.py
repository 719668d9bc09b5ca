"""The ``mean`` baseline: the voxel-wise mean of the training volumes, whatever the MRI, first in
every table."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from mri2tau.config import resolve_config
from mri2tau.data.volumes import VolumeSet
from mri2tau.evaluate.tables import paper_tables
from mri2tau.models import registry
from mri2tau.models.defaults import baselines_first
from mri2tau.train.baseline import fit_mean
from mri2tau.train.checkpoint import load_generator
from mri2tau.train.hparams import model_hparams_3d


def test_mean_model_predicts_the_training_mean_for_any_mri(tmp_path):
    rng = np.random.default_rng(0)
    pet = rng.uniform(-1, 1, (5, 1, 8, 8, 8)).astype(np.float16)
    volumes = VolumeSet(mri=rng.uniform(-1, 1, pet.shape).astype(np.float16), pet=pet,
                        index=pd.DataFrame({"sub": list("abcde")}), meta={"pet_window": [0.0, 3.5]})
    hp = registry.get("mean").hparams("demo", image_size=[8, 8, 8])
    model_file = fit_mean("mean", volumes, tmp_path, hp, rows=np.array([0, 2, 4]))
    generator, info = load_generator(model_file)
    expected = pet[[0, 2, 4]].astype(np.float64).mean(0)
    out = generator(torch.randn(2, 1, 8, 8, 8)).detach().numpy()
    np.testing.assert_allclose(out, np.broadcast_to(expected, out.shape), atol=1e-6)
    assert info["data"] == {"pet_window": [0.0, 3.5]} and (tmp_path / "best.pt").is_file()
    metrics = pd.read_csv(tmp_path / "metrics.csv")
    assert metrics["l1"].iloc[0] == pytest.approx(np.abs(pet[[0, 2, 4]] - expected).mean(), rel=1e-4)
    with pytest.raises(ValueError, match="one window"):
        generator(torch.zeros(1, 1, 4, 8, 8))


def test_mean_hparams_have_no_loss_or_augmentation_and_it_comes_first(tmp_path):
    config = resolve_config({"preset": "demo"})
    hp = model_hparams_3d("mean", config)
    assert hp["image_size"] == [64, 64, 64] and "perceptual" not in hp and "augment" not in hp
    assert "perceptual" in model_hparams_3d("unet3d", config)
    assert baselines_first(["cgan", "unet3d", "mean"]) == ["mean", "cgan", "unet3d"]
    rows = pd.DataFrame([{"model": m, "sub": "s", "dx_group": g, "mse": 0.1, "psnr": 20.0, "ssim": 0.5}
                         for m in ("mcr_vqgan", "unet3d", "mean", "vqgan") for g in ("AD", "CN")])
    tables = paper_tables(rows, tmp_path)
    assert list(tables["table1_ablation"]["model"]) == ["mean", "vqgan", "mcr_vqgan"]
    assert list(tables["table3_models"]["model"]) == ["mean", "mcr_vqgan", "unet3d", "vqgan"]
    assert list(tables["table4_diagnosis"]["model"])[:2] == ["mean", "mean"]
    assert list(tables["table4_diagnosis"]["dx_group"])[:2] == ["CN", "AD"]
