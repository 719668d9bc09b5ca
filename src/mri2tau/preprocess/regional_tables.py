"""Regional SUVR tables: one per session (rule ``regional_suvr``) and the cohort's (rule ``regional_group``).

Per session (``sub-X/ses-Y/pet/..._space-<TPL>_desc-regional_stats.tsv`` + ``.json``): one row
per region of :func:`mri2tau.preprocess.regional.regional_values` (``region``, ``kind``,
``n_voxels``, ``suvr``; ``suvr_pvc`` with ``pet.pvc: gtm``); the sidecar records the reference
region, its mean (Bq/mL) and voxels (from the ``suvr`` rule's stats), the manufacturer and the
partial-volume correction with its PSF.

Cohort (``group/regional_suvr_{wide,long}.tsv`` + a JSON data dictionary each): the long table
stacks the sessions' rows with the split's columns; the wide table has one row per session, like
ADNI's UC Berkeley tau tables: ``<REGION>_SUVR``, ``<REGION>_NVOX`` (template voxels used: the
atlas is in template space, so there is no subject-specific volume) and ``<REGION>_SUVR_PVC``
for every region, region names in capitals with ``-`` -> ``_`` (``BRAAK1``, ``BRAAK34``,
``META_TEMPORAL``, ``CTX_LH_ENTORHINAL``, ``LEFT_HIPPOCAMPUS``, ``INFERIOR_CEREBELLAR_GM``).

PSF for the GTM (template space): the manufacturer's scanner FWHM from
``harmonization.resolution_matching.scanner_fwhm_mm`` (the one place scanner resolutions are
configured) and the blur of the pipeline's linear resamplings of the PET grid
(``pet.pvc_resampling_fwhm_mm``; ``auto``: :func:`mri2tau.preprocess.pvc.resampling_fwhm_mm`
of the native PET voxel size), in quadrature.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pandas as pd

from mri2tau.errors import PipelineInputError
from mri2tau.io.atomic import write_json_atomic, write_tsv_atomic
from mri2tau.io.derivatives import UNITLESS, bids_uri, sidecar_path
from mri2tau.io.dicom import normalize_manufacturer
from mri2tau.log import get_logger
from mri2tau.preprocess.pvc import resampling_fwhm_mm, template_psf_fwhm_mm
from mri2tau.preprocess.regional import EXTRACEREBRAL_SHELLS_MM, region_atlas, region_descriptions, regional_values
from mri2tau.templates import TEMPLATE_NAME

log = get_logger("preprocess.regional")

STAGE = "regional_suvr"
SESSION_COLUMNS = {
    "region": "region name (composite ROI, FreeSurfer Desikan-Killiany label, or named reference region)",
    "kind": "composite | cortical | subcortical | reference",
    "n_voxels": "template-grid voxels averaged: the region inside the brain mask and the PET field of view",
    "suvr": "mean SUVR (unitless; reference region = 1)",
    "suvr_pvc": "partial-volume corrected SUVR (GTM), divided by the corrected reference value",
}
SPLIT_COLUMNS = ["ptid", "dx", "dx_group", "manufacturer", "split"]
SUVR_DECIMALS = 5


def pet_voxel_mm(pet_image: str | Path) -> float:
    """Mean voxel edge (mm) of a PET image's first three axes."""
    return float(np.mean(nib.load(pet_image).header.get_zooms()[:3]))


def session_psf(*, manufacturer: str, scanner_fwhm_mm: Mapping[str, float], resampling: str | float,
                pet_voxel: float, subject: str, path: str | Path) -> dict[str, float]:
    """The GTM's PSF for one session: scanner, resampling and total FWHM (mm)."""
    if manufacturer not in scanner_fwhm_mm:
        raise PipelineInputError(
            f"no scanner FWHM for manufacturer {manufacturer!r} (configured: {sorted(scanner_fwhm_mm)})",
            subject=subject, stage=STAGE, path=path,
            fix=f"add harmonization.resolution_matching.scanner_fwhm_mm.{manufacturer} (mm), or set pet.pvc: none")
    scanner = float(scanner_fwhm_mm[manufacturer])
    extra = resampling_fwhm_mm(pet_voxel) if resampling == "auto" else float(resampling)
    return {"ScannerFwhmMm": scanner, "ResamplingFwhmMm": round(extra, 4),
            "FwhmMm": round(template_psf_fwhm_mm(scanner, extra), 4)}


def session_regional(
    *,
    suvr: str | Path,
    stats: str | Path,
    reference_mask: str | Path,
    pet_sidecar: str | Path,
    pet_native: str | Path,
    out_tsv: str | Path,
    out_json: str | Path,
    subject: str,
    session: str,
    resolution_mm: float,
    erosion_vox: int = 1,
    template_path: str | None = None,
    template_mask: str | None = None,
    pvc: str = "none",
    pvc_resampling_fwhm_mm: str | float = "auto",
    scanner_fwhm_mm: Mapping[str, float] | None = None,
) -> pd.DataFrame:
    """Rule ``regional_suvr``: the regional SUVR table of one session (TSV + JSON sidecar).

    ``suvr``: SUVR_TEMPLATE; ``stats``: the ``suvr`` rule's reference stats TSV;
    ``reference_mask``: PET_REFERENCE_MASK; ``pet_sidecar``: the raw PET JSON (Manufacturer);
    ``pet_native``: the native frame mean (its voxel size sets the ``auto`` resampling blur).
    """
    label = f"sub-{subject}_ses-{session}"
    data = np.asarray(nib.load(suvr).dataobj, np.float32)
    reference = np.asarray(nib.load(reference_mask).dataobj) > 0
    atlas = region_atlas(resolution_mm, erosion_vox, template_path, template_mask)
    if data.shape != atlas.dk.shape:
        raise PipelineInputError(f"SUVR grid {data.shape} is not the {resolution_mm} mm template grid {atlas.dk.shape}",
                                 subject=label, stage=STAGE, path=suvr, fix="rerun the suvr rule at this resolution")
    ref_stats = pd.read_csv(stats, sep="\t").iloc[0]
    manufacturer = normalize_manufacturer(json.loads(Path(pet_sidecar).read_text()).get("Manufacturer"))
    meta: dict[str, Any] = {
        "Description": "regional tau SUVR in template space (Braak ROIs, Desikan-Killiany labels, reference regions)",
        "Sources": [bids_uri(suvr, ""), bids_uri(reference_mask, "")], "SpatialReference": TEMPLATE_NAME,
        "ResolutionMm": float(resolution_mm), "Units": UNITLESS, "Manufacturer": manufacturer,
        "ReferenceRegion": str(ref_stats["reference_region"]),
        "ReferenceMeanBqml": float(ref_stats["reference_mean_bqml"]),
        "ReferenceVoxels": int(ref_stats["reference_n_voxels"]),
        "PartialVolumeCorrection": "none",
    }
    psf = None
    if pvc == "gtm":
        psf = session_psf(manufacturer=manufacturer, scanner_fwhm_mm=scanner_fwhm_mm or {},
                          resampling=pvc_resampling_fwhm_mm, pet_voxel=pet_voxel_mm(pet_native), subject=label,
                          path=pet_sidecar)
    table, reference_value = regional_values(data, atlas, reference, psf["FwhmMm"] if psf else None)
    if psf:
        meta["PartialVolumeCorrection"] = {
            "Method": "GTM", "Reference": "Rousset et al. 1998, J Nucl Med 39:904", **psf,
            "ExtracerebralShellsMm": list(EXTRACEREBRAL_SHELLS_MM),
            "ReferenceCorrectedSUVR": reference_value,
        }
        log.info("%s: GTM with %.2f mm FWHM, corrected reference %.4f", label, psf["FwhmMm"], reference_value)
    table = table.round({"suvr": SUVR_DECIMALS, "suvr_pvc": SUVR_DECIMALS})
    table.insert(0, "session_id", f"ses-{session}")
    table.insert(0, "participant_id", f"sub-{subject}")
    write_tsv_atomic(out_tsv, table)
    write_json_atomic(out_json, {**meta, **{c: {"Description": d} for c, d in SESSION_COLUMNS.items()
                                            if c in table.columns}})
    return table


# ---------------------------------------------------------------- cohort tables
def column_stem(region: str) -> str:
    """Wide-table column stem of a region: capitals, ``-`` -> ``_`` (``ctx-lh-entorhinal`` -> ``CTX_LH_ENTORHINAL``)."""
    return region.upper().replace("-", "_")


def wide_table(long: pd.DataFrame, keys: Sequence[str]) -> pd.DataFrame:
    """One row per ``keys`` combination; per region ``<STEM>_SUVR``, ``<STEM>_NVOX`` (+ ``_SUVR_PVC``)."""
    values = [("suvr", "SUVR"), ("n_voxels", "NVOX")] + ([("suvr_pvc", "SUVR_PVC")] if "suvr_pvc" in long else [])
    regions = list(dict.fromkeys(long["region"]))
    pieces = {}
    for column, suffix in values:
        pivot = long.pivot(index=list(keys), columns="region", values=column)
        for region in regions:
            pieces[f"{column_stem(region)}_{suffix}"] = pivot[region]
    wide = pd.DataFrame(pieces)
    order = [f"{column_stem(r)}_{s}" for r in regions for _, s in values]
    return wide[order].reset_index()


def data_dictionary(columns: Sequence[str], descriptions: Mapping[str, str], regions: Mapping[str, str]) -> dict:
    """BIDS-style column descriptions for a regional table (``regions``: region -> definition)."""
    suffixes = {"_SUVR_PVC": ("partial-volume corrected (GTM) mean SUVR in", UNITLESS),
                "_SUVR": ("mean SUVR in", UNITLESS), "_NVOX": ("template-grid voxels averaged in", None)}
    by_stem = {column_stem(r): (r, d) for r, d in regions.items()}
    out: dict[str, Any] = {}
    for column in columns:
        if column in descriptions:
            out[column] = {"Description": descriptions[column]}
            continue
        for suffix, (text, units) in suffixes.items():
            if column.endswith(suffix) and column[: -len(suffix)] in by_stem:
                region, definition = by_stem[column[: -len(suffix)]]
                out[column] = {"Description": f"{text} {region}: {definition}"} | ({"Units": units} if units else {})
                break
    return out


GROUP_DESCRIPTIONS = {
    "participant_id": "BIDS subject label", "session_id": "BIDS session label",
    "ptid": "ADNI PTID", "dx": "baseline diagnosis (ADNIMERGE DX_bl)", "dx_group": "CN / MCI / AD",
    "manufacturer": "PET scanner manufacturer", "split": "train or test (results/splits.tsv)",
    "source": "real (measured PET) or the synthesis model",
    "REFERENCE_REGION": "reference region of the SUVR (pet.reference_region)",
    "REFERENCE_BQML": "reference-region mean of the template-space frame mean (Bq/mL)",
    "REFERENCE_NVOX": "reference-region voxels inside the PET field of view",
    "PVC": "partial-volume correction (none | GTM)", "PVC_FWHM_MM": "GTM point-spread function FWHM in template space (mm)",
    **SESSION_COLUMNS,
}


def _session_long(row: pd.Series) -> pd.DataFrame:
    table = pd.read_csv(row["regional_tsv"], sep="\t", keep_default_na=False, na_values=["n/a"])
    meta = json.loads(Path(row["regional_json"]).read_text())
    pvc = meta["PartialVolumeCorrection"]
    extra = {**{c: row[c] for c in SPLIT_COLUMNS if c in row}, "REFERENCE_REGION": meta["ReferenceRegion"], "REFERENCE_BQML": round(meta["ReferenceMeanBqml"], 3),
             "REFERENCE_NVOX": meta["ReferenceVoxels"], "PVC": pvc["Method"] if isinstance(pvc, dict) else pvc}
    if isinstance(pvc, dict):
        extra["PVC_FWHM_MM"] = pvc["FwhmMm"]
    front = table[["participant_id", "session_id"]]
    return pd.concat([front, pd.DataFrame([extra] * len(table)), table.drop(columns=list(front))], axis=1)


def write_tables(long: pd.DataFrame, *, out_wide: str | Path, out_long: str | Path,
                 regions: Mapping[str, str]) -> pd.DataFrame:
    """Write the long table and its wide form (one row per session), each with a JSON data dictionary.

    ``long``: session columns, then the :data:`SESSION_COLUMNS`; ``regions``: region -> definition.
    """
    long = long.sort_values(["participant_id", "session_id"], kind="stable").reset_index(drop=True)
    wide = wide_table(long, [c for c in long.columns if c not in SESSION_COLUMNS])
    for table, out in ((long, out_long), (wide, out_wide)):
        write_tsv_atomic(out, table)
        write_json_atomic(sidecar_path(out), data_dictionary(table.columns, GROUP_DESCRIPTIONS, regions))
    log.info("regional tables: %d sessions, %d regions, %d wide columns", len(wide), long["region"].nunique(),
             wide.shape[1])
    return wide


def write_group_tables(*, indexes: Sequence[str | Path], out_wide: str | Path, out_long: str | Path,
                       resolution_mm: float, erosion_vox: int = 1, template_path: str | None = None,
                       template_mask: str | None = None) -> pd.DataFrame:
    """Rule ``regional_group``: the cohort's wide and long tables (+ JSON data dictionaries).

    ``indexes``: the ``regional`` session indexes of every split (columns ``regional_tsv``,
    ``regional_json`` and the split table's). Returns the wide table.
    """
    rows = pd.concat([pd.read_csv(p, sep="\t", dtype=str, keep_default_na=False) for p in indexes], ignore_index=True)
    long = pd.concat([_session_long(row) for _, row in rows.iterrows()], ignore_index=True)
    regions = region_descriptions(region_atlas(resolution_mm, erosion_vox, template_path, template_mask))
    return write_tables(long, out_wide=out_wide, out_long=out_long, regions=regions)
