"""Synthetic native-space T1: the full-head template warped into the subject's head, with a
smooth multiplicative bias field, Rician noise and vendor-style integer storage."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mri2tau.demo.deform import SubjectDeformation, sample_template
from mri2tau.io.dicom_write import format_ds
from mri2tau.templates import load_template_t1

# Vendor storage: (numpy dtype, intensity of the template's 99th percentile after scaling)
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


def render_t1(deformation: SubjectDeformation, shape: tuple[int, int, int], vox2world: np.ndarray,
              vendor: str, voxel_mm: float, rng: np.random.Generator) -> T1Image:
    """Sample the template T1 (``voxel_mm`` grid) at every native voxel and add scanner effects.

    Native voxel -> native world (``vox2world``) -> template world (``deformation``) ->
    template voxel (trilinear). Then bias (+-15 %), Rician noise (sigma 2.5 % of the 99th
    percentile) and scaling/quantisation to the vendor's storage.
    """
    template = load_template_t1(voxel_mm)
    tpl_data = np.asarray(template.dataobj, dtype=np.float32)
    tpl_world = deformation.native_to_template_grid(shape, vox2world)
    signal = sample_template(tpl_data, template.affine, tpl_world)
    p99 = float(np.percentile(tpl_data, 99))
    signal *= bias_field(rng, shape, 0.15)
    sigma = 0.025 * p99
    noise = rng.standard_normal((2, *shape), dtype=np.float32) * sigma
    magnitude = np.sqrt((signal + noise[0]) ** 2 + noise[1] ** 2)
    dtype, target = _STORAGE[vendor]
    physical = magnitude * (target * float(rng.uniform(0.9, 1.1)) / p99)
    if vendor == "Philips":
        slope = format_ds(float(rng.uniform(0.3, 0.6)))
    else:
        slope = "1"
    limit = np.iinfo(dtype).max
    stored = np.clip(np.rint(physical / float(slope)), 0, limit).astype(dtype)
    params = {"bias_amplitude": 0.15, "noise_sigma_fraction": 0.025, "storage": np.dtype(dtype).name,
              "rescale_slope": slope}
    return T1Image(stored=stored, slope=slope, intercept="0", vox2world=vox2world,
                   native_to_template=np.moveaxis(tpl_world, 0, -1), params=params)
