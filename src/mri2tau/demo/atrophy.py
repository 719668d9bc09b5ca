"""Disease- and age-coupled atrophy of a demo subject: why its T1 predicts its tau.

Each subject loses tissue where its tau sits, as in Alzheimer's disease: medial temporal
structures first (hippocampus, amygdala, entorhinal and parahippocampal cortex), then inferior /
middle temporal + fusiform and parietal cortex; the lateral ventricles enlarge. The fractional
tissue loss of region r (one hemisphere) is

    L_r = tau_coef_r * e_r + age_coef_r * (age - 70) / 10 + noise_sd_r * (0.3 z_subject + 0.95 z_r)

with ``e_r`` the subject's tau elevation (SUVR above the tissue level) in the Braak stage that
drives the region, in that hemisphere (:func:`mri2tau.demo.anatomy.subject_suvr`), ``age`` in
years and ``z`` standard normal draws (one shared by all regions of the subject, one per region),
clipped to [-0.10, 0.45]. The ventricles grow by ``-L`` (their ``tau_coef`` is negative), driven
by the mean Braak I-IV elevation.

The loss is split between two scales, ``(1 - L) = J * (1 - f)``:

* macro-scale, through the deformation: a smooth displacement (template mm) whose divergence is
  the target log-Jacobian inside each region (Poisson equation on the deformation lattice, zero at
  its border, three calibration passes on region means), ``J = (1 - L) ** (1 - pv_share)``; composed
  *before* the subject's random warp, so ``template_to_native`` stays one lattice displacement;
* sub-voxel, through tissue partial volume: a fraction ``f = 1 - (1 - L) ** pv_share`` of the
  region's voxels is CSF (thinner cortex, wider sulci), i.e. the T1 there is
  ``(1 - f) * T1_template + f * T1_csf`` (:func:`mri2tau.demo.t1.render_t1`). Registration cannot
  undo this part, so it survives into template space.

The tau map is not changed by the partial volume (the tracer map is per tissue); it moves with
the anatomy through the deformation, as the T1 does.

Regional volume change in ``truth/sub-*/atrophy.tsv`` (see docs/demo-cohort.md): the model's
target, the achieved atrophy-only change and the change including the random warp (what a
volumetric tool would measure on the native T1).
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pandas as pd
from scipy import ndimage as ndi
from scipy.fft import dstn, idstn

from mri2tau.demo.deform import Lattice, grid_points
from mri2tau.templates import load_atlas, load_template_t1, roi_masks, template_grid

STREAM_ATROPHY = 101  # subject_rng stream of the atrophy noise (apart from the clinical module's)
CALIBRATION_MM = 2.0  # template grid on which region means are calibrated (any cohort voxel size)
AGE_CENTRE_YEARS = 70.0
LOSS_RANGE = (-0.10, 0.45)
SHARED_NOISE = 0.3  # weight of the subject-level noise term (regions are otherwise independent)
HEMISPHERES = {"lh": ("ctx-lh-", "Left-"), "rh": ("ctx-rh-", "Right-")}
TSV_COLUMNS = ("region", "hemi", "stage", "tau_elevation", "loss_target", "jacobian_target", "pv_fraction",
               "jacobian_atrophy", "jacobian_total", "volume_change_atrophy", "volume_change_total")


@dataclass(frozen=True)
class AtrophyRegion:
    """One atrophying region (per hemisphere) and how strongly tau, age and chance shrink it.

    labels: Desikan-Killiany names (cortical ``ctx-?h-<name>`` or aseg ``Left/Right-<name>``).
    stages: Braak stage(s) whose mean tau elevation drives it. tau_coef: fractional loss per
    SUVR unit of elevation (negative: growth). age_coef: fractional loss per decade above 70.
    noise_sd: sd of the random part. pv_share: share of the loss below the voxel scale.
    """

    name: str
    labels: tuple[str, ...]
    stages: tuple[str, ...]
    tau_coef: float
    age_coef: float
    noise_sd: float
    pv_share: float


# AD vs CN in ADNI: hippocampus -20..-25 %, entorhinal / amygdala ~-20 %, temporal -10 %,
# parietal -5..-8 %, ventricles +50..+80 % (the AD elevations of anatomy.BRAAK_ELEVATION give these).
REGIONS: tuple[AtrophyRegion, ...] = (
    AtrophyRegion("hippocampus", ("Hippocampus",), ("braak2",), 0.30, 0.04, 0.06, 0.6),
    AtrophyRegion("amygdala", ("Amygdala",), ("braak3",), 0.18, 0.03, 0.05, 0.6),
    AtrophyRegion("entorhinal", ("entorhinal",), ("braak1",), 0.20, 0.03, 0.05, 0.8),
    AtrophyRegion("parahippocampal", ("parahippocampal",), ("braak3",), 0.13, 0.02, 0.04, 0.8),
    AtrophyRegion("temporal", ("inferiortemporal", "middletemporal", "fusiform"), ("braak4",), 0.11, 0.02,
                  0.025, 0.9),
    AtrophyRegion("parietal", ("inferiorparietal", "supramarginal", "superiorparietal", "precuneus"),
                  ("braak5",), 0.12, 0.02, 0.025, 0.9),
    AtrophyRegion("ventricles", ("Lateral-Ventricle", "Inf-Lat-Vent"), ("braak1", "braak2", "braak3", "braak4"),
                  -0.60, -0.25, 0.15, 0.0),
)


@dataclass
class SubjectAtrophy:
    """One subject's atrophy: per-region targets (table), the lattice displacement and the
    partial-volume map.

    table: one row per (region, hemi) with the :data:`TSV_COLUMNS` known so far.
    u: (3, *lattice.shape) displacement (template mm) of the atrophy alone.
    """

    table: pd.DataFrame
    u: np.ndarray
    lattice: Lattice

    def pv_fraction(self, voxel_mm: float) -> np.ndarray:
        """CSF fraction ``f`` per template voxel (template grid at ``voxel_mm``, float32)."""
        out = np.zeros(template_grid(voxel_mm)[0], np.float32)
        for row in self.table.itertuples():
            out[region_mask(row.region, row.hemi, voxel_mm)] = row.pv_fraction
        return out


# ---------------------------------------------------------------- masks
def _region(name: str) -> AtrophyRegion:
    return next(r for r in REGIONS if r.name == name)


@functools.lru_cache(maxsize=64)
def region_mask(name: str, hemi: str, voxel_mm: float) -> np.ndarray:
    """Bool mask of region ``name`` in hemisphere ``hemi`` (lh/rh) on the template grid."""
    dk_img, labels = load_atlas("desikan_killiany", voxel_mm)
    ctx, aseg = HEMISPHERES[hemi]
    names = {f"{prefix}{label}" for label in _region(name).labels for prefix in (ctx, aseg)}
    values = labels.loc[labels["name"].isin(names), "index"].astype(int).tolist()
    if not values:
        raise KeyError(f"Desikan-Killiany has no labels for region {name!r}")
    return np.isin(np.asarray(dk_img.dataobj), values)


@functools.lru_cache(maxsize=4)
def csf_intensity(voxel_mm: float) -> float:
    """Template T1 intensity of CSF: median over the (eroded) lateral ventricles."""
    t1 = np.asarray(load_template_t1(voxel_mm).dataobj, np.float32)
    vent = region_mask("ventricles", "lh", voxel_mm) | region_mask("ventricles", "rh", voxel_mm)
    core = ndi.binary_erosion(vent)
    return float(np.median(t1[core if core.sum() >= 10 else vent]))


def _lattice_mask(name: str, hemi: str, lattice: Lattice) -> np.ndarray:
    """Fractional region mask at the lattice nodes (the 2 mm mask smoothed to the lattice scale)."""
    return _lattice_mask_cached(name, hemi, tuple(lattice.origin), lattice.spacing, lattice.shape)


@functools.lru_cache(maxsize=32)
def _lattice_mask_cached(name: str, hemi: str, origin: tuple[float, ...], spacing: float,
                         shape: tuple[int, int, int]) -> np.ndarray:
    lattice = Lattice(origin=np.array(origin), spacing=spacing, shape=shape)
    mask = region_mask(name, hemi, CALIBRATION_MM).astype(np.float32)
    smooth = ndi.gaussian_filter(mask, 0.5 * spacing / CALIBRATION_MM)
    _, affine = template_grid(CALIBRATION_MM)
    vox = (lattice.points() - affine[:3, 3].reshape(3, 1, 1, 1)) / CALIBRATION_MM
    return ndi.map_coordinates(smooth, vox.reshape(3, -1), order=1, mode="constant").reshape(shape)


# ---------------------------------------------------------------- the model
def regional_targets(rng: np.random.Generator, braak_elevation: dict[str, float], age: float) -> pd.DataFrame:
    """Per (region, hemi): tau elevation driving it, target loss ``L``, Jacobian and PV targets."""
    shared = float(rng.standard_normal())
    rows = []
    for region in REGIONS:
        for hemi in HEMISPHERES:
            e = float(np.mean([braak_elevation[f"{s}_{hemi}"] for s in region.stages]))
            noise = SHARED_NOISE * shared + np.sqrt(1 - SHARED_NOISE**2) * float(rng.standard_normal())
            loss = region.tau_coef * e + region.age_coef * (age - AGE_CENTRE_YEARS) / 10 + region.noise_sd * noise
            loss = float(np.clip(loss, *LOSS_RANGE) if region.tau_coef > 0 else np.clip(loss, -1.0, -LOSS_RANGE[0]))
            share = region.pv_share if loss > 0 else 0.0  # growth is all macro-scale (no negative CSF)
            rows.append({"region": region.name, "hemi": hemi, "stage": "+".join(region.stages), "tau_elevation": e,
                         "loss_target": loss, "jacobian_target": (1 - loss) ** (1 - share),
                         "pv_fraction": 1 - (1 - loss) ** share})
    return pd.DataFrame(rows)


def poisson_displacement(source: np.ndarray, spacing: float) -> np.ndarray:
    """Gradient (3, *shape) of phi with Laplacian(phi) = ``source`` and phi = 0 on the border:
    a curl-free displacement whose divergence is ``source`` (discrete sine transform solve)."""
    eig = np.zeros(source.shape)
    for axis, n in enumerate(source.shape):
        lam = (2 * np.cos(np.pi * np.arange(1, n + 1) / (n + 1)) - 2) / spacing**2
        shape = [1, 1, 1]
        shape[axis] = n
        eig = eig + lam.reshape(shape)
    phi = idstn(dstn(source, type=1) / eig, type=1)
    return np.stack(np.gradient(phi, spacing)).astype(np.float32)


def jacobian_determinant(u: np.ndarray, spacing: float) -> np.ndarray:
    """det(I + grad u) of a displacement field (3, *shape) sampled with ``spacing`` mm."""
    grad = np.stack([np.stack(np.gradient(u[c], spacing)) for c in range(3)])  # (3, 3, *shape)
    grad += np.eye(3, dtype=grad.dtype).reshape(3, 3, 1, 1, 1)
    return np.linalg.det(np.moveaxis(grad, (0, 1), (-2, -1)))


@functools.lru_cache(maxsize=4)
def _regions_box(voxel_mm: float) -> tuple[slice, ...]:
    """Bounding box (template grid, 2 voxels margin) of every atrophy region."""
    union = np.any([region_mask(r.name, h, voxel_mm) for r in REGIONS for h in HEMISPHERES], axis=0)
    lo, hi = np.argwhere(union).min(0) - 2, np.argwhere(union).max(0) + 3
    return tuple(slice(max(int(a), 0), min(int(b), n)) for a, b, n in zip(lo, hi, union.shape))


def regional_jacobian(lattice: Lattice, u: np.ndarray, table: pd.DataFrame, voxel_mm: float) -> np.ndarray:
    """Mean det(I + grad u) over each (region, hemi) row's template voxels (``voxel_mm`` grid) =
    native volume / template volume of the region under the displacement ``u`` (lattice field)."""
    shape, affine = template_grid(voxel_mm)
    box = _regions_box(voxel_mm)
    corner = affine.copy()
    corner[:3, 3] = affine[:3, :3] @ [b.start for b in box] + affine[:3, 3]
    det = jacobian_determinant(lattice.sample(u, grid_points(tuple(b.stop - b.start for b in box), corner)), voxel_mm)
    return np.array([det[region_mask(r.region, r.hemi, voxel_mm)[box]].mean() for r in table.itertuples()])


def atrophy_displacement(table: pd.DataFrame, lattice: Lattice, passes: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Lattice displacement whose regional mean Jacobians approach ``table.jacobian_target``.

    The source (divergence) is the sum of the regions' smoothed masks times a log-Jacobian
    weight; after each solve each weight moves by the log ratio of target to achieved region
    mean (on the :data:`CALIBRATION_MM` grid), divided by the region's response (achieved /
    weight). Returns (u, achieved mean Jacobians).
    """
    masks = [_lattice_mask(r.region, r.hemi, lattice) for r in table.itertuples()]
    target = np.log(table["jacobian_target"].to_numpy())
    weights = target.copy()
    for _ in range(passes):
        u = poisson_displacement(sum(w * m for w, m in zip(weights, masks)), lattice.spacing)
        achieved = np.log(regional_jacobian(lattice, u, table, CALIBRATION_MM))
        # a region's mean responds to its own weight with a gain < 1 (the mask is smoothed)
        gain = np.clip(np.divide(achieved, weights, out=np.ones_like(weights), where=np.abs(weights) > 1e-3),
                       0.3, 1.5)
        weights += (target - achieved) / gain
    u = poisson_displacement(sum(w * m for w, m in zip(weights, masks)), lattice.spacing)
    return u, regional_jacobian(lattice, u, table, CALIBRATION_MM)


def subject_atrophy(rng: np.random.Generator, braak_elevation: dict[str, float], age: float,
                    lattice: Lattice) -> SubjectAtrophy:
    """Targets, displacement and achieved (2 mm grid) Jacobians of one subject's atrophy."""
    table = regional_targets(rng, braak_elevation, age)
    u, achieved = atrophy_displacement(table, lattice)
    table["jacobian_atrophy"] = achieved
    table["volume_change_atrophy"] = achieved * (1 - table["pv_fraction"]) - 1
    return SubjectAtrophy(table=table, u=u, lattice=lattice)


def volume_table(atrophy: SubjectAtrophy, total_u: np.ndarray, voxel_mm: float) -> pd.DataFrame:
    """The atrophy table completed with the region means of the whole template -> native mapping
    (``total_u``: atrophy then random warp, on the cohort's ``voxel_mm`` grid)."""
    table = atrophy.table.copy()
    table["jacobian_total"] = regional_jacobian(atrophy.lattice, total_u, table, voxel_mm)
    table["volume_change_total"] = table["jacobian_total"] * (1 - table["pv_fraction"]) - 1
    return table[list(TSV_COLUMNS)]


# ---------------------------------------------------------------- the cohort's MRI-tau link
def link_row(table: pd.DataFrame, suvr: np.ndarray, suvr_vendor: np.ndarray, voxel_mm: float) -> dict[str, float]:
    """One subject's native hippocampal and ventricle volumes (mL, both hemispheres: template
    volume x (1 + volume_change_total) of its :func:`volume_table`) and Braak I-II (entorhinal
    + hippocampus) mean of its true SUVR (``braak12_suvr``) and of the vendor-blurred SUVR
    (``braak12_suvr_vendor``: what a perfect pipeline measures), all on the ``voxel_mm`` grid."""
    rois = roi_masks(voxel_mm)
    braak12 = rois["braak1"] | rois["braak2"]
    ml = voxel_mm**3 / 1000.0
    out = {}
    for region in ("hippocampus", "ventricles"):
        part = table[table["region"] == region]
        out[f"{region}_ml"] = float(sum(region_mask(region, r.hemi, voxel_mm).sum() * ml * (1 + r.volume_change_total)
                                        for r in part.itertuples()))
    out["braak12_suvr"] = float(suvr[braak12].mean())
    out["braak12_suvr_vendor"] = float(suvr_vendor[braak12].mean())
    return out


def subject_link(seed: int, index: int, n_subjects: int, voxel_mm: float) -> dict[str, Any]:
    """:func:`link_row` of subject ``index`` of a ``seed`` cohort computed without rendering any
    image (the same SUVR, atrophy and deformation the generator draws), with its diagnosis."""
    from mri2tau.demo import anatomy
    from mri2tau.demo.clinical import STREAM_GEOMETRY, STREAM_SUVR, plan_subject, subject_rng
    from mri2tau.demo.deform import random_deformation, template_lattice

    plan = plan_subject(seed, index, n_subjects)
    suvr, params = anatomy.subject_suvr(subject_rng(seed, index, STREAM_SUVR), plan.dx_bl, voxel_mm)
    vendor, _ = anatomy.vendor_suvr(suvr, anatomy.VENDORS[plan.manufacturer], voxel_mm)
    atrophy = subject_atrophy(subject_rng(seed, index, STREAM_ATROPHY), params["braak_elevation"], plan.age,
                              template_lattice())
    deformation, _ = random_deformation(subject_rng(seed, index, STREAM_GEOMETRY), before=atrophy.u)
    link = link_row(volume_table(atrophy, deformation.u, voxel_mm), suvr, vendor, voxel_mm)
    return {"sub": plan.sub, "dx_bl": plan.dx_bl, "dx_group": plan.dx_group, **link}


def cohort_link(truth_dir: str | Path) -> pd.DataFrame:
    """:func:`link_row` for every subject of a generated cohort (its ``truth/`` folder), with
    ``sub``, ``dx_bl`` and ``dx_group``."""
    truth = Path(truth_dir)
    voxel_mm = float(json.loads((truth / "generator.json").read_text())["voxel_mm"])
    cohort = pd.read_csv(truth / "cohort.tsv", sep="\t", dtype={"sub": str})
    rows = []
    for row in cohort.itertuples():
        folder = truth / f"sub-{row.sub}"
        suvr = [np.asarray(nib.load(folder / f"{name}.nii.gz").dataobj)
                for name in ("suvr_template", "suvr_template_blurred")]
        link = link_row(pd.read_csv(folder / "atrophy.tsv", sep="\t"), *suvr, voxel_mm)
        rows.append({"sub": row.sub, "dx_bl": row.dx_bl, "dx_group": row.dx_group, **link})
    return pd.DataFrame(rows)
