"""Synthetic native-space T1: the full-head template warped into the subject's head, with the
subject's sub-voxel tissue loss as CSF partial volume, a smooth multiplicative bias field, Rician
noise and vendor-style integer storage."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mri2tau.demo.deform import SubjectDeformation, sample_template
from mri2tau.io.dicom_write import format_ds
from mri2tau.templates import load_template_t1

# Vendor storage: (numpy dtype, intensity of the template's 99th percentile after scaling)
NOISE_FRACTION = 0.025  # Rician sigma / the template's 99th percentile
_STORAGE = {"Siemens": (np.uint16, 1100.0), "GE": (np.int16, 2600.0), "Philips": (np.uint16, 1500.0)}


@dataclass
class T1Image:
    """A rendered T1 on its native grid ``(shape, vox2world)``.

    ``stored``: integers as written to DICOM; ``slope``/``intercept``: DICOM RescaleSlope /
    RescaleIntercept strings (decoded intensity = stored * slope + intercept);
    ``native_to_template``: template world mm of every voxel centre, (*shape, 3) float32.
    """

    stored: np.ndarray
    slope: str
    intercept: str
    vox2world: np.ndarray
    native_to_template: np.ndarray
    params: dict

    @property
    def decoded(self) -> np.ndarray:
        """Intensities after rescaling (float32)."""
        return (self.stored * float(self.slope) + float(self.intercept)).astype(np.float32)


def bias_field(rng: np.random.Generator, shape: tuple[int, int, int], amplitude: float) -> np.ndarray:
    """Smooth multiplicative field exp(quadratic polynomial) on a grid, ~[1-a, 1+a] (float32)."""
    q = [np.linspace(-1.0, 1.0, n, dtype=np.float32) for n in shape]
    x, y, z = q[0][:, None, None], q[1][None, :, None], q[2][None, None, :]
    c = rng.uniform(-1.0, 1.0, 9) * amplitude / 3.0
    log_b = c[0] * x + c[1] * y + c[2] * z + c[3] * x * y + c[4] * y * z + c[5] * x * z
    log_b = log_b + c[6] * (x * x - 1 / 3) + c[7] * (y * y - 1 / 3) + c[8] * (z * z - 1 / 3)
    return np.exp(log_b).astype(np.float32)


def t1_signal(deformation: SubjectDeformation, shape: tuple[int, int, int], vox2world: np.ndarray,
              voxel_mm: float, csf_fraction: np.ndarray | None = None, csf_value: float = 0.0,
              ) -> tuple[np.ndarray, np.ndarray]:
    """Noise-free T1 on a grid and the template world mm of its voxel centres ((3, *shape)).

    Grid voxel -> world (``vox2world``) -> template world (``deformation``, exact at every voxel)
    -> template T1 (``voxel_mm`` grid, trilinear). ``csf_fraction`` (template grid, 0-1): share
    of each template voxel's tissue replaced by CSF of intensity ``csf_value`` (partial volume of
    sub-voxel atrophy, :mod:`mri2tau.demo.atrophy`), sampled the same way.
    """
    template = load_template_t1(voxel_mm)
    tpl_world = deformation.native_to_template_grid(shape, vox2world, exact=True)
    signal = sample_template(np.asarray(template.dataobj, dtype=np.float32), template.affine, tpl_world)
    if csf_fraction is not None:
        fraction = sample_template(csf_fraction, template.affine, tpl_world)
        signal += fraction * (np.float32(csf_value) - signal)
    return signal, tpl_world


def add_rician_noise(signal: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Magnitude of ``signal`` + complex Gaussian noise of sd ``sigma`` (float32)."""
    noise = rng.standard_normal((2, *signal.shape), dtype=np.float32) * np.float32(sigma)
    return np.sqrt((signal + noise[0]) ** 2 + noise[1] ** 2)


def render_t1(deformation: SubjectDeformation, shape: tuple[int, int, int], vox2world: np.ndarray,
              vendor: str, voxel_mm: float, rng: np.random.Generator, csf_fraction: np.ndarray | None = None,
              csf_value: float = 0.0) -> T1Image:
    """:func:`t1_signal` at every native voxel plus scanner effects: bias (+-15 %), Rician noise
    (sigma 2.5 % of the template's 99th percentile) and scaling/quantisation to the vendor's storage."""
    signal, tpl_world = t1_signal(deformation, shape, vox2world, voxel_mm, csf_fraction, csf_value)
    tpl_data = np.asarray(load_template_t1(voxel_mm).dataobj, dtype=np.float32)
    p99 = float(np.percentile(tpl_data, 99))
    signal *= bias_field(rng, shape, 0.15)
    magnitude = add_rician_noise(signal, NOISE_FRACTION * p99, rng)
    dtype, target = _STORAGE[vendor]
    physical = magnitude * (target * float(rng.uniform(0.9, 1.1)) / p99)
    if vendor == "Philips":
        slope = format_ds(float(rng.uniform(0.3, 0.6)))
    else:
        slope = "1"
    limit = np.iinfo(dtype).max
    stored = np.clip(np.rint(physical / float(slope)), 0, limit).astype(dtype)
    params = {"bias_amplitude": 0.15, "noise_sigma_fraction": NOISE_FRACTION, "storage": np.dtype(dtype).name,
              "rescale_slope": slope}
    return T1Image(stored=stored, slope=slope, intercept="0", vox2world=vox2world,
                   native_to_template=np.moveaxis(tpl_world, 0, -1), params=params)
