"""Session index: one TSV per split and stage listing each session's files.

``results/derivatives/mri2tau/sessions_split-<split>_desc-<stage>_index.tsv`` is written once
that stage's outputs exist for every session of the split. Rules that need all training or all
test sessions (harmonization fit, slices, volumes, synthesis, evaluation) depend on the index
instead of on thousands of files each: the DAG stays small (Snakemake handles every input edge
of every job), a rerun of any of those sessions still reruns them (the index is rewritten after
it), and a failed test subject blocks only what needs the test split. The table is also the
place to look up where a session's derivatives are.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from mri2tau.errors import PipelineInputError
from mri2tau.io.atomic import write_tsv_atomic

STAGE = "session_index"


def session_index(splits: pd.DataFrame, patterns: Mapping[str, str]) -> pd.DataFrame:
    """Rows of ``splits`` (sub, ses, ptid, dx, dx_group, manufacturer, split) plus one column per
    pattern (``{sub}``/``{ses}`` path templates, relative to the working directory).

    Fails with :class:`PipelineInputError` naming the first session whose file is missing.
    """
    frame = splits.copy()
    for column, pattern in patterns.items():
        paths = [pattern.format(sub=s, ses=v) for s, v in zip(frame["sub"], frame["ses"])]
        for (sub, ses), path in zip(zip(frame["sub"], frame["ses"]), paths):
            if not Path(path).is_file():
                raise PipelineInputError(
                    f"{column} is missing", subject=f"sub-{sub}_ses-{ses}", stage=STAGE, path=path,
                    fix="run the stage that writes it for this session (snakemake --rerun-incomplete)",
                )
        frame[column] = paths
    return frame


def write_session_index(
    *, splits: str | Path, split: str, patterns: Mapping[str, str], out: str | Path
) -> pd.DataFrame:
    """Write :func:`session_index` of the ``split`` rows of ``splits.tsv`` to ``out`` (TSV,
    atomically); return it."""
    table = pd.read_csv(splits, sep="\t", dtype=str, keep_default_na=False)
    frame = session_index(table[table["split"] == split].reset_index(drop=True), patterns)
    write_tsv_atomic(out, frame)
    return frame
