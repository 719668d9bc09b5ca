"""Rule ``synthesize``: every test session of the split -> synthetic SUVR (template + native) and ``timing.tsv``."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from mri2tau.data.geometry import volume_geometry
from mri2tau.data.slices import read_splits
from mri2tau.errors import PipelineInputError
from mri2tau.io.atomic import write_tsv_atomic
from mri2tau.io.nifti import load_grid_image
from mri2tau.log import get_logger, peak_rss_mb
from mri2tau.models.registry import count_parameters
from mri2tau.paths import TIMING_NAME, synth_name
from mri2tau.synthesize.inference import synthesize_suvr
from mri2tau.synthesize.loading import STAGE, SynthSettings, load_model
from mri2tau.synthesize.spaces import subject_scale_offset, template_to_native, write_synthetic
from mri2tau.templates import TEMPLATE_NAME, template_grid

log = get_logger("synthesize")

TIMING_COLUMNS = ("model", "dims", "sub", "ses", "device", "n_parameters", "n_passes", "inference_s", "total_s",
                  "peak_rss_mb", "peak_gpu_mb")


def synthesize_model(
    *,
    model_file: str | Path,
    splits: str | Path,
    t1_pattern: str,
    mask_pattern: str,
    t1w_pattern: str | None,
    affine_pattern: str | None,
    invwarp_pattern: str | None,
    harmonization: str | Path | None,
    out_dir: str | Path,
    resolution_mm: float,
    settings: dict[str, Any],
    slices_config: dict[str, Any],
    volumes_config: dict[str, Any],
    on_unknown_manufacturer: str = "error",
    template_mask_path: str | None = None,
    threads: int | None = None,
) -> pd.DataFrame:
    """Rule ``synthesize``: every test session of ``splits`` -> ``out_dir`` (template + native
    SUVR NIfTIs and ``timing.tsv``). Patterns: the shared path patterns with ``{sub}``/``{ses}``
    (T1_TEMPLATE, BRAIN_MASK_TEMPLATE, T1W, XFM_AFFINE, XFM_INVWARP); ``t1w_pattern`` None writes
    the template-space volumes only (in-process benchmarks). Returns the timing table."""
    if threads:
        torch.set_num_threads(int(threads))
    cfg = SynthSettings.from_config(settings)
    geometry = volume_geometry(volumes_config, resolution_mm, template_mask_path)
    model = load_model(model_file, cfg.device, slices_config, geometry)
    shape, affine = template_grid(resolution_mm)
    params = json.loads(Path(harmonization).read_text()) if harmonization else None
    table = read_splits(splits)
    test = table[table["split"] == "test"].sort_values(["sub", "ses"])
    if test.empty:
        raise PipelineInputError("no test session in the split table", stage=STAGE, path=splits,
                                 fix="set split.test_fraction > 0 and rerun the split rule")
    out_dir = Path(out_dir)
    rows = []
    for row in tqdm(list(test.itertuples()), desc=f"synthesize {model.name}", disable=None):
        label = f"sub-{row.sub}_ses-{row.ses}"
        fmt = {"sub": row.sub, "ses": row.ses}
        start = time.perf_counter()
        t1_img = load_grid_image(t1_pattern.format(**fmt), "template-space T1", label, shape, affine, stage=STAGE)
        brain = np.asarray(load_grid_image(mask_pattern.format(**fmt), "brain mask", label, shape, affine,
                                           stage=STAGE).dataobj) > 0
        scale_offset = subject_scale_offset(params, row.manufacturer, label, on_unknown_manufacturer)
        suvr, timing = synthesize_suvr(model, t1_img, brain, cfg, scale_offset)
        write_synthetic(suvr, affine, out_dir / synth_name(row.sub, row.ses, TEMPLATE_NAME))
        if t1w_pattern is not None:
            native = nib.load(t1w_pattern.format(**fmt))
            native_suvr = template_to_native(suvr, affine, native, affine_pattern.format(**fmt),
                                             invwarp_pattern.format(**fmt), cfg.native_interpolation)
            write_synthetic(native_suvr, native.affine, out_dir / synth_name(row.sub, row.ses, "T1w"))
        rows.append({"model": model.name, "dims": model.dims, "sub": row.sub, "ses": row.ses,
                     "device": model.device.type,
                     "n_parameters": count_parameters(model.generator), **timing,
                     "total_s": time.perf_counter() - start, "peak_rss_mb": peak_rss_mb()})
        log.info("%s: %s, %d passes, %.2f s inference", label, model.name, timing["n_passes"], timing["inference_s"])
    frame = pd.DataFrame(rows, columns=list(TIMING_COLUMNS))
    write_tsv_atomic(out_dir / TIMING_NAME, frame)
    return frame
