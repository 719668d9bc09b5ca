"""The clinical table: ADNIMERGE exports (dated names, VISCODE2, column case, date formats) and the
diagnosis mapping (known values only; a visit without a usable diagnosis is excluded, never guessed)."""

from __future__ import annotations

import datetime as dt
import os
import shutil

import pandas as pd
import pytest

from mri2tau.convert.select import select_series
from mri2tau.errors import PipelineInputError
from mri2tau.io import adni
from test_convert_select import PATTERNS, _tree


def _write(path, **columns) -> None:
    pd.DataFrame(columns).to_csv(path, index=False)


def test_newest_adnimerge_export_is_found_by_folder_or_pattern(tmp_path):
    for name in ("ADNIMERGE.csv", "ADNIMERGE_15Mar2023.csv", "ADNIMERGE_20Apr2024.csv", "other.csv"):
        (tmp_path / name).write_text("x\n")
    os.utime(tmp_path / "ADNIMERGE.csv", (2e9, 2e9))  # the newest file on disk, but undated
    assert adni.clinical_csv_path(tmp_path).name == "ADNIMERGE_20Apr2024.csv"
    assert adni.clinical_csv_path(tmp_path / "ADNIMERGE_*.csv").name == "ADNIMERGE_20Apr2024.csv"
    assert adni.clinical_csv_path(tmp_path / "ADNIMERGE.csv").name == "ADNIMERGE.csv"  # a file: as given
    with pytest.raises(PipelineInputError, match="clinical CSV not found"):
        adni.clinical_csv_path(tmp_path / "nothing*.csv")


def test_newer_export_columns_visit_codes_and_date_formats(tmp_path):
    path = tmp_path / "ADNIMERGE_2024-04-20.csv"
    _write(path, rid=[1, 1, 2], ptid=["002_S_0001", "002_S_0001", "002_S_0002"], viscode=["v02", "v04", "bl"],
           VISCODE2=["bl", "m12", ""], examdate=["7/1/2019", "6/30/2020", "1/2/2019"], age=[70.1, 70.1, 80],
           ptgender=["Female"] * 3, DX_bl=["EMCI", "", "CN"], dx=["MCI", "Dementia", "CN"])
    table = adni.read_clinical_csv(path)
    assert list(table[adni.VISIT]) == ["bl", "m12", "bl"]  # VISCODE2 where a row has one
    assert list(table["EXAMDATE"]) == [dt.date(2019, 7, 1), dt.date(2020, 6, 30), dt.date(2019, 1, 2)]  # US order
    rows = table[table["PTID"] == "002_S_0001"]
    visit = adni.nearest_visit(rows, dt.date(2020, 5, 1))
    assert visit[adni.VISIT] == "m12"
    assert adni.diagnosis(visit, rows) == ("EMCI", "MCI")  # DX_bl is the subject's, from its other row
    iso = adni.parse_exam_dates(pd.Series(["2019-07-01 00:00:00", "2020-01-31", None, "20210105", "01-Feb-2018"]))
    assert list(iso) == [dt.date(2019, 7, 1), dt.date(2020, 1, 31), None, dt.date(2021, 1, 5), dt.date(2018, 2, 1)]


@pytest.mark.parametrize("dx_bl, dx, expected", [
    ("CN", None, ("CN", "CN")), ("SMC", "CN", ("SMC", "MCI")), ("EMCI", None, ("EMCI", "MCI")),
    ("LMCI", "MCI", ("LMCI", "MCI")), ("AD", "Dementia", ("AD", "AD")), (" ad ", None, ("AD", "AD")),
    (None, "CN", ("CN", "CN")), (None, "MCI", ("MCI", "MCI")), (None, "Dementia", ("Dementia", "AD")),
    ("Alzheimer", "Dementia", "unknown DX_bl 'Alzheimer'"), (None, "MCI to Dementia", "unknown DX 'MCI to Dementia'"),
    (None, None, "no diagnosis"),
])
def test_diagnosis_maps_known_values_and_never_guesses(dx_bl, dx, expected):
    visit = pd.Series({"DX_bl": dx_bl if dx_bl is not None else pd.NA, "DX": dx if dx is not None else pd.NA})
    if isinstance(expected, tuple):
        assert adni.diagnosis(visit) == expected
    else:
        with pytest.raises(adni.DiagnosisError, match=expected):
            adni.diagnosis(visit)


def test_unknown_diagnosis_excludes_the_visit_with_its_reason(tmp_path):
    root = _tree(tmp_path)
    for ptid in ("002_S_0004", "002_S_0005"):
        shutil.copytree(root / "ADNI" / "002_S_0001", root / "ADNI" / ptid)
    (root / "ADNIMERGE.csv").unlink()
    _write(root / "ADNIMERGE_01Jan2025.csv", RID=[1, 4, 5], PTID=["002_S_0001", "002_S_0004", "002_S_0005"],
           VISCODE=["v02"] * 3, VISCODE2=["bl", "bl", "sc"], EXAMDATE=["02/20/2020"] * 3, AGE=[71.5, 60, 65],
           PTGENDER=["Male"] * 3, DX_bl=["Alzheimer", "", "LMCI"], DX=["Dementia", "", "MCI"])
    pairs = select_series(dicom_root=root / "ADNI", clinical_csv=root, pairs_tsv=tmp_path / "p.tsv",
                          excluded_tsv=tmp_path / "e.tsv", max_days=100, pet_n_frames=1, **PATTERNS)
    assert list(zip(pairs["sub"], pairs["ses"], pairs["dx"], pairs["dx_group"])) == [("002S0005", "sc", "LMCI", "MCI")]
    excluded = pd.read_csv(tmp_path / "e.tsv", sep="\t", dtype=str)
    reasons = excluded[excluded["category"] == "diagnosis"].set_index("ptid")["reason"]
    assert "unknown DX_bl 'Alzheimer'" in reasons["002_S_0001"] and "never guessed" in reasons["002_S_0001"]
    assert "no diagnosis" in reasons["002_S_0004"]
    assert set(excluded.loc[excluded["kind"] == "subject", "ptid"]) >= {"002_S_0001", "002_S_0004"}
