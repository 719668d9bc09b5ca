"""Image metrics must equal the reference libraries (scikit-image, torchmetrics) on the same arrays."""

from pathlib import Path

import numpy as np
import pytest
import torch
from skimage.metrics import mean_squared_error as sk_mse
from skimage.metrics import peak_signal_noise_ratio as sk_psnr
from skimage.metrics import structural_similarity as sk_ssim
from torchmetrics.functional.image import peak_signal_noise_ratio as tm_psnr
from torchmetrics.functional.image import structural_similarity_index_measure as tm_ssim

from mri2tau.evaluate import metrics

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def _pair(seed: int, shape=(48, 40)) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    real = rng.random(shape)
    fake = np.clip(real + 0.1 * rng.standard_normal(shape), 0, 1)
    return real, fake


def _tm_ssim_interior(real: np.ndarray, fake: np.ndarray) -> float:
    """torchmetrics' SSIM map averaged over the interior scikit-image uses."""
    _, full = tm_ssim(
        torch.tensor(fake)[None, None], torch.tensor(real)[None, None], data_range=1.0, return_full_image=True
    )
    full = full[0, 0].numpy()
    return float(full[5:-5, 5:-5].mean())


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_metrics_match_reference_libraries_on_random_arrays(seed):
    real, fake = _pair(seed)
    assert metrics.mse(real, fake) == pytest.approx(sk_mse(real, fake), abs=1e-12)
    assert metrics.psnr(real, fake) == pytest.approx(sk_psnr(real, fake, data_range=1.0), abs=1e-6)
    tm = tm_psnr(torch.tensor(fake), torch.tensor(real), data_range=1.0).item()
    assert metrics.psnr(real, fake) == pytest.approx(tm, abs=1e-6)
    ours = metrics.ssim(real, fake)
    ref = sk_ssim(real, fake, data_range=1.0, gaussian_weights=True, sigma=1.5, use_sample_covariance=False)
    assert ours == pytest.approx(ref, abs=1e-6)
    assert ours == pytest.approx(_tm_ssim_interior(real, fake), abs=1e-6)


def test_metrics_on_real_pet_pair():
    path = SHARED / "tcia_pet_slices"
    if not path.exists():
        pytest.skip(f"real test data not found at {path} (clone ../shared beside the repo)")
    import pydicom

    a = pydicom.dcmread(path / "1.dcm").pixel_array.astype(np.float64)
    b = pydicom.dcmread(path / "2.dcm").pixel_array.astype(np.float64)
    a, b = a / a.max(), b / b.max()
    assert metrics.ssim(a, b) == pytest.approx(_tm_ssim_interior(a, b), abs=1e-6)
    assert metrics.psnr(a, b) == pytest.approx(sk_psnr(a, b, data_range=1.0), abs=1e-6)


def test_identity_is_perfect_and_mask_restricts():
    real, fake = _pair(3)
    assert metrics.mse(real, real) == 0
    assert metrics.ssim(real, real) == pytest.approx(1.0)
    assert metrics.psnr(real, real) == float("inf")
    mask = np.zeros(real.shape, bool)
    mask[10:30, 10:30] = True
    corrupted = fake.copy()
    corrupted[~mask] = real[~mask]  # errors only inside the mask
    assert metrics.mse(real, corrupted, mask) > metrics.mse(real, corrupted)
    with pytest.raises(ValueError, match="empty mask"):
        metrics.mse(real, fake, np.zeros(real.shape, bool))


def test_unit_range_and_summary():
    assert metrics.to_unit_range(np.array([-1.0, 0.0, 1.75, 9.0]), (0.0, 3.5)).tolist() == [0.0, 0.0, 0.5, 1.0]
    vol_r = np.stack([_pair(s, (32, 32))[0] for s in range(3)], axis=2)
    vol_f = np.clip(vol_r + 0.05, 0, 1)
    frame = metrics.slice_metrics(vol_r, vol_f, [0, 2])
    assert frame["slice"].tolist() == [0, 2]
    assert frame["mse"].to_numpy() == pytest.approx(
        [metrics.mse(vol_r[..., 0], vol_f[..., 0]), metrics.mse(vol_r[..., 2], vol_f[..., 2])]
    )
    summary = metrics.summarize(frame, ["mse", "ssim"])
    assert summary["mse_mean"].iloc[0] == pytest.approx(frame["mse"].mean())
    assert summary["mse_std"].iloc[0] == pytest.approx(frame["mse"].std(ddof=1))
