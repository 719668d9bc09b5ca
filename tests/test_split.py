"""Stratified subject-level split: per-diagnosis proportions, no leakage, reproducible, leak detection."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mri2tau.data.split import (
    SPLIT_COLUMNS,
    allocate_test_counts,
    check_no_leakage,
    sessions_in_split,
    stratified_split,
    write_splits,
)
from mri2tau.errors import PipelineInputError

PAPER_COUNTS = {"CN": 72, "EMCI": 45, "LMCI": 31, "SMC": 62, "AD": 12}  # ADNI-3, 222 pairs
PAPER_FRACTION = 44 / 222
GROUP = {"CN": "CN", "SMC": "CN", "EMCI": "MCI", "LMCI": "MCI", "AD": "AD"}


def paper_pairs(extra_sessions: int = 0) -> pd.DataFrame:
    """A pairs table shaped like the paper cohort; ``extra_sessions`` subjects get a second visit."""
    rows, i = [], 0
    for dx, n in PAPER_COUNTS.items():
        for _ in range(n):
            sub = f"{i:03d}S{4000 + i:04d}"
            rows.append({"sub": sub, "ses": "bl", "ptid": f"{i:03d}_S_{4000 + i:04d}", "dx": dx,
                         "dx_group": GROUP[dx], "manufacturer": ["Siemens", "GE", "Philips"][i % 3]})
            i += 1
    table = pd.DataFrame(rows)
    second = table.iloc[:extra_sessions].assign(ses="m12")
    return pd.concat([table, second], ignore_index=True)


def test_paper_cohort_proportions_within_one_subject_of_target():
    splits = stratified_split(paper_pairs(), test_fraction=PAPER_FRACTION, seed=0)
    assert list(splits.columns) == SPLIT_COLUMNS
    per_dx = splits[splits["split"] == "test"].groupby("dx").size()
    for dx, n in PAPER_COUNTS.items():
        assert abs(per_dx.get(dx, 0) - n * PAPER_FRACTION) < 1.0, dx
    assert (splits["split"] == "test").sum() == 44 and (splits["split"] == "train").sum() == 178


def test_zero_overlap_and_all_sessions_of_a_subject_together():
    splits = stratified_split(paper_pairs(extra_sessions=30), test_fraction=0.2, seed=3)
    assert len(splits) == 252
    assert splits.groupby("sub")["split"].nunique().max() == 1
    assert not set(splits.loc[splits.split == "train", "ptid"]) & set(splits.loc[splits.split == "test", "ptid"])
    check_no_leakage(splits)


def test_same_seed_same_split_other_seed_other_split():
    a = stratified_split(paper_pairs(), test_fraction=0.2, seed=7)
    b = stratified_split(paper_pairs().sample(frac=1.0, random_state=1), test_fraction=0.2, seed=7)
    c = stratified_split(paper_pairs(), test_fraction=0.2, seed=8)
    pd.testing.assert_frame_equal(a, b)  # row order of the input does not matter
    assert set(a.loc[a.split == "test", "sub"]) != set(c.loc[c.split == "test", "sub"])


def test_planted_overlap_fails_the_check():
    splits = stratified_split(paper_pairs(), test_fraction=0.2, seed=0)
    leaked = splits[splits.split == "test"].iloc[[0]].assign(ses="m12", split="train")
    with pytest.raises(PipelineInputError, match=r"1 subject\(s\) in both train and test"):
        check_no_leakage(pd.concat([splits, leaked], ignore_index=True))
    bad = splits.copy()
    bad.loc[0, "split"] = "validation"
    with pytest.raises(PipelineInputError, match="validation"):
        check_no_leakage(bad)


def test_largest_remainder_allocation():
    counts = allocate_test_counts(PAPER_COUNTS, PAPER_FRACTION)
    assert counts == {"CN": 14, "EMCI": 9, "LMCI": 6, "SMC": 12, "AD": 3}
    assert allocate_test_counts({"A": 5, "B": 5}, 0.0) == {"A": 0, "B": 0}
    with pytest.raises(ValueError):
        allocate_test_counts({"A": 5}, 1.0)


def test_stratify_by_two_columns_and_missing_diagnosis():
    pairs = paper_pairs()
    pairs.loc[:4, "dx"] = np.nan
    splits = stratified_split(pairs, test_fraction=0.25, seed=1, stratify_by=["dx_group", "manufacturer"])
    test = splits[splits.split == "test"]
    for (group, vendor), n in pairs.groupby(["dx_group", "manufacturer"]).size().items():
        got = ((test.dx_group == group) & (test.manufacturer == vendor)).sum()
        assert abs(got - n * 0.25) < 1.0
    assert splits["dx"].isna().sum() == 5  # kept, not invented


def test_write_splits_reads_pairs_and_writes_tsv(tmp_path):
    pairs_path = tmp_path / "pairs.tsv"
    paper_pairs().drop(columns=["ptid"]).to_csv(pairs_path, sep="\t", index=False)
    out = tmp_path / "splits.tsv"
    written = write_splits(pairs_path, out, test_fraction=PAPER_FRACTION, seed=0, stratify_by="dx")
    back = pd.read_csv(out, sep="\t", dtype=str)
    assert list(back.columns) == SPLIT_COLUMNS and len(back) == 222
    assert back.loc[back["sub"] == "000S4000", "ptid"].item() == "000_S_4000"  # PTID rebuilt from the label
    assert (back["split"] == "test").sum() == (written["split"] == "test").sum() == 44
    with pytest.raises(PipelineInputError, match="lacks column"):
        write_splits(pairs_path, tmp_path / "x.tsv", test_fraction=0.2, seed=0, stratify_by="site")
    assert not (tmp_path / "x.tsv").exists()


def test_sessions_in_split_are_the_rows_the_split_rule_writes(tmp_path):
    """Input functions take a split's sessions from sessions_in_split (no second checkpoint): it
    must give exactly splits.tsv's rows, and follow a rewritten pairs table or new settings."""
    pairs_path = tmp_path / "pairs.tsv"
    paper_pairs(extra_sessions=5).to_csv(pairs_path, sep="\t", index=False)
    written = write_splits(pairs_path, tmp_path / "splits.tsv", test_fraction=PAPER_FRACTION, seed=3, stratify_by="dx")
    for split in ("train", "test"):
        rows = written[written["split"] == split]
        assert sessions_in_split(pairs_path, split, test_fraction=PAPER_FRACTION, seed=3,
                                 stratify_by=["dx"]) == list(zip(rows["sub"], rows["ses"]))
    other_seed = sessions_in_split(pairs_path, "test", test_fraction=PAPER_FRACTION, seed=4, stratify_by="dx")
    assert other_seed != list(zip(*[written.loc[written["split"] == "test", c] for c in ("sub", "ses")]))
    paper_pairs().iloc[:100].to_csv(pairs_path, sep="\t", index=False)  # a new selection
    both = [sessions_in_split(pairs_path, s, test_fraction=0.2, seed=3, stratify_by="dx") for s in ("train", "test")]
    assert sum(map(len, both)) == 100 and len(both[1]) == 20


def test_longitudinal_pairs_split_by_subject_with_the_first_visit_stratum(tmp_path):
    """data.sessions: all: sessions_in_split (the workflow's input functions) keeps every visit of a subject on
    one side; the stratum is the earliest visit's (by PET date, not the label: m108 sorts before m48)."""
    pairs = paper_pairs(extra_sessions=40).assign(pet_date="2019-01-01")
    later = pairs["ses"] == "m12"
    pairs.loc[later, ["ses", "pet_date", "dx"]] = ["m108", "2024-01-01", "AD"]  # a later visit, another DX
    pairs.loc[~later, "ses"] = "m48"
    path = tmp_path / "pairs.tsv"
    pairs.to_csv(path, sep="\t", index=False)
    kwargs = dict(test_fraction=0.2, seed=5, stratify_by=("dx",))
    train, test = (sessions_in_split(path, s, **kwargs) for s in ("train", "test"))
    assert len(train) + len(test) == len(pairs) and not {s for s, _ in train} & {s for s, _ in test}
    splits = stratified_split(pairs, **kwargs)
    per_dx = splits[(splits["split"] == "test") & (splits["ses"] == "m48")].groupby("dx").size()
    assert per_dx.get("CN", 0) == round(PAPER_COUNTS["CN"] * 0.2)  # baseline DX decides (AD would shift it)
    pd.concat([pairs, pairs.iloc[:1]]).to_csv(path, sep="\t", index=False)
    with pytest.raises(PipelineInputError, match="listed twice"):
        sessions_in_split(path, "train", **kwargs)
