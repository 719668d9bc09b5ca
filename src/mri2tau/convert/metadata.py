"""Dataset-level raw BIDS files: participants.tsv/.json, dataset_description.json, README, CHANGES."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd

from mri2tau import __version__
from mri2tau.convert.dcm2niix import dcm2niix_version
from mri2tau.io.atomic import write_json_atomic, write_text_atomic, write_tsv_atomic
from mri2tau.io.bids import PARTICIPANTS_COLUMNS, README_TEXT, dataset_description, participants_table


def write_bids_metadata(*, pairs_tsv: str | Path, participants_tsv: str | Path, participants_json: str | Path,
                        description_json: str | Path, readme: str | Path, changes: str | Path,
                        name: str, max_days: int) -> None:
    """Write the dataset-level files of the raw BIDS tree from the selected pairs."""
    pairs = pd.read_csv(pairs_tsv, sep="\t", dtype={"sub": str, "ses": str})
    write_tsv_atomic(participants_tsv, participants_table(pairs))
    write_json_atomic(participants_json, PARTICIPANTS_COLUMNS)
    write_json_atomic(description_json, dataset_description(name, dcm2niix_version()))
    write_text_atomic(readme, README_TEXT.format(name=name, max_days=max_days))
    write_text_atomic(changes, f"1.0.0 {dt.date.today().isoformat()}\n  - Converted from DICOM by mri2tau {__version__}.\n")
