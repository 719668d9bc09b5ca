"""``mri2tau synthesize``: one new T1 -> synthetic tau SUVR on its own grid, without Snakemake."""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import torch
from tqdm import tqdm

from mri2tau.errors import PipelineInputError
from mri2tau.log import get_logger
from mri2tau.synthesize.inference import synthesize_suvr
from mri2tau.synthesize.loading import STAGE, SynthSettings, infer_resolution, load_model
from mri2tau.synthesize.spaces import subject_scale_offset, template_to_native, write_synthetic

log = get_logger("synthesize")


def synthesize_scan(
    t1: str | Path,
    model_file: str | Path,
    out: str | Path,
    *,
    manufacturer: str | None = None,
    harmonization: str | Path | None = None,
    resolution_mm: float | None = None,
    registration: dict[str, Any] | None = None,
    out_template: str | Path | None = None,
    settings: SynthSettings = SynthSettings(),
    progress: bool = True,
) -> Path:
    """A new T1 (native NIfTI) -> synthetic tau SUVR on the same native grid, without Snakemake.

    Steps: N4, affine + SyN to the template and brain mask (the MRI stage's
    :func:`mri2tau.preprocess.mri.preprocess_t1`), inference, back to native space. With
    ``manufacturer`` and ``harmonization`` (the training run's ``harmonization.json``) the
    standardization is undone; without them the output stays on the pooled standardized scale.
    """
    from mri2tau.preprocess.mri import preprocess_t1

    if (manufacturer is None) != (harmonization is None):
        raise PipelineInputError("--manufacturer and --harmonization go together", stage=STAGE,
                                 fix="pass both (the scanner maker and the training run's harmonization.json) "
                                     "or neither")
    t1, out = Path(t1), Path(out)
    label = t1.name.split(".")[0]
    steps = tqdm(total=4, desc="mri2tau synthesize", disable=not progress)
    steps.set_postfix_str("loading model")
    model = load_model(model_file, settings.device)
    res = float(resolution_mm or infer_resolution(model))
    scale_offset = (1.0, 0.0)
    if harmonization is not None:
        params = json.loads(Path(harmonization).read_text())
        scale_offset = subject_scale_offset(params, manufacturer, label, "error")
    else:
        log.warning("no --manufacturer/--harmonization: output is standardized SUVR (pooled training scale)")
    steps.update()
    with tempfile.TemporaryDirectory(prefix="mri2tau_synth_") as wd:
        w = Path(wd)
        steps.set_postfix_str(f"N4 + registration to the {res:g} mm template")
        preprocess_t1(
            t1=t1, subject=label, session="scan", resolution_mm=res, registration=registration or {},
            t1_n4=w / "n4.nii.gz", t1_template=w / "t1_template.nii.gz", t1_template_json=w / "t1_template.json",
            brain_mask_template=w / "mask_template.nii.gz", brain_mask_native=w / "mask_native.nii.gz",
            xfm_affine=w / "affine.mat", xfm_warp=w / "warp.nii.gz", xfm_invwarp=w / "invwarp.nii.gz",
            qc_tsv=w / "qc.tsv", qc_png=w / "qc.png",
        )
        steps.update()
        steps.set_postfix_str("inference")
        t1_template = nib.load(w / "t1_template.nii.gz")
        brain = np.asarray(nib.load(w / "mask_template.nii.gz").dataobj) > 0
        suvr, timing = synthesize_suvr(model, t1_template, brain, settings, scale_offset)
        log.info("%s: inference %.2f s (%d passes)", label, timing["inference_s"], timing["n_passes"])
        steps.update()
        steps.set_postfix_str("back to native space")
        native = nib.load(t1)
        native_suvr = template_to_native(suvr, t1_template.affine, native, w / "affine.mat", w / "invwarp.nii.gz",
                                         settings.native_interpolation)
        write_synthetic(native_suvr.reshape(native.shape[:3]), native.affine, out)
        if out_template is not None:
            write_synthetic(suvr, t1_template.affine, out_template)
        steps.update()
    steps.close()
    return out


def _cli(args: argparse.Namespace) -> int:
    registration = None
    if args.config:
        from mri2tau.config import load_config

        registration = load_config(args.config).get("registration")
    settings = SynthSettings(batch_size=args.batch_size, device=args.device)
    torch.set_num_threads(max(int(args.threads), 1))
    out = synthesize_scan(
        args.t1, args.model, args.out, manufacturer=args.manufacturer, harmonization=args.harmonization,
        resolution_mm=args.resolution_mm, registration=registration, out_template=args.out_template,
        settings=settings,
    )
    print(out)
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """``mri2tau synthesize --t1 T1.nii.gz --model CKPT --out PET.nii.gz [...]``."""
    p = subparsers.add_parser(
        "synthesize", help="synthetic tau SUVR PET for one T1 (N4, registration, inference, native space)",
        description=synthesize_scan.__doc__.splitlines()[0],
    )
    p.add_argument("--t1", required=True, help="T1-weighted NIfTI (native space, skull on)")
    p.add_argument("--model", required=True, help="generator file: results/models/<model>/model.pt (or best.pt)")
    p.add_argument("--out", required=True, help="output SUVR NIfTI on the T1's grid")
    p.add_argument("--out-template", help="also write the template-space SUVR here")
    p.add_argument("--manufacturer", help="scanner manufacturer whose standardization to undo (e.g. Siemens)")
    p.add_argument("--harmonization", help="harmonization.json of the training run (with --manufacturer)")
    p.add_argument("--resolution-mm", type=float, help="template resolution the model was trained at "
                   "(default: stored in the model file, else inferred)")
    p.add_argument("--config", help="config.yaml whose `registration` section to use (default: built-in)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda (default auto)")
    p.add_argument("--batch-size", type=int, default=16, help="2D slices per forward pass (default 16)")
    p.add_argument("--threads", type=int, default=1, help="CPU threads for torch (default 1)")
    p.set_defaults(func=_cli)
