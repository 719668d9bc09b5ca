"""Regional SUVR of one template-space volume: Braak ROIs, every Desikan-Killiany label, reference regions.

All images live on the template grid (:func:`mri2tau.templates.template_grid`); SUVR is unitless.
Regions (rows of :func:`regional_values`, in this order):

* ``composite``: Braak I-VI (:data:`mri2tau.templates.BRAAK_REGIONS`), the groupings
  ``braak34`` (III ∪ IV) and ``braak56`` (V ∪ VI), and ``meta_temporal``
  (:data:`mri2tau.templates.META_TEMPORAL_REGIONS`), each the union of its DK labels (both
  hemispheres): a voxel-weighted mean;
* ``cortical`` / ``subcortical``: every label of the Desikan-Killiany (FreeSurfer aseg + aparc)
  atlas, named as in FreeSurfer (``ctx-lh-entorhinal``, ``Left-Hippocampus``); labels without
  voxels on the grid have ``n_voxels`` 0 and no SUVR;
* ``reference``: each named reference region (:data:`mri2tau.templates.REFERENCE_REGIONS`)
  with the configured erosion, so a table shows the SUVR of the alternatives.

Atlas labels are restricted to the template brain mask; means use only voxels inside the PET
field of view (finite, SUVR > 0). With partial-volume correction (:mod:`mri2tau.preprocess.pvc`)
the GTM runs on a partition of the head: every DK label ∩ brain, the configured reference
region (taking its voxels from the labels it overlaps), the rest of the cerebellum (AAL
cerebellum and vermis) and of the cerebrum inside the brain mask, and two extracerebral shells
(CSF/meninges/skull within :data:`EXTRACEREBRAL_SHELLS_MM` of the brain, then skull/scalp).
A row's corrected SUVR is the voxel-weighted mean of the corrected values of the partition
regions it covers, divided by the corrected reference value.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import ndimage

from mri2tau.preprocess.pvc import gtm
from mri2tau.preprocess.suvr import named_reference
from mri2tau.templates import (
    AAL_CEREBELLUM,
    AAL_VERMIS,
    BRAAK_REGIONS,
    META_TEMPORAL_REGIONS,
    REFERENCE_REGIONS,
    dk_label_values,
    load_atlas,
    template_brain,
)

# Braak groupings reported by ADNI's UC Berkeley tau tables, besides the single stages.
GROUPINGS = {"braak34": ["braak3", "braak4"], "braak56": ["braak5", "braak6"]}
EXTRACEREBRAL_SHELLS_MM = (8.0, 24.0)  # outer edges (mm from the brain mask) of the two shells
PARTITION_EXTRA = ("rest_cerebellum", "rest_cerebrum", "extracerebral_inner", "extracerebral_outer")
REFERENCE_LABEL = "reference"


@dataclass(frozen=True)
class RegionAtlas:
    """The region set on one template grid (arrays: template grid, bool unless stated)."""

    voxel_mm: float
    brain: np.ndarray
    dk: np.ndarray  # int32 DK label map, 0 outside the brain mask
    dk_names: dict[int, str]  # label value -> FreeSurfer name, atlas table order
    composites: dict[str, list[int]]  # composite ROI -> its DK label values
    references: dict[str, np.ndarray]  # named reference region -> mask
    cerebellum: np.ndarray  # AAL cerebellum + vermis
    distance_mm: np.ndarray  # float32, distance from the brain mask (0 inside)


@functools.lru_cache(maxsize=2)
def region_atlas(resolution_mm: float, erosion_vox: int = 1, template_path: str | None = None,
                 template_mask: str | None = None) -> RegionAtlas:
    """The :class:`RegionAtlas` of a template grid (cached: a few hundred MB at 1 mm)."""
    brain = template_brain(resolution_mm, template_mask)
    dk_img, labels = load_atlas("desikan_killiany", resolution_mm)
    dk = np.where(brain, np.asarray(dk_img.dataobj), 0).astype(np.int32)
    dk_names = {int(i): str(n) for i, n in zip(labels["index"], labels["name"]) if int(i) != 0}
    stages = {stage: [v for r in regions for v in dk_label_values(labels, r)] for stage, regions in BRAAK_REGIONS.items()}
    groups = {name: [v for stage in members for v in stages[stage]] for name, members in GROUPINGS.items()}
    meta = [v for r in META_TEMPORAL_REGIONS for v in dk_label_values(labels, r)]
    aal, _ = load_atlas("aal", resolution_mm)
    return RegionAtlas(
        voxel_mm=float(resolution_mm), brain=brain, dk=dk, dk_names=dk_names,
        composites={**stages, **groups, "meta_temporal": meta},
        references={name: named_reference(name, resolution_mm, erosion_vox, template_path, template_mask)
                    for name in REFERENCE_REGIONS},
        cerebellum=np.isin(np.asarray(aal.dataobj), AAL_CEREBELLUM + AAL_VERMIS) & brain,
        distance_mm=(ndimage.distance_transform_edt(~brain) * resolution_mm).astype(np.float32),
    )


def gtm_partition(atlas: RegionAtlas, reference: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Label map (int32, 1..N; 0 = beyond the outer shell) and the N region names for the GTM."""
    names = list(atlas.dk_names.values())
    index = {value: i for i, value in enumerate(atlas.dk_names, start=1)}
    lut = np.zeros(max(index) + 1, np.int32)
    lut[list(index)] = list(index.values())
    part = lut[atlas.dk]
    rest = atlas.brain & (part == 0)
    inner, outer = EXTRACEREBRAL_SHELLS_MM
    extra = [rest & atlas.cerebellum, rest & ~atlas.cerebellum,
             (atlas.distance_mm > 0) & (atlas.distance_mm <= inner),
             (atlas.distance_mm > inner) & (atlas.distance_mm <= outer), reference]
    for name, mask in zip((*PARTITION_EXTRA, REFERENCE_LABEL), extra):
        names.append(name)
        part[mask] = len(names)
    return part, names


def _row_values(counts: np.ndarray, sums: np.ndarray) -> np.ndarray:
    return np.divide(sums, counts, out=np.full(counts.shape, np.nan), where=counts > 0)


def regional_values(suvr: np.ndarray, atlas: RegionAtlas, reference: np.ndarray | None = None,
                    pvc_fwhm_mm: float | None = None) -> tuple[pd.DataFrame, float | None]:
    """One row per region: ``region``, ``kind``, ``n_voxels`` (valid voxels), ``suvr`` (mean), and
    with ``pvc_fwhm_mm`` (the image's Gaussian FWHM on this grid, mm) ``suvr_pvc``.

    ``reference`` (needed for PVC): the configured reference region (bool, template grid).
    Returns the table and the GTM-corrected reference value of ``suvr`` (None without PVC), by
    which ``suvr_pvc`` is divided.
    """
    if suvr.shape != atlas.dk.shape:
        raise ValueError(f"SUVR {suvr.shape} is not on the atlas grid {atlas.dk.shape}")
    fov = np.isfinite(suvr) & (suvr > 0)
    valid = fov & atlas.brain
    size = int(atlas.dk.max()) + 1
    dk_counts = np.bincount(atlas.dk[valid], minlength=size)
    dk_sums = np.bincount(atlas.dk[valid], weights=suvr[valid].astype(np.float64), minlength=size)
    rows = [(name, "composite", dk_counts[v].sum(), dk_sums[v].sum()) for name, v in atlas.composites.items()]
    rows += [(name, "cortical" if name.startswith("ctx-") else "subcortical", dk_counts[v], dk_sums[v])
             for v, name in atlas.dk_names.items()]
    rows += [(name, "reference", int((m & fov).sum()), float(suvr[m & fov].sum())) for name, m in atlas.references.items()]
    table = pd.DataFrame(rows, columns=["region", "kind", "n_voxels", "sum"])
    table["n_voxels"] = table["n_voxels"].astype(int)
    table["suvr"] = _row_values(table["n_voxels"].to_numpy(float), table.pop("sum").to_numpy(float))
    if pvc_fwhm_mm is None:
        return table, None
    if reference is None or reference.shape != atlas.dk.shape:
        raise ValueError("partial-volume correction needs the reference region on the atlas grid")
    part, names = gtm_partition(atlas, reference)
    result = gtm(suvr, part, pvc_fwhm_mm, atlas.voxel_mm, valid=fov)
    values = np.nan_to_num(result.corrected)
    reference_value = float(result.corrected[len(names)])
    cross = np.bincount(atlas.dk[valid].astype(np.int64) * (len(names) + 1) + part[valid], minlength=size * (len(names) + 1))
    cross = cross.reshape(size, len(names) + 1)
    weights = [cross[v].sum(axis=0) for v in atlas.composites.values()]
    weights += [cross[v] for v in atlas.dk_names]
    weights += [np.bincount(part[m & fov], minlength=len(names) + 1) for m in atlas.references.values()]
    weights = np.asarray(weights, float)
    table["suvr_pvc"] = _row_values(weights.sum(axis=1), weights @ values) / reference_value
    return table, reference_value


def region_descriptions(atlas: RegionAtlas) -> dict[str, str]:
    """Region name -> its definition, for data dictionaries (every row of :func:`regional_values`)."""
    out = {name: "union of the Desikan-Killiany labels " + ", ".join(atlas.dk_names[v] for v in sorted(values))
           + " (in the brain mask)" for name, values in atlas.composites.items()}
    out.update({name: f"Desikan-Killiany label {value} (FreeSurfer aseg/aparc), in the brain mask"
                for value, name in atlas.dk_names.items()})
    out.update({name: f"reference-region candidate: {REFERENCE_REGIONS[name].definition}" for name in atlas.references})
    return out
