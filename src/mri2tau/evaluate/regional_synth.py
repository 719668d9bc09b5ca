"""Regional SUVR of every model's synthetic test PET (rule ``regional_synth``, one job per model).

The same regions and table layout as the measured PET's cohort tables
(:mod:`mri2tau.preprocess.regional_tables`), one row per test session, without partial-volume
correction (a model's output has no scanner PSF to undo). The named reference-region rows
(``CEREBELLAR_GM_SUVR``, ...) show how well a model kept the normalisation (1 in the reference).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from mri2tau.evaluate.run import read_synthetic, test_sessions
from mri2tau.preprocess.regional import region_atlas, region_descriptions, regional_values
from mri2tau.preprocess.regional_tables import SPLIT_COLUMNS, SUVR_DECIMALS, write_tables


def synthetic_regional_tables(
    *,
    synth_dir: str | Path,
    splits: str | Path,
    model: str,
    reference_region: str,
    out_wide: str | Path,
    out_long: str | Path,
    resolution_mm: float,
    erosion_vox: int = 1,
    template_path: str | None = None,
    template_mask: str | None = None,
) -> pd.DataFrame:
    """Write ``model``'s regional tables over the test sessions (wide + long, JSON dictionaries).

    ``reference_region``: the configured name or mask path, recorded in ``REFERENCE_REGION``.
    """
    atlas = region_atlas(resolution_mm, erosion_vox, template_path, template_mask)
    pieces = []
    for row in test_sessions(splits).itertuples():
        synth = read_synthetic(synth_dir, row.sub, row.ses, resolution_mm, model)
        table = regional_values(synth, atlas)[0].round({"suvr": SUVR_DECIMALS})
        session = {"participant_id": f"sub-{row.sub}", "session_id": f"ses-{row.ses}",
                   **{c: getattr(row, c) for c in SPLIT_COLUMNS if hasattr(row, c)}, "source": model,
                   "REFERENCE_REGION": reference_region}
        pieces.append(pd.concat([pd.DataFrame([session] * len(table)), table], axis=1))
    return write_tables(pd.concat(pieces, ignore_index=True), out_wide=out_wide, out_long=out_long,
                        regions=region_descriptions(atlas))
