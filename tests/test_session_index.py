"""Session index (rule session_index): the split table + every session's file of a stage."""

from __future__ import annotations

import pandas as pd
import pytest

from mri2tau.errors import PipelineInputError
from mri2tau.io.session_index import write_session_index

SPLITS = pd.DataFrame({"sub": ["A1", "B2"], "ses": ["bl", "m12"], "ptid": ["1", "2"], "dx": ["CN", "AD"],
                       "dx_group": ["CN", "AD"], "manufacturer": ["GE", "Siemens"], "split": ["train", "test"]})


def test_index_lists_each_sessions_files_with_its_split(tmp_path):
    SPLITS.to_csv(tmp_path / "splits.tsv", sep="\t", index=False)
    pattern = str(tmp_path / "sub-{sub}_ses-{ses}_suvr.nii.gz")
    for sub, ses in [("A1", "bl"), ("B2", "m12")]:
        (tmp_path / f"sub-{sub}_ses-{ses}_suvr.nii.gz").touch()
    write_session_index(splits=tmp_path / "splits.tsv", split="test", patterns={"suvr": pattern},
                        out=tmp_path / "index.tsv")
    index = pd.read_csv(tmp_path / "index.tsv", sep="\t", dtype=str)
    assert list(index.columns) == [*SPLITS.columns, "suvr"]
    assert list(index["sub"]) == ["B2"] and list(index["split"]) == ["test"]
    assert index.loc[0, "suvr"] == str(tmp_path / "sub-B2_ses-m12_suvr.nii.gz")


def test_missing_file_names_the_session_and_writes_nothing(tmp_path):
    SPLITS.to_csv(tmp_path / "splits.tsv", sep="\t", index=False)
    (tmp_path / "sub-A1_ses-bl_suvr.nii.gz").touch()
    pattern = str(tmp_path / "sub-{sub}_ses-{ses}_suvr.nii.gz")
    write_session_index(splits=tmp_path / "splits.tsv", split="train", patterns={"suvr": pattern},
                        out=tmp_path / "train.tsv")  # the missing test session does not matter here
    with pytest.raises(PipelineInputError, match=r"(?s)sub-B2_ses-m12.*suvr is missing.*sub-B2_ses-m12_suvr"):
        write_session_index(splits=tmp_path / "splits.tsv", split="test", patterns={"suvr": pattern},
                            out=tmp_path / "test.tsv")
    assert not list(tmp_path.glob("test*"))
