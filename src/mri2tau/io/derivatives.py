"""BIDS-derivatives bookkeeping: the dataset description, BIDS URIs and one JSON sidecar per image.

The derivatives tree (``results/derivatives/mri2tau``) is a BIDS derivative dataset: its
``dataset_description.json`` says ``DatasetType: derivative``, who generated it (mri2tau and
its version) and where the raw data is (``SourceDatasets`` as the BIDS URI ``bids:raw:``, with
``DatasetLinks.raw`` the raw tree's path relative to the derivatives root). Sidecars name their
inputs as BIDS URIs: ``bids:raw:sub-X/...`` for a raw file, ``bids::sub-X/...`` (or
``bids::tpl-.../...``) for a file of this derivative dataset.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from mri2tau import __version__
from mri2tau.io.atomic import write_json_atomic, write_text_atomic
from mri2tau.io.bids import BIDS_VERSION, TRACER_NAME
from mri2tau.paths import sidecar

PIPELINE_NAME = "mri2tau"
UNITLESS = "unitless"

README_TEXT = """\
# mri2tau derivatives

BIDS derivative dataset written by mri2tau {version} from the raw BIDS tree `{raw}`.
Per session (`sub-*/ses-*/`): `anat/` N4-corrected T1w, its template-space version
(`space-{template}`), brain masks and the T1w<->template transforms; `pet/` the motion-corrected
frame mean (native and template space), SUVR and standardized SUVR in template space, the
reference-region statistics and the regional SUVR table (`desc-regional_stats.tsv`). Every
image has a JSON sidecar (Sources as BIDS URIs, Units, SpatialReference, reference region).
`tpl-{template}/`: the PET reference-region mask on the template grid.
`group/`: the cohort's regional SUVR tables (one row per session, wide and long, each with a
JSON data dictionary) and their figure. `sessions_split-*_desc-*_index.tsv`: each split's
sessions with their files per stage.
"""


def bids_uri(path: str | Path, dataset: str = "raw") -> str:
    """BIDS URI of a file of a BIDS dataset: ``bids:<dataset>:sub-X/...`` (``dataset`` "" = this one).

    The dataset-relative part starts at the first ``sub-*`` or ``tpl-*`` folder (else the file name).
    """
    parts = Path(path).parts
    start = next((i for i, part in enumerate(parts) if part.startswith(("sub-", "tpl-"))), len(parts) - 1)
    return f"bids:{dataset}:" + "/".join(parts[start:])


def sidecar_path(image: str | Path) -> Path:
    """``x.nii.gz`` / ``x.nii`` / ``x.tsv`` -> ``x.json`` (:func:`mri2tau.paths.sidecar`)."""
    return Path(sidecar(str(image)))


def image_sidecar(
    *,
    description: str,
    sources: Iterable[str],
    units: str | None = None,
    spatial_reference: str | None = None,
    resolution_mm: float | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """A derivative image's sidecar: Description, Sources (BIDS URIs), Units, SpatialReference, extras."""
    meta: dict[str, Any] = {"Description": description, "Sources": list(sources)}
    if units is not None:
        meta["Units"] = units
    if spatial_reference is not None:
        meta["SpatialReference"] = spatial_reference
    if resolution_mm is not None:
        meta["ResolutionMm"] = float(resolution_mm)
    meta.update(extra)
    return meta


def write_sidecar(image: str | Path, meta: dict[str, Any], out: str | Path | None = None) -> Path:
    """Write ``meta`` as the JSON sidecar of ``image`` (or to ``out``), atomically; return its path."""
    path = Path(out) if out is not None else sidecar_path(image)
    write_json_atomic(path, meta)
    return path


def pet_sidecar_meta(kind: str, *, sources: Iterable[str], template: str | None = None,
                     resolution_mm: float | None = None, **extra: Any) -> dict[str, Any]:
    """Sidecar of a PET derivative image ``kind``: ``mean`` (native frame mean), ``mean_template``,
    ``suvr``, ``suvrstd`` (see :data:`PET_IMAGE_KINDS` for descriptions and units)."""
    description, units = PET_IMAGE_KINDS[kind]
    return image_sidecar(description=description, sources=sources, units=units, spatial_reference=template,
                         resolution_mm=resolution_mm, TracerName=TRACER_NAME, **extra)


PET_IMAGE_KINDS: dict[str, tuple[str, str]] = {
    "mean": ("FrameDuration-weighted mean of the motion-corrected frames (frame 1 grid)", "Bq/mL"),
    "mean_template": ("frame mean in template space: ONE linear resampling through PET->T1 rigid, "
                      "T1->template affine and SyN warp", "Bq/mL"),
    "suvr": ("SUVR: template-space frame mean divided by the reference-region mean", UNITLESS),
    "suvrstd": ("SUVR standardized by manufacturer (harmonization.json; fitted on training subjects), "
                "after resolution matching when enabled", UNITLESS),
}


# anat images written by rule mri_preprocess besides the template-space T1w (which writes its own sidecar)
ANAT_IMAGE_KINDS: dict[str, tuple[str, dict[str, Any]]] = {
    "t1_n4": ("N4 bias-field corrected T1w (native grid)", {"Units": "arbitrary"}),
    "brain_mask_template": ("template brain mask on the template grid (holes filled)", {"Type": "Brain"}),
    "brain_mask_native": ("template brain mask pulled back to the native T1w grid (inverse SyN and affine, "
                          "nearest neighbour)", {"Type": "Brain"}),
}


def anat_sidecar_meta(kind: str, *, t1: str | Path, transforms: Iterable[str | Path], template: str,
                      resolution_mm: float) -> dict[str, Any]:
    """Sidecar of an anat derivative ``kind`` (:data:`ANAT_IMAGE_KINDS`); ``t1``: the raw T1w."""
    description, extra = ANAT_IMAGE_KINDS[kind]
    if kind == "t1_n4":
        return image_sidecar(description=description, sources=[bids_uri(t1)], **extra)
    if kind == "brain_mask_template":
        return image_sidecar(description=description, sources=[], spatial_reference=template,
                             resolution_mm=resolution_mm, **extra)
    return image_sidecar(description=description, sources=[bids_uri(t1)] + [bids_uri(x, "") for x in transforms],
                         **extra)


def dataset_description(raw_dir: str | Path, derivatives_dir: str | Path) -> dict[str, Any]:
    """``dataset_description.json`` of the derivatives tree (BIDS 1.9 derivative dataset)."""
    return {
        "Name": "mri2tau derivatives: template-space T1w and tau PET SUVR, regional SUVR tables",
        "BIDSVersion": BIDS_VERSION,
        "DatasetType": "derivative",
        "GeneratedBy": [{"Name": PIPELINE_NAME, "Version": __version__,
                         "Description": "MRI and tau PET preprocessing to template-space SUVR, regional SUVR"}],
        "SourceDatasets": [{"URL": "bids:raw:"}],
        "DatasetLinks": {"raw": os.path.relpath(raw_dir, derivatives_dir)},
    }


def write_dataset_description(*, description_json: str | Path, readme: str | Path, raw_dir: str | Path,
                              template: str) -> None:
    """Rule ``derivatives_description``: dataset_description.json and README of the derivatives tree."""
    root = Path(description_json).parent
    write_json_atomic(description_json, dataset_description(raw_dir, root))
    write_text_atomic(readme, README_TEXT.format(version=__version__, raw=os.path.relpath(raw_dir, root),
                                                 template=template))
