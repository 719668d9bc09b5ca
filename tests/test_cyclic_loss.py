"""Cyclic / static 2.5D and 3D perceptual losses and the 3D synthesis objective (issue 5)."""

from __future__ import annotations

import warnings
from fractions import Fraction

import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from mri2tau.losses.cyclic import (
    PLANES,
    PerceptualLoss3D,
    PerceptualLoss25D,
    build_perceptual_loss,
    plane_schedule,
    plane_switch_epochs,
)
from mri2tau.losses.perceptual import load_vgg16_features
from mri2tau.losses.ssim3d import SynthesisLoss3D, build_synthesis_loss

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def vgg():
    """Random-weight VGG16 features[:23] (no ImageNet file offline), seeded."""
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return load_vgg16_features("none", n_layers=23)


# ---------------------------------------------------------------- schedule
def test_switch_epochs_for_1000_epochs_match_the_paper_schedule():
    switches = plane_switch_epochs(1000)
    assert switches["axial"] == [0, 360, 600, 759, 864, 933, 978]
    assert switches["coronal"] == [120, 440, 653, 794, 887, 948, 988]
    assert switches["sagittal"] == [240, 520, 706, 829, 910, 963, 998]


def test_plane_schedule_changes_exactly_at_the_switch_epochs():
    planes = [plane_schedule(epoch) for epoch in range(1000)]
    changes = {plane: [] for plane in PLANES}
    for epoch, plane in enumerate(planes):
        if epoch == 0 or plane != planes[epoch - 1]:
            changes[plane].append(epoch)
    assert changes == plane_switch_epochs(1000)
    assert planes[:3] == ["axial"] * 3 and planes[120] == "coronal" and planes[999] == "sagittal"


def test_factor_as_fraction_string_or_float_gives_the_same_schedule():
    reference = plane_switch_epochs(1000, 120, Fraction(2, 3))
    assert plane_switch_epochs(1000, 120, "2/3") == reference
    assert plane_switch_epochs(1000, 120, 2 / 3) == reference


def test_duration_never_reaches_zero_it_stays_at_one_epoch():
    # d: 2 -> floor(2/3) = 0 -> kept at 1, so after the first cycle the plane changes every epoch
    planes = [plane_schedule(e, initial_duration=2, factor="1/3") for e in range(12)]
    assert planes[:6] == ["axial", "axial", "coronal", "coronal", "sagittal", "sagittal"]
    assert planes[6:] == ["axial", "coronal", "sagittal"] * 2
    assert plane_schedule(10**9 + 6, initial_duration=2, factor="1/3") == PLANES[(10**9) % 3]


def test_schedule_rejects_bad_arguments():
    with pytest.raises(ValueError):
        plane_schedule(-1)
    with pytest.raises(ValueError):
        plane_schedule(0, initial_duration=0)
    with pytest.raises(ValueError):
        plane_schedule(0, factor=0)


def test_resume_needs_only_the_epoch():
    """A fresh loss told the checkpoint's epoch continues the uninterrupted run's plane sequence."""
    features = torch.nn.Identity()
    uninterrupted = PerceptualLoss25D(initial_duration=3, factor="2/3", features=features)
    planes = []
    for epoch in range(20):
        uninterrupted.set_epoch(epoch)
        planes.append(uninterrupted.plane)
    checkpoint = {"epoch": 11}  # what a training checkpoint stores
    resumed = PerceptualLoss25D(initial_duration=3, factor="2/3", features=features)
    assert resumed.plane == "axial"  # default before set_epoch
    resumed_planes = []
    for epoch in range(checkpoint["epoch"], 20):
        resumed.set_epoch(epoch)
        resumed_planes.append(resumed.plane)
    assert resumed_planes == planes[11:]
    assert planes[:9] == ["axial"] * 3 + ["coronal"] * 3 + ["sagittal"] * 3


# ---------------------------------------------------------------- 2.5D loss values
def _direct_plane_loss(features, pred, target, plane):
    """Independent loop: per sample and slice, min-max to [0, 1], 3 channels, VGG feature MSE."""
    take = {
        "axial": lambda v, k: v[:, :, :, :, k],  # along Z (inferior -> superior)
        "coronal": lambda v, k: v[:, :, :, k, :],  # along Y (posterior -> anterior)
        "sagittal": lambda v, k: v[:, :, k, :, :],  # along X (left -> right)
    }[plane]
    n = pred.shape[{"axial": 4, "coronal": 3, "sagittal": 2}[plane]]
    losses = []
    for k in range(n):
        for b in range(pred.shape[0]):
            pair = []
            for vol in (pred, target):
                s = take(vol, k)[b : b + 1]
                s = (s - s.min()) / (s.max() - s.min() + 1e-8)
                pair.append(features(s.repeat(1, 3, 1, 1)))
            losses.append(F.mse_loss(pair[0], pair[1]))
    return torch.stack(losses).mean()


def test_cyclic_loss_equals_mean_vgg_mse_over_the_active_planes_slices(vgg):
    torch.manual_seed(1)
    # anisotropic sides so a wrong slicing axis changes the value
    pred, target = torch.randn(2, 1, 16, 20, 24), torch.randn(2, 1, 16, 20, 24)
    loss = PerceptualLoss25D("cyclic25d", features=vgg, initial_duration=1, slices_per_pass=7)
    values = {}
    for epoch, plane in enumerate(PLANES):
        loss.set_epoch(epoch)
        assert loss.plane == plane
        with torch.no_grad():
            values[plane] = loss(pred, target)
            expected = _direct_plane_loss(vgg, pred, target, plane)
        torch.testing.assert_close(values[plane], expected, rtol=1e-4, atol=1e-9)
    assert len({round(float(v), 12) for v in values.values()}) == 3  # the planes really differ

    static = PerceptualLoss25D("static25d", features=vgg)
    with torch.no_grad():
        torch.testing.assert_close(static(pred, target), sum(values.values()), rtol=1e-4, atol=1e-9)
        assert float(loss(target, target)) == 0.0


def test_gradients_reach_the_generator_not_the_frozen_vgg(vgg):
    torch.manual_seed(2)
    generator = torch.nn.Conv3d(1, 1, 3, padding=1)
    loss = PerceptualLoss25D("cyclic25d", features=vgg)
    loss.train()
    assert not loss.features.training  # VGG stays in eval mode
    mri, target = torch.randn(1, 1, 16, 16, 16), torch.randn(1, 1, 16, 16, 16, requires_grad=True)
    loss(generator(mri), target).backward()
    assert generator.weight.grad is not None and generator.weight.grad.abs().sum() > 0
    assert all(p.grad is None and not p.requires_grad for p in loss.features.parameters())
    assert target.grad is None


# ---------------------------------------------------------------- 3D, factory, total
def test_3d_perceptual_loss_random_weights_warns_and_trains_the_generator():
    torch.manual_seed(3)
    with pytest.warns(UserWarning, match="RANDOM"):
        loss = build_perceptual_loss("3d", weights_3d=None)
    assert isinstance(loss, PerceptualLoss3D)
    generator = torch.nn.Conv3d(1, 1, 3, padding=1)
    pred = generator(torch.randn(1, 1, 32, 32, 32))
    target = torch.randn(1, 1, 32, 32, 32)
    assert loss.features(target).shape == (1, 512, 4, 4, 4)  # MedicalNet layout: 1/8 resolution
    value = loss(pred, target)
    value.backward()
    assert value > 0 and generator.weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in loss.features.parameters())


def test_3d_weights_file_round_trip_and_missing_file_error(tmp_path):
    from mri2tau.errors import PipelineInputError

    with pytest.warns(UserWarning):
        source = PerceptualLoss3D(None)
    # MedicalNet layout: {"state_dict": {"module.<key>": ...}}
    state = {f"module.{k}": v for k, v in _resnet_state(source.features).items()}
    path = tmp_path / "resnet_10_23dataset.pth"
    torch.save({"state_dict": state}, path)
    loaded = PerceptualLoss3D(str(path))
    x = torch.randn(1, 1, 16, 16, 16)
    torch.testing.assert_close(loaded.features(x), source.features(x))
    with pytest.raises(PipelineInputError, match="not found"):
        PerceptualLoss3D(str(tmp_path / "missing.pth"))


def _resnet_state(body):
    names = ["conv1", "bn1", "act", "maxpool", "layer1", "layer2", "layer3", "layer4"]
    return {f"{names[int(k.split('.', 1)[0])]}.{k.split('.', 1)[1]}": v for k, v in body.state_dict().items()}


def test_factory_kinds_and_objective_from_config_section():
    assert build_perceptual_loss("none") is None
    with pytest.raises(ValueError):
        build_perceptual_loss("lpips")
    section = {"kind": "static25d", "initial_duration": 120, "factor": "2/3", "vgg_weights": "none",
               "vgg_layers": 4, "weights_3d": None, "slices_per_pass": 8, "alpha": 2.0, "beta": 1.0, "gamma": 0.25}
    with pytest.warns(UserWarning):
        objective = build_synthesis_loss(section)
    assert (objective.alpha, objective.beta, objective.gamma) == (2.0, 1.0, 0.25)
    loss = objective.perceptual
    assert isinstance(loss, PerceptualLoss25D) and loss.mode == "static25d" and len(loss.features) == 4
    assert loss.plane == "all" and loss.slices_per_pass == 8
    assert build_synthesis_loss({**section, "kind": "none"}).perceptual is None


def test_synthesis_loss_is_weighted_sum_of_mse_ssim_and_perceptual(vgg):
    torch.manual_seed(4)
    pred, target = torch.rand(1, 1, 16, 16, 16) * 2 - 1, torch.rand(1, 1, 16, 16, 16) * 2 - 1
    perceptual = PerceptualLoss25D("cyclic25d", features=vgg, initial_duration=1)
    total = SynthesisLoss3D(perceptual, alpha=1.0, beta=1.0, gamma=0.5)
    total.set_epoch(2)
    assert perceptual.plane == "sagittal"
    terms = total.terms(pred, target)
    torch.testing.assert_close(terms["mse"], F.mse_loss(pred, target))
    torch.testing.assert_close(terms["perceptual"], perceptual(pred, target))
    torch.testing.assert_close(terms["total"], terms["mse"] + terms["ssim"] + 0.5 * terms["perceptual"])
    assert 0.0 < float(terms["ssim"]) < 2.0
    assert float(SynthesisLoss3D(None)(target, target)) == pytest.approx(0.0, abs=1e-6)


def test_cyclic_plane_follows_the_training_loop_across_a_resume(tmp_path, vgg):
    """The loop sets the plane every epoch; a crashed and resumed run logs the same planes."""
    from mri2tau.train.loop import RunSettings, fit

    from mri2tau.models import registry

    hp = registry.get("unet3d").hparams("demo", image_size=[16, 16, 16], epochs=3, batch_size=1)
    data = [{"mri": torch.rand(1, 16, 16, 16) * 2 - 1, "pet": torch.rand(1, 16, 16, 16) * 2 - 1}]
    settings = RunSettings(device="cpu", progress_bar=False, log_every=0, deterministic=True)

    class Crash(RuntimeError):
        pass

    class CrashingLoss(PerceptualLoss25D):
        def set_epoch(self, epoch: int) -> None:
            if epoch == 2:
                raise Crash
            super().set_epoch(epoch)

    with pytest.raises(Crash):
        fit("unet3d", hp, data, tmp_path, settings,
            extra_loss=SynthesisLoss3D(CrashingLoss(features=vgg, initial_duration=1)))
    fit("unet3d", hp, data, tmp_path, settings, extra_loss=SynthesisLoss3D(PerceptualLoss25D(features=vgg, initial_duration=1)))
    metrics = pd.read_csv(tmp_path / "metrics.csv")
    assert metrics["epoch"].tolist() == [1, 2, 3]
    assert metrics["perceptual_plane"].tolist() == ["axial", "coronal", "sagittal"]


def test_separable_ssim_equals_monai_ssim_loss():
    from monai.losses import SSIMLoss

    from mri2tau.losses.ssim3d import ssim_loss_3d

    g = torch.Generator().manual_seed(0)
    pred = torch.rand(2, 1, 24, 20, 16, generator=g) * 2 - 1
    target = (0.6 * pred + 0.4 * torch.rand(2, 1, 24, 20, 16, generator=g)).clamp(-1, 1)
    ours, monai = ssim_loss_3d()(pred, target), SSIMLoss(spatial_dims=3, data_range=2.0)(pred, target)
    torch.testing.assert_close(ours, monai, atol=1e-5, rtol=1e-5)
    assert float(ssim_loss_3d()(target, target)) == pytest.approx(0.0, abs=1e-6)
