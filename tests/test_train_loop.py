"""The training loop: exact resume of a GAN, atomic checkpoints, every family trains a step."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn
from torch.utils.data import Dataset

from mri2tau.models import registry
from mri2tau.train import checkpoint, steps
from mri2tau.train.checkpoint import data_key, load_checkpoint, load_generator, save_checkpoint
from mri2tau.train.loop import RunSettings, fit

SIZE = 32
SETTINGS = RunSettings(device="cpu", deterministic=True, progress_bar=False, log_every=1, threads=1)
TINY_VQGAN = {"epochs": 3, "base_channels": 4, "n_res_blocks": 1, "codebook_size": 16, "embedding_dim": 8,
              "cbam_reduction": 2, "disc_channels": [4, 8, 8], "image_size": SIZE}


class PairedSlices(Dataset):
    """Paired (1, SIZE, SIZE) slices: PET is a smooth nonlinear function of the MRI."""

    def __init__(self, n: int = 8) -> None:
        g = torch.Generator().manual_seed(1)
        self.mri = torch.rand(n, 1, SIZE, SIZE, generator=g) * 2 - 1
        self.pet = torch.tanh(2 * nn.functional.avg_pool2d(self.mri, 3, 1, 1))

    def __len__(self) -> int:
        return len(self.mri)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"mri": self.mri[i], "pet": self.pet[i]}


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)
    yield
    torch.use_deterministic_algorithms(False)


def random_vgg() -> nn.Module:
    from mri2tau.losses.perceptual import VGGPerceptualLoss

    torch.manual_seed(123)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return VGGPerceptualLoss(weights="none")


def crash_at(family: str, step: int, monkeypatch) -> None:
    """Make ``family``'s train_step raise at global ``step`` (a killed job)."""
    base = steps.FAMILIES[family]

    class Crashing(base):
        def train_step(self, mri, pet, ctx):
            if ctx.step == step:
                raise KeyboardInterrupt("simulated kill")
            return super().train_step(mri, pet, ctx)

    monkeypatch.setitem(steps.FAMILIES, family, Crashing)


def assert_same_tensors(a, b, where: str = "") -> None:
    if isinstance(a, torch.Tensor):
        assert torch.equal(a, b), f"differs at {where}"
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for key in a:
            assert_same_tensors(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same_tensors(x, y, f"{where}[{i}]")
    elif isinstance(a, float) and math.isnan(a):
        assert math.isnan(b), where
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


# ---------------------------------------------------------------- resume
def test_resume_after_kill_matches_uninterrupted_vqgan(tmp_path, monkeypatch):
    hp = registry.get("mcr_vqgan").hparams("demo", **TINY_VQGAN)
    data = PairedSlices()  # 4 steps per epoch at batch 2
    fit("mcr_vqgan", hp, data, tmp_path / "full", SETTINGS, extra_loss=random_vgg())

    with monkeypatch.context() as patch:
        crash_at("vqgan", step=6, monkeypatch=patch)  # in the middle of epoch 2
        with pytest.raises(KeyboardInterrupt):
            fit("mcr_vqgan", hp, data, tmp_path / "resumed", SETTINGS, extra_loss=random_vgg())
    assert load_checkpoint(tmp_path / "resumed" / "last.pt")["progress"]["epoch"] == 1
    assert not (tmp_path / "resumed" / "model.pt").exists()
    fit("mcr_vqgan", hp, data, tmp_path / "resumed", SETTINGS, extra_loss=random_vgg())

    full, resumed = (load_checkpoint(tmp_path / d / "last.pt") for d in ("full", "resumed"))
    assert resumed["progress"] == full["progress"] and full["progress"]["epoch"] == 3
    for part in ("nets", "optimizers", "schedulers", "scalers"):
        assert_same_tensors(full[part], resumed[part], part)
    assert_same_tensors(full["rng"]["torch"], resumed["rng"]["torch"])
    assert_same_tensors(*(load_checkpoint(tmp_path / d / "model.pt")["state_dict"] for d in ("full", "resumed")))
    metrics = [pd.read_csv(tmp_path / d / "metrics.csv").drop(columns="seconds") for d in ("full", "resumed")]
    pd.testing.assert_frame_equal(*metrics)
    assert list(metrics[0]["epoch"]) == [1, 2, 3]
    # training did something: the generator moved away from its initial weights
    torch.manual_seed(SETTINGS.seed)
    initial = registry.get("mcr_vqgan").build(hp)["generator"].state_dict()
    assert any(not torch.equal(initial[k], v) for k, v in full["nets"]["generator"].items())


def test_checkpoint_of_other_hparams_is_not_resumed(tmp_path):
    hp = registry.get("cgan").hparams("demo", epochs=2, ngf=4, num_downs=3, disc_channels=[4, 8, 8])
    settings = RunSettings(device="cpu", progress_bar=False, max_steps_per_epoch=1)
    fit("cgan", hp, PairedSlices(), tmp_path, settings)
    fit("cgan", {**hp, "lr": 1e-3}, PairedSlices(), tmp_path, settings)
    state = load_checkpoint(tmp_path / "last.pt")
    assert state["hparams"]["lr"] == 1e-3 and state["progress"]["epoch"] == 2
    assert list(pd.read_csv(tmp_path / "metrics.csv")["lr"]) == [1e-3, 5e-4]  # cosine over 2 epochs, afresh


def test_checkpoint_of_other_training_data_is_not_resumed(tmp_path):
    """A finished last.pt resumes (trains nothing) on the same data; on other data (new subjects,
    new SUVR) the same hyper-parameters train afresh instead of returning the stale model."""
    hp = registry.get("cgan").hparams("demo", epochs=1, ngf=4, num_downs=3, disc_channels=[4, 8, 8])
    settings = RunSettings(device="cpu", progress_bar=False, max_steps_per_epoch=2)
    data = {"a": PairedSlices(), "b": PairedSlices()}
    data["b"].pet = data["b"].pet.flip(-1)  # same MRI, other PET
    keys = {k: data_key([d.mri.numpy(), d.pet.numpy()], np.arange(len(d))) for k, d in data.items()}
    weights = {}
    for run, name in enumerate(["a", "a", "b"]):
        fit("cgan", hp, data[name], tmp_path, settings, data_key=keys[name])
        weights[run] = load_checkpoint(tmp_path / "model.pt")["state_dict"]
    assert_same_tensors(weights[0], weights[1])  # resumed after its last epoch
    assert any(not torch.equal(weights[0][k], v) for k, v in weights[2].items())
    assert load_checkpoint(tmp_path / "last.pt")["data_key"] == keys["b"]


def test_data_key_follows_bytes_and_selection(tmp_path):
    mri = np.random.default_rng(0).standard_normal((5, 1, 8, 8)).astype(np.float16)
    np.save(tmp_path / "mri.npy", mri)
    on_disk = np.load(tmp_path / "mri.npy", mmap_mode="r")
    key = data_key([mri], [0, 1, 2], [3])
    assert data_key([on_disk], [0, 1, 2], [3]) == key
    changed = mri.copy()
    changed[4, 0, 7, 7] += 1
    assert data_key([changed], [0, 1, 2], [3]) != key
    assert data_key([mri], [0, 1, 3], [2]) != key
    assert data_key([mri.astype(np.float32)], [0, 1, 2], [3]) != key


def test_epoch_schedule_hook_is_called_every_epoch_and_after_resume(tmp_path, monkeypatch):
    class PlaneLoss(nn.Module):
        """Stand-in for the cyclic 2.5D term: plane depends on the epoch."""

        def __init__(self):
            super().__init__()
            self.epochs_seen: list[int] = []
            self.plane = "axial"

        def set_epoch(self, epoch: int) -> None:
            self.epochs_seen.append(epoch)
            self.plane = ("axial", "coronal", "sagittal")[epoch % 3]

        def forward(self, fake, real):
            return (fake - real).pow(2).mean()

    hp = registry.get("cgan").hparams("demo", epochs=3, ngf=4, num_downs=3, disc_channels=[4, 8, 8], lambda_perc=1.0)
    settings = RunSettings(device="cpu", progress_bar=False, max_steps_per_epoch=1)
    first = PlaneLoss()
    with monkeypatch.context() as patch:
        crash_at("pix2pix", step=2, monkeypatch=patch)
        with pytest.raises(KeyboardInterrupt):
            fit("cgan", hp, PairedSlices(), tmp_path, settings, extra_loss=first)
    second = PlaneLoss()
    fit("cgan", hp, PairedSlices(), tmp_path, settings, extra_loss=second)
    assert first.epochs_seen == [0, 1, 2] and second.epochs_seen == [2]
    metrics = pd.read_csv(tmp_path / "metrics.csv")
    assert list(metrics["perceptual_plane"]) == ["axial", "coronal", "sagittal"]
    assert (metrics["perceptual"] > 0).all()


# ---------------------------------------------------------------- checkpoints
def test_checkpoint_save_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    save_checkpoint(path, {"epoch": 1, "w": torch.arange(5)})

    def dies_mid_write(obj, f, *args, **kwargs):
        with open(f, "wb") as fh:
            fh.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(checkpoint.torch, "save", dies_mid_write)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, {"epoch": 2, "w": torch.zeros(5)})
    monkeypatch.undo()
    state = load_checkpoint(path)
    assert state["epoch"] == 1 and torch.equal(state["w"], torch.arange(5))
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]  # no temp file left behind


# ---------------------------------------------------------------- every family
FAMILY_MODELS = {
    "mcr_vqgan": TINY_VQGAN | {"epochs": 1},
    "vqgan": TINY_VQGAN | {"epochs": 1},
    "cgan": {"epochs": 1, "ngf": 4, "num_downs": 3, "disc_channels": [4, 8, 8]},
    "wgan_gp": {"epochs": 1, "ngf": 4, "num_downs": 3, "disc_channels": [4, 8, 8], "n_critic": 2},
    "cyclegan": {"epochs": 1, "ngf": 4, "n_blocks": 1, "disc_channels": [4, 8, 8]},
}


@pytest.mark.parametrize("model", sorted(FAMILY_MODELS))
def test_each_2d_family_takes_steps(model, tmp_path):
    spec = registry.get(model)
    hp = spec.hparams("demo", **(FAMILY_MODELS[model] | {"image_size": SIZE}))
    settings = RunSettings(device="cpu", progress_bar=False, max_steps_per_epoch=2, seed=3)
    extra = random_vgg() if hp.get("lambda_perc", 0) > 0 else None
    fit(model, hp, PairedSlices(), tmp_path, settings, extra_loss=extra)

    metrics = pd.read_csv(tmp_path / "metrics.csv").drop(columns="val_l1").select_dtypes("number")
    assert {"g_loss", "d_loss", "l1"} <= set(metrics.columns)
    assert metrics.map(math.isfinite).all().all(), metrics
    # every network was updated by its optimizer
    torch.manual_seed(settings.seed)
    initial = spec.build(hp)
    trained = load_checkpoint(tmp_path / "last.pt")["nets"]
    for name, net in initial.items():
        assert any(not torch.equal(v, trained[name][k]) for k, v in net.state_dict().items()), name
    generator, info = load_generator(tmp_path / "model.pt")
    assert (info["model"], info["family"], info["dims"]) == (model, spec.family, 2)
    with torch.no_grad():
        out = generator(PairedSlices(2).mri)
    out = out[0] if isinstance(out, tuple) else out
    assert out.shape == (2, 1, SIZE, SIZE) and out.abs().max() <= 1


def test_cgan_without_adversarial_weight_trains_the_generator_only(tmp_path):
    """``lambda_adv: 0`` (the demo's cgan): the U-Net learns by L1, the discriminator is never run
    (nor its LR scheduler stepped: no "lr_scheduler.step() before optimizer.step()" warning)."""
    spec = registry.get("cgan")
    hp = spec.hparams("demo", **(FAMILY_MODELS["cgan"] | {"image_size": SIZE, "lambda_adv": 0.0, "epochs": 2}))
    settings = RunSettings(device="cpu", progress_bar=False, max_steps_per_epoch=2, seed=3)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fit("cgan", hp, PairedSlices(), tmp_path, settings)
    assert not [w for w in caught if "lr_scheduler.step()" in str(w.message)]
    metrics = pd.read_csv(tmp_path / "metrics.csv")
    assert (metrics["d_loss"] == 0).all() and (metrics["g_adv"] == 0).all()
    assert metrics["l1"].iloc[-1] < metrics["l1"].iloc[0]
    torch.manual_seed(settings.seed)
    initial = spec.build(hp)
    trained = load_checkpoint(tmp_path / "last.pt")["nets"]
    assert all(torch.equal(v, trained["discriminator"][k]) for k, v in initial["discriminator"].state_dict().items())
    assert any(not torch.equal(v, trained["generator"][k]) for k, v in initial["generator"].state_dict().items())


def test_supervised_family_with_a_3d_standin(tmp_path, monkeypatch):
    """The 3D path: a registered stand-in (B, 1, X, Y, Z) regressor trains through the same loop."""

    class Volumes(Dataset):
        def __len__(self):
            return 2

        def __getitem__(self, i):
            mri = torch.linspace(-1, 1, 16**3).reshape(1, 16, 16, 16) * (i + 1) / 2
            return {"mri": mri, "pet": torch.tanh(mri)}

    spec = registry.ModelSpec(
        name="tiny3d", dims=3, family="supervised",
        build=lambda hp: {"generator": nn.Sequential(nn.Conv3d(1, 4, 3, padding=1), nn.Tanh(), nn.Conv3d(4, 1, 1))},
        defaults={"demo": {"epochs": 2, "batch_size": 1, "lr": 1e-3, "optimizer": "adam", "betas": [0.9, 0.999]}},
    )
    monkeypatch.setitem(registry.REGISTRY, "tiny3d", spec)
    fit("tiny3d", spec.hparams("demo"), Volumes(), tmp_path, RunSettings(device="cpu", progress_bar=False))
    metrics = pd.read_csv(tmp_path / "metrics.csv")
    assert {"g_loss", "mse", "ssim", "l1"} <= set(metrics.columns) and len(metrics) == 2
    assert metrics["g_loss"].map(math.isfinite).all()
