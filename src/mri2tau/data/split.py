"""Subject-level train/test split, stratified by diagnosis, seeded; and the leakage check.

The split depends only on the pairs table (``results/convert/pairs.tsv``: one row per
selected MRI-PET session with ``sub, ses, ptid, dx, dx_group, manufacturer``; with
``data.sessions: all`` a subject has several), never on images, so reprocessing PET (another
reference region, another harmonization) keeps it. A subject is one unit: all its sessions go to
the same side, and its stratum is that of its first session.

Per stratum (default: baseline diagnosis ``dx`` = CN/SMC/EMCI/LMCI/AD) the number of test
subjects is ``n_stratum * test_fraction`` rounded by the largest-remainder method, so every
stratum is within one subject of its target and the total is ``round(n * test_fraction)``
(paper: 44 of 222).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from mri2tau.errors import PipelineInputError
from mri2tau.io.atomic import write_tsv_atomic
from mri2tau.io.cache import per_file_version
from mri2tau.log import get_logger

log = get_logger("data.split")

SPLIT_COLUMNS = ["sub", "ses", "ptid", "dx", "dx_group", "manufacturer", "split"]
MISSING_STRATUM = "n/a"


def allocate_test_counts(stratum_sizes: dict[str, int], test_fraction: float) -> dict[str, int]:
    """Test subjects per stratum: floor of each target plus the largest remainders.

    Each count is ``floor`` or ``ceil`` of ``size * test_fraction`` and they sum to
    ``round(total * test_fraction)`` (half up). Ties go to strata in sorted order.
    """
    if not 0.0 <= test_fraction < 1.0:
        raise ValueError(f"split.test_fraction must be in [0, 1), got {test_fraction}")
    targets = {s: n * test_fraction for s, n in stratum_sizes.items()}
    counts = {s: int(np.floor(t + 1e-9)) for s, t in targets.items()}
    total = int(np.floor(sum(stratum_sizes.values()) * test_fraction + 0.5 + 1e-9))
    by_remainder = sorted(targets, key=lambda s: (-(targets[s] - counts[s]), s))
    for s in by_remainder[: max(total - sum(counts.values()), 0)]:
        counts[s] += 1
    return counts


def subject_table(pairs: pd.DataFrame, stratify_by: Sequence[str]) -> pd.DataFrame:
    """One row per subject (its first session: earliest ``pet_date`` when the table has one, else
    the first ``ses`` label) with a ``stratum`` key built from ``stratify_by``."""
    missing = [c for c in ["sub", "ses", *stratify_by] if c not in pairs.columns]
    if missing:
        raise PipelineInputError(
            f"pairs table lacks column(s) {missing}", stage="split",
            fix="rerun the convert stage, or set split.stratify_by to existing columns",
        )
    order = ["sub", "pet_date", "ses"] if "pet_date" in pairs.columns else ["sub", "ses"]
    first = pairs.sort_values(order).drop_duplicates("sub").copy()
    keys = first[list(stratify_by)].astype("string").fillna(MISSING_STRATUM)
    first["stratum"] = keys.agg("|".join, axis=1)
    if (keys == MISSING_STRATUM).any(axis=None):
        log.warning("%d subject(s) have no %s; they form their own stratum",
                    int((keys == MISSING_STRATUM).any(axis=1).sum()), "/".join(stratify_by))
    return first


def stratified_split(
    pairs: pd.DataFrame, *, test_fraction: float, seed: int, stratify_by: Sequence[str] = ("dx",)
) -> pd.DataFrame:
    """Assign every session to ``train`` or ``test`` by subject (all sessions of a subject together).

    Within each stratum the subjects are sorted, then permuted with ``numpy.random.default_rng(seed)``
    (strata in sorted order), and the first ``allocate_test_counts`` of them go to test.
    Returns the pairs table restricted to :data:`SPLIT_COLUMNS` (missing ones as ``n/a``).
    """
    subjects = subject_table(pairs, stratify_by)
    sizes = subjects.groupby("stratum").size().to_dict()
    counts = allocate_test_counts(sizes, test_fraction)
    rng = np.random.default_rng(seed)
    test: set[str] = set()
    for stratum in sorted(sizes):
        members = np.sort(subjects.loc[subjects["stratum"] == stratum, "sub"].to_numpy())
        test.update(rng.permutation(members)[: counts[stratum]].tolist())
    out = pairs.copy()
    for column in SPLIT_COLUMNS[:-1]:
        if column not in out.columns:
            out[column] = ptid_from_sub(out["sub"]) if column == "ptid" else MISSING_STRATUM
    out["split"] = np.where(out["sub"].isin(test), "test", "train")
    log.info("split: %d train / %d test subjects; test per stratum %s",
             len(subjects) - len(test), len(test), counts)
    return out[SPLIT_COLUMNS].sort_values(["split", "sub", "ses"]).reset_index(drop=True)


def ptid_from_sub(subs: pd.Series) -> pd.Series:
    """ADNI PTID from the BIDS label (``002S0413`` -> ``002_S_0413``); other labels unchanged."""
    return subs.astype(str).str.replace(r"^(\d{3})S(\d{4})$", r"\1_S_\2", regex=True)


def check_no_leakage(splits: pd.DataFrame) -> None:
    """Raise :class:`PipelineInputError` if any subject (``sub`` or ``ptid``) is in both train and test."""
    bad_values = sorted(set(splits["split"]) - {"train", "test"})
    if bad_values:
        raise PipelineInputError(f"split column has values {bad_values}; only train/test allowed", stage="split")
    for key in ("sub", "ptid"):
        if key not in splits.columns:
            continue
        both = splits.groupby(key)["split"].nunique()
        leaked = sorted(both[both > 1].index.astype(str))
        if leaked:
            raise PipelineInputError(
                f"{len(leaked)} subject(s) in both train and test ({key}): {leaked[:10]}",
                stage="split", fix="rebuild results/splits.tsv with the split rule; never edit it by hand",
            )


def split_pairs_table(
    pairs: str | Path, *, test_fraction: float, seed: int, stratify_by: str | Sequence[str] = ("dx",)
) -> pd.DataFrame:
    """Read the pairs TSV and split it (:func:`stratified_split`), checked for leakage."""
    keys = [stratify_by] if isinstance(stratify_by, str) else list(stratify_by)
    table = pd.read_csv(pairs, sep="\t", dtype={"sub": str, "ses": str, "ptid": str})
    if table.empty:
        raise PipelineInputError("pairs table is empty: no subject to split", stage="split", path=pairs)
    twice = table[table.duplicated(["sub", "ses"], keep=False)]
    if not twice.empty:
        listed = sorted(set(zip(twice["sub"], twice["ses"], strict=True)))
        raise PipelineInputError(f"sessions listed twice in the pairs table: {listed}", stage="split", path=pairs,
                                 fix="rerun the select_series step; never edit pairs.tsv")
    splits = stratified_split(table, test_fraction=test_fraction, seed=seed, stratify_by=keys)
    check_no_leakage(splits)
    return splits


def sessions_in_split(
    pairs: str | Path, split: str, *, test_fraction: float, seed: int, stratify_by: str | Sequence[str] = ("dx",)
) -> list[tuple[str, str]]:
    """(sub, ses) of ``split`` (train/test): exactly the rows the ``split`` rule writes for it.

    For Snakemake input functions (they run while the DAG is built, before ``splits.tsv`` exists):
    the split is a deterministic function of the pairs table and the ``split`` settings, so the
    workflow needs no second checkpoint. Cached per version (path, mtime, size) of the table.
    """
    keys = (stratify_by,) if isinstance(stratify_by, str) else tuple(stratify_by)
    table = _cached_split(pairs, float(test_fraction), int(seed), keys)
    return [(sub, ses) for sub, ses, which in table if which == split]


@per_file_version(maxsize=8)
def _cached_split(pairs: str, test_fraction: float, seed: int,
                  stratify_by: tuple[str, ...]) -> tuple[tuple[str, str, str], ...]:
    splits = split_pairs_table(pairs, test_fraction=test_fraction, seed=seed, stratify_by=stratify_by)
    return tuple(zip(splits["sub"], splits["ses"], splits["split"]))


def write_splits(
    pairs: str | Path,
    out: str | Path,
    *,
    test_fraction: float,
    seed: int,
    stratify_by: str | Sequence[str] = ("dx",),
) -> pd.DataFrame:
    """Rule ``split``: read the pairs TSV, split, check leakage, write ``results/splits.tsv``."""
    splits = split_pairs_table(pairs, test_fraction=test_fraction, seed=seed, stratify_by=stratify_by)
    write_tsv_atomic(out, splits)
    return splits
