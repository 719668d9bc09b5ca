"""Synthesis time and memory per model for one test session, through the real synthesis path.

For each model (random weights at the chosen preset's widths): the template T1 at
``--resolution`` mm -> every axial slice of the padded grid (2D, batches of ``--batch``) or the
volume box (3D, sliding window) -> SUVR on the template grid. Prints parameters, forward passes,
inference seconds per session, seconds for the whole session (scaling, un-scaling included) and
the process's peak RSS / peak CUDA memory. Nothing is asserted.

    .venv/bin/python bench/synthesize.py                                   # demo widths, 4 mm, CPU
    .venv/bin/python bench/synthesize.py --preset paper --resolution 1 --device cuda
    .venv/bin/python bench/synthesize.py --models mcr_vqgan unet3d --out synth_bench.csv
"""

from __future__ import annotations

import argparse
import time
from dataclasses import asdict

import numpy as np
import pandas as pd
import torch

from mri2tau.data.geometry import volume_geometry
from mri2tau.device import resolve_device
from mri2tau.models import registry
from mri2tau.log import peak_rss_mb
from mri2tau.synthesize import LoadedModel, ModelScaling, SynthSettings, synthesize_suvr
from mri2tau.templates import load_template_mask, load_template_t1

MODELS = ("mcr_vqgan", "vqgan", "cgan", "wgan_gp", "cyclegan", "unet3d", "unetr", "swinunetr")


def bench_model(name: str, preset: str, resolution: float, device: torch.device, batch: int) -> dict:
    """One session through :func:`mri2tau.synthesize.synthesize_suvr` with model ``name``."""
    spec = registry.get(name)
    grid = int(round(256 / resolution))
    geometry = volume_geometry({"pad_multiple": 32}, resolution)
    hp = spec.hparams(preset, image_size=grid if spec.dims == 2 else list(geometry.shape))
    generator = spec.build(hp)["generator"].to(device).eval()
    scaling = ModelScaling((0.0, 3.5), (0.5, 99.5), True, grid if spec.dims == 2 else None,
                           geometry if spec.dims == 3 else None)
    model = LoadedModel(name, spec.dims, generator, hp, scaling, device)
    t1 = load_template_t1(resolution)
    brain = np.asarray(load_template_mask(resolution).dataobj) > 0
    start = time.perf_counter()
    _, timing = synthesize_suvr(model, t1, brain, SynthSettings(batch_size=batch))
    return {"model": name, "dims": spec.dims, "preset": preset, "resolution_mm": resolution, "device": device.type,
            "n_parameters": registry.count_parameters(generator), **timing,
            "session_s": time.perf_counter() - start, "peak_rss_mb": peak_rss_mb(),
            "grid_or_box": grid if spec.dims == 2 else "x".join(map(str, asdict(geometry)["shape"]))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS))
    parser.add_argument("--preset", default="demo", choices=("demo", "paper"))
    parser.add_argument("--resolution", type=float, default=4.0, help="template resolution (mm)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--batch", type=int, default=16, help="2D slices per forward pass")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", help="also write the table as CSV")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    rows = []
    for name in args.models:
        rows.append(bench_model(name, args.preset, args.resolution, device, args.batch))
        print(f"{name}: {rows[-1]['inference_s']:.3f} s inference", flush=True)
    print(pd.DataFrame(rows).to_string(index=False, float_format="{:.3f}".format))
    if args.out:
        pd.DataFrame(rows).to_csv(args.out, index=False)


if __name__ == "__main__":
    main()
