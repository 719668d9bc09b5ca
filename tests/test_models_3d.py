"""3D synthesis models in the registry, their training step, hyper-parameters and volume data (issue 5)."""

from __future__ import annotations

import math
import warnings

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import torch

from mri2tau.config import resolve_config
from mri2tau.data.geometry import brain_box_geometry, crop_pad, volume_geometry
from mri2tau.data.slices import pet_to_unit, scale_t1
from mri2tau.data.volumes import (
    AugmentConfig,
    VolumeDataset,
    augment_pair,
    augmentation,
    build_volumes,
    open_volumes,
)
from mri2tau.losses.ssim3d import build_synthesis_loss
from mri2tau.models import registry
from mri2tau.models.monai3d import parameters_on_meta
from mri2tau.templates import load_template_mask, load_template_t1, template_grid
from mri2tau.train.checkpoint import load_generator
from mri2tau.train.hparams import model_hparams_3d
from mri2tau.train.loop import RunSettings, fit
from mri2tau.train.runner import train_model

torch.set_num_threads(1)

MODELS_3D = ("unet3d", "unetr", "swinunetr", "pix2pix3d", "cyclegan3d")
#: Generator parameters of the paper preset (MONAI 1.6.1); SwinUNETR/UNETR match MONAI's published sizes.
PAPER_GENERATOR_PARAMS = {"unet3d": 31.64e6, "unetr": 93.56e6, "swinunetr": 62.19e6, "pix2pix3d": 31.64e6,
                          "cyclegan3d": 31.64e6}
#: Tiny volumes: SwinUNETR needs sides that are multiples of 32 and >= 64.
TINY_SIDE = {"swinunetr": 64}
TINY_PERCEPTUAL = {"kind": "cyclic25d", "vgg_weights": "none", "vgg_layers": 4, "initial_duration": 1,
                   "factor": "2/3", "alpha": 1.0, "beta": 1.0, "gamma": 0.5}


def _tiny_hparams(name: str) -> dict:
    side = TINY_SIDE.get(name, 32)
    return registry.get(name).hparams("demo", image_size=[side] * 3, epochs=1, batch_size=1)


def test_all_3d_models_are_registered_with_their_families():
    families = {name: registry.get(name).family for name in MODELS_3D}
    assert families == {"unet3d": "supervised", "unetr": "supervised", "swinunetr": "supervised",
                        "pix2pix3d": "pix2pix", "cyclegan3d": "cyclegan"}
    assert all(registry.get(name).dims == 3 for name in MODELS_3D)
    assert set(MODELS_3D) <= set(registry.available())


@pytest.mark.parametrize("name", MODELS_3D)
def test_paper_parameter_counts_on_the_meta_device(name):
    with parameters_on_meta():
        nets = registry.build(name, "paper")
    assert all(p.is_meta for net in nets.values() for p in net.parameters())
    counts = {key: registry.count_parameters(net) for key, net in nets.items()}
    print(f"{name} paper parameters: " + ", ".join(f"{k} {v / 1e6:.2f} M" for k, v in counts.items()))
    assert counts["generator"] == pytest.approx(PAPER_GENERATOR_PARAMS[name], rel=0.005)
    hp = registry.get(name).hparams("paper")
    if name in ("unet3d", "pix2pix3d", "cyclegan3d"):
        assert hp["channels"] == [64, 128, 256, 512, 1024] and hp["strides"] == [2, 2, 2, 2] and hp["dropout"] == 0.2
    if "discriminator" in counts:  # 3D PatchGAN 64-128-256 with 4^3 kernels
        assert counts["discriminator"] > 2.5e6


@pytest.mark.parametrize("name", MODELS_3D)
def test_tiny_forward_shapes(name):
    torch.manual_seed(0)
    hp = _tiny_hparams(name)
    nets = registry.get(name).build(hp)
    side = hp["image_size"][0]
    mri = torch.rand(1, 1, side, side, side) * 2 - 1
    print(f"{name} demo parameters: " + ", ".join(f"{k} {registry.count_parameters(v)}" for k, v in nets.items()))
    with torch.no_grad():
        assert nets["generator"](mri).shape == mri.shape
        if name == "pix2pix3d":
            patches = nets["discriminator"](torch.cat([mri, mri], 1))
            assert patches.shape == (1, 1, side // 8 - 1, side // 8 - 1, side // 8 - 1)
        if name == "cyclegan3d":
            assert nets["generator_inv"](mri).shape == mri.shape
            assert nets["discriminator_inv"](mri).shape[1] == 1


@pytest.mark.parametrize("name", MODELS_3D)
def test_one_training_step_with_the_cyclic_objective(name, tmp_path):
    hp = _tiny_hparams(name)
    side = hp["image_size"][0]
    gen = torch.Generator().manual_seed(1)
    data = [{"mri": torch.rand(1, side, side, side, generator=gen) * 2 - 1,
             "pet": torch.rand(1, side, side, side, generator=gen) * 2 - 1}]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # random VGG weights
        objective = build_synthesis_loss(TINY_PERCEPTUAL)
    settings = RunSettings(device="cpu", progress_bar=False, log_every=0, seed=0)
    fit(name, hp, data, tmp_path, settings, extra_loss=objective)
    metrics = pd.read_csv(tmp_path / "metrics.csv")
    assert len(metrics) == 1 and math.isfinite(metrics["g_loss"].iloc[0])
    assert metrics["perceptual_plane"].iloc[0] == "axial"
    trained, info = load_generator(tmp_path / "model.pt")
    torch.manual_seed(0)  # fit seeds with settings.seed before building: the same initial weights
    initial = registry.get(name).build(hp)["generator"]
    changed = [not torch.equal(a, b) for a, b in zip(trained.state_dict().values(), initial.state_dict().values())]
    assert info["dims"] == 3 and any(changed)


def test_network_size_checks():
    with pytest.raises(ValueError, match="multiple of 32"):
        registry.get("swinunetr").build(registry.get("swinunetr").hparams("demo", image_size=[32, 32, 32]))
    with pytest.raises(ValueError, match="multiple of 16"):
        registry.get("unetr").build(registry.get("unetr").hparams("demo", image_size=[40, 48, 48]))
    with pytest.raises(ValueError, match="multiple of 8"):
        registry.get("unet3d").build(registry.get("unet3d").hparams("demo", image_size=[36, 32, 32]))


# ---------------------------------------------------------------- hyper-parameters from config
def _config(**perceptual):
    config = resolve_config({"preset": "demo"})
    config["perceptual"].update(perceptual)
    return config


def test_3d_hparams_carry_perceptual_and_volume_box_and_2d_ones_do_not():
    base = model_hparams_3d("unet3d", _config())
    static = model_hparams_3d("unet3d", _config(kind="static25d"))
    assert base["perceptual"]["kind"] == "cyclic25d" and static["perceptual"]["kind"] == "static25d"
    assert base != static  # the train rule's params change -> only 3D training reruns
    assert {k: v for k, v in base.items() if k != "perceptual"} == {k: v for k, v in static.items() if k != "perceptual"}
    assert base["image_size"] == [64, 64, 64]  # 4 mm demo template: brain box padded to 32
    assert base["augment"]["elastic_prob"] == 0.5
    with pytest.raises(ValueError, match="3D models only"):
        model_hparams_3d("mcr_vqgan", _config())
    config = _config()
    config.setdefault("train", {})["overrides"] = {"unetr": {"image_size": [32, 32, 32]}}
    with pytest.raises(ValueError, match="volumes.shape"):
        model_hparams_3d("unetr", config)


def test_2d_hparams_ignore_the_perceptual_section():
    from mri2tau.train.hparams import model_hparams

    configs = [_config(kind=kind) for kind in ("cyclic25d", "static25d")]
    for config in configs:
        config["slices"] = {"grid": 32}
        config["train"] = {}
    assert model_hparams("mcr_vqgan", configs[0]) == model_hparams("mcr_vqgan", configs[1])


# ---------------------------------------------------------------- volume geometry
def test_crop_pad_and_geometry_round_trip():
    volume = np.arange(5 * 6 * 7, dtype=np.float32).reshape(5, 6, 7)
    box = crop_pad(volume, (-2, 1, 3), (8, 4, 6), fill=-1.0)
    assert box.shape == (8, 4, 6) and np.all(box[:2] == -1) and box[2, 0, 0] == volume[0, 1, 3]
    assert np.all(box[:, :, 4:] == -1)  # z 7.. lies outside the volume
    mask = np.zeros((20, 30, 25), bool)
    mask[3:13, 5:25, 2:20] = True  # 10 x 20 x 18 voxels
    geometry = brain_box_geometry(mask, pad_multiple=16)
    assert geometry.shape == (16, 32, 32) and geometry.start == (0, -1, -5)
    network = geometry.to_network(mask.astype(np.float32), fill=0.0)
    assert network.sum() == mask.sum()  # the whole brain box is inside
    np.testing.assert_array_equal(geometry.to_template(network), mask.astype(np.float32))
    with pytest.raises(ValueError, match="smaller than the brain"):
        brain_box_geometry(mask, shape=(8, 32, 32))


def test_template_brain_box_holds_the_whole_template_brain():
    for res, expected in ((4.0, (64, 64, 64)), (1.0, (160, 192, 160))):
        geometry = volume_geometry({"crop": "brain_bbox", "pad_multiple": 32}, res)
        assert geometry.shape == expected and geometry.template_shape == template_grid(res)[0]
    mask = np.asarray(load_template_mask(4.0).dataobj) > 0
    geometry = volume_geometry({"pad_multiple": 32}, 4.0)
    assert geometry.to_network(mask.astype(np.float32), fill=0).sum() == mask.sum()


# ---------------------------------------------------------------- volume files
def _write_sessions(tmp_path):
    """Two template-grid (4 mm) sessions: T1 = template T1 x gain, SUVR = smooth ramp; splits table."""
    t1_img = load_template_t1(4.0)
    brain = np.asarray(load_template_mask(4.0).dataobj) > 0
    x = np.linspace(0.5, 3.0, t1_img.shape[0], dtype=np.float32)[:, None, None]
    rows = []
    truth = {}
    for i, (sub, split) in enumerate((("002S0001", "train"), ("003S0002", "test"))):
        t1 = np.asarray(t1_img.dataobj) * (1.0 + i)
        suvr = np.broadcast_to(x * (1.0 + 0.5 * i), t1.shape).astype(np.float32)
        for name, data in (("t1", t1), ("pet", suvr), ("mask", brain.astype(np.uint8))):
            nib.save(nib.Nifti1Image(data, t1_img.affine), tmp_path / f"{sub}_{name}.nii.gz")
        rows.append({"sub": sub, "ses": "bl", "dx": "CN", "dx_group": "CN", "manufacturer": "GE", "split": split})
        truth[sub] = (t1, suvr)
    pd.DataFrame(rows).to_csv(tmp_path / "splits.tsv", sep="\t", index=False)
    return brain, truth


def test_build_volumes_scales_like_the_slices_and_maps_back_to_the_template(tmp_path):
    brain, truth = _write_sessions(tmp_path)
    slices_cfg = {"pet_window": [0.0, 3.5], "t1_percentiles": [0.5, 99.5], "mask_brain": True}
    counts = build_volumes(tmp_path / "splits.tsv", str(tmp_path / "{sub}_t1.nii.gz"), str(tmp_path / "{sub}_pet.nii.gz"),
                           str(tmp_path / "{sub}_mask.nii.gz"), tmp_path / "volumes", slices_cfg,
                           {"crop": "brain_bbox", "pad_multiple": 32}, 4.0)
    assert counts == {"train": 1, "test": 1}
    for split, sub in (("train", "002S0001"), ("test", "003S0002")):
        volumes = open_volumes(tmp_path / "volumes", split)
        assert volumes.mri.shape == (1, 1, 64, 64, 64) and volumes.mri.dtype == np.float16
        assert volumes.index["sub"].tolist() == [sub]
        t1, suvr = truth[sub]
        expected_t1 = np.where(brain, scale_t1(t1, brain), -1.0)
        expected_pet = np.where(brain, pet_to_unit(suvr), -1.0)
        geometry = volumes.geometry
        np.testing.assert_allclose(geometry.to_template(volumes.mri[0, 0].astype(np.float32)), expected_t1, atol=2e-3)
        np.testing.assert_allclose(geometry.to_template(volumes.pet[0, 0].astype(np.float32)), expected_pet, atol=2e-3)
        assert volumes.meta["pet_window"] == [0.0, 3.5] and volumes.meta["resolution_mm"] == 4.0


def test_a_bad_session_fails_naming_it_and_leaves_no_volume_files(tmp_path):
    from mri2tau.errors import PipelineInputError

    _write_sessions(tmp_path)
    (tmp_path / "003S0002_pet.nii.gz").unlink()
    with pytest.raises(PipelineInputError, match="003S0002") as info:
        build_volumes(tmp_path / "splits.tsv", str(tmp_path / "{sub}_t1.nii.gz"), str(tmp_path / "{sub}_pet.nii.gz"),
                      str(tmp_path / "{sub}_mask.nii.gz"), tmp_path / "volumes", {}, {"pad_multiple": 32}, 4.0)
    assert "003S0002_pet.nii.gz" in str(info.value)
    assert not list((tmp_path / "volumes").glob("*"))


def test_train_model_runs_the_loop_on_volume_files(tmp_path):
    _write_sessions(tmp_path)
    build_volumes(tmp_path / "splits.tsv", str(tmp_path / "{sub}_t1.nii.gz"), str(tmp_path / "{sub}_pet.nii.gz"),
                  str(tmp_path / "{sub}_mask.nii.gz"), tmp_path / "volumes", {}, {"pad_multiple": 32}, 4.0)
    config = resolve_config({"preset": "demo", "perceptual": TINY_PERCEPTUAL})
    hp = {**model_hparams_3d("unet3d", config), "epochs": 1}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model_file = train_model("unet3d", tmp_path / "volumes", tmp_path / "model", hp,
                                 {"device": "cpu", "progress_bar": False, "log_every": 0})
    generator, info = load_generator(model_file)
    assert info["data"]["geometry"]["shape"] == [64, 64, 64] and info["hparams"]["perceptual"]["kind"] == "cyclic25d"


# ---------------------------------------------------------------- augmentation
def _phantom(side=32):
    """A smooth, asymmetric (1, X, Y, Z) volume in [-1, 1]."""
    x, y, z = np.meshgrid(*(np.linspace(-1, 1, side),) * 3, indexing="ij")
    blob = np.exp(-((x - 0.3) ** 2 + (y + 0.2) ** 2 * 2 + (z - 0.1) ** 2 * 3) * 4)
    return torch.from_numpy((blob * 2 - 1)[None].astype(np.float32))


def test_augmentation_is_deterministic_per_seed_and_keeps_mri_and_pet_aligned():
    volume = _phantom()
    transform = augmentation(AugmentConfig(noise_prob=0.0))
    outputs = {}
    for seed in range(6):
        mri, pet = augment_pair(transform, volume, volume.clone(), seed)
        assert mri.shape == volume.shape and torch.equal(mri, pet)  # same spatial transform on both
        again = augment_pair(transform, volume, volume.clone(), seed)[0]
        assert torch.equal(mri, again)
        outputs[seed] = mri
    assert sum(not torch.equal(out, volume) for out in outputs.values()) >= 3
    assert len({out.sum().item() for out in outputs.values()}) >= 3  # seeds differ


def test_noise_goes_to_the_mri_only():
    volume = _phantom()
    transform = augmentation(AugmentConfig(elastic_prob=0, affine_prob=0, flip_prob=0, noise_prob=1.0, noise_std=0.1))
    mri, pet = augment_pair(transform, volume, volume.clone(), 7)
    assert torch.equal(pet, volume)
    assert 0.05 < float((mri - volume).std()) < 0.15


def test_flip_flips_every_axis_together():
    volume = _phantom()
    transform = augmentation(AugmentConfig(elastic_prob=0, affine_prob=0, flip_prob=1.0, noise_prob=0))
    mri, _ = augment_pair(transform, volume, volume.clone(), 0)
    assert torch.equal(mri, volume.flip(1, 2, 3))


def test_volume_dataset_augments_from_the_global_torch_seed():
    volume = _phantom().numpy()[None]  # (N=1, 1, X, Y, Z)
    volumes = type("V", (), {"mri": volume, "pet": volume.copy(), "__len__": lambda self: 1})()
    dataset = VolumeDataset(volumes, augment=AugmentConfig(noise_prob=1.0))
    torch.manual_seed(5)
    first = dataset[0]
    torch.manual_seed(5)
    second = dataset[0]
    third = dataset[0]
    assert torch.equal(first["mri"], second["mri"]) and torch.equal(first["pet"], second["pet"])
    assert not torch.equal(first["mri"], third["mri"])
    assert VolumeDataset(volumes)[0]["mri"].shape == (1, 32, 32, 32)
