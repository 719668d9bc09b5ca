"""Training/inference speed of every 2D model, through the real family steps of the training loop.

For each model (paper-preset widths by default) and image size: parameter counts, seconds per
training step at the preset batch size (one warm-up step, then ``--steps`` timed), training
slices/s, inference slices/s (generator only, eval mode, batch ``--infer-batch``) and peak
memory (CPU: peak RSS of a fresh child process per measurement; CUDA: peak allocated). The
VGG16 perceptual term uses random weights (same cost as ImageNet weights). A pix2pix U-Net
deeper than the image allows (paper: 8 downsamplings = 256 px) is made shallower for small
sizes, and the table says so.

    .venv/bin/python bench/train_step.py                          # CPU, 64 and 256 px, 2D models
    .venv/bin/python bench/train_step.py --device cuda --steps 20 # on a GPU (bf16 autocast)
    .venv/bin/python bench/train_step.py --models mcr_vqgan cgan --sizes 64 --out bench.csv
    .venv/bin/python bench/train_step.py 3d                       # 3D models: see main_3d (64^3 CPU)

Figures go to stdout (and ``--out`` as CSV); nothing here is asserted.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import sys
import time
import warnings

import pandas as pd
import torch

from mri2tau.log import peak_rss_mb
from mri2tau.models import registry
from mri2tau.train.loop import build_parts, resolve_device

TWO_D = ("mcr_vqgan", "mcr_vqgan_ms", "mcr_vqgan_ms_res", "vqgan", "cgan", "wgan_gp", "cyclegan")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def measure(model: str, preset: str, size: int, device_name: str, steps: int, infer_batch: int,
            amp: str, threads: int) -> dict:
    """One (model, size, device) measurement; runs in its own process on CPU."""
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    device = resolve_device(device_name)
    spec = registry.get(model)
    hp = spec.hparams(preset, image_size=size)
    note = ""
    if "num_downs" in hp and 2 ** int(hp["num_downs"]) > size:  # U-Net depth must fit the image
        note = f"num_downs {hp['num_downs']} -> {size.bit_length() - 1} to fit {size} px"
        hp["num_downs"] = size.bit_length() - 1
    extra = None
    if float(hp.get("lambda_perc", 0.0)) > 0:
        from mri2tau.losses.perceptual import VGGPerceptualLoss

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            extra = VGGPerceptualLoss(weights="none")
    parts = build_parts(model, hp, device, amp, extra)
    batch = int(hp["batch_size"])
    mri = (torch.rand(batch, 1, size, size, device=device) * 2 - 1).to(memory_format=parts.memory_format)
    pet = torch.tanh(2 * mri)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    parts.family.train_step(mri, pet, parts.context(0.0, 0))  # warm-up (allocations, cuDNN autotune)
    _sync(device)
    start = time.perf_counter()
    for step in range(1, steps + 1):
        parts.family.train_step(mri, pet, parts.context(step / (steps + 1), step))
    _sync(device)
    step_s = (time.perf_counter() - start) / steps

    generator = parts.nets["generator"].eval()
    x = (torch.rand(infer_batch, 1, size, size, device=device) * 2 - 1).to(memory_format=parts.memory_format)
    with torch.no_grad(), parts.autocast():
        parts.family.generate(x)  # warm-up
        _sync(device)
        start = time.perf_counter()
        for _ in range(max(steps, 1)):
            parts.family.generate(x)
        _sync(device)
    infer_s = (time.perf_counter() - start) / max(steps, 1)

    if device.type == "cuda":
        peak_mb = torch.cuda.max_memory_allocated() / 2**20
    else:
        peak_mb = peak_rss_mb()
    return {
        "model": model,
        "device": torch.cuda.get_device_name() if device.type == "cuda" else f"cpu x{threads}",
        "size_px": size,
        "batch": batch,
        "generator_params_M": round(registry.count_parameters(generator) / 1e6, 2),
        "total_params_M": round(sum(registry.count_parameters(n) for n in parts.nets.values()) / 1e6, 2),
        "s_per_step": round(step_s, 4),
        "train_slices_per_s": round(batch / step_s, 2),
        "infer_slices_per_s": round(infer_batch / infer_s, 2),
        "peak_mem_mb": round(peak_mb),
        "note": note,
    }


def _child(queue: mp.Queue, kwargs: dict) -> None:
    try:
        queue.put(measure(**kwargs))
    except Exception as exc:  # noqa: BLE001 - report and go on with the next model
        queue.put({"model": kwargs["model"], "size_px": kwargs["size"], "error": repr(exc)})


def run_isolated(**kwargs) -> dict:
    """:func:`measure` in a fresh process so the CPU peak RSS belongs to this measurement only."""
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_child, args=(queue, kwargs))
    proc.start()
    result = queue.get()
    proc.join()
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(TWO_D))
    parser.add_argument("--preset", default="paper", choices=["paper", "demo"])
    parser.add_argument("--sizes", nargs="+", type=int, default=[64, 256])
    parser.add_argument("--device", default="cpu", help="cpu | cuda | auto")
    parser.add_argument("--steps", type=int, default=3, help="timed training steps (64 px on CPU)")
    parser.add_argument("--steps-large", type=int, default=1, help="timed steps for sizes >= 256 on CPU")
    parser.add_argument("--infer-batch", type=int, default=16)
    parser.add_argument("--amp", default="bf16", choices=["bf16", "fp16", "none"], help="CUDA only")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--out", help="also write the table as CSV")
    args = parser.parse_args(argv)

    rows = []
    for model in args.models:
        for size in args.sizes:
            cpu = resolve_device(args.device).type == "cpu"
            steps = args.steps_large if cpu and size >= 256 else args.steps
            kwargs = dict(model=model, preset=args.preset, size=size, device_name=args.device, steps=steps,
                          infer_batch=args.infer_batch if not cpu or size < 256 else 2, amp=args.amp,
                          threads=args.threads)
            row = run_isolated(**kwargs) if cpu else measure(**kwargs)
            print(row, file=sys.stderr, flush=True)
            rows.append(row)
    table = pd.DataFrame(rows)
    print(table.to_string(index=False))
    if args.out:
        table.to_csv(args.out, index=False)
    return 0


# ---------------------------------------------------------------- 3D models (issue 5)
#     .venv/bin/python bench/train_step.py 3d                                  # CPU, 64^3, cyclic25d
#     .venv/bin/python bench/train_step.py 3d --device cuda --sizes 128 160 --steps 5
#     .venv/bin/python bench/train_step.py 3d --perceptual static25d none --models unet3d
THREE_D = ("unet3d", "unetr", "swinunetr", "pix2pix3d", "cyclegan3d")


def measure_3d(model: str, preset: str, size: int, device_name: str, steps: int, amp: str, threads: int,
               perceptual: str) -> dict:
    """One 3D training step measurement: batch 1 of ``size``^3, the 3D synthesis objective with
    ``perceptual`` (VGG16 features[:23], random weights: same cost as ImageNet ones)."""
    from mri2tau.losses.ssim3d import build_synthesis_loss

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    device = resolve_device(device_name)
    hp = registry.get(model).hparams(preset, image_size=[size] * 3, batch_size=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        objective = build_synthesis_loss({"kind": perceptual, "vgg_weights": "none", "vgg_layers": 23})
    parts = build_parts(model, hp, device, amp, objective)
    parts.family.set_epoch(0)
    mri = torch.rand(1, 1, size, size, size, device=device) * 2 - 1
    pet = torch.tanh(2 * mri)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    parts.family.train_step(mri, pet, parts.context(0.0, 0))  # warm-up
    _sync(device)
    start = time.perf_counter()
    for step in range(1, steps + 1):
        losses = parts.family.train_step(mri, pet, parts.context(step / (steps + 1), step))
    _sync(device)
    step_s = (time.perf_counter() - start) / steps
    peak_mb = (torch.cuda.max_memory_allocated() / 2**20 if device.type == "cuda"
               else peak_rss_mb())
    return {
        "model": model,
        "device": torch.cuda.get_device_name() if device.type == "cuda" else f"cpu x{threads}",
        "size_vox": size,
        "perceptual": perceptual,
        "generator_params_M": round(registry.count_parameters(parts.nets["generator"]) / 1e6, 2),
        "total_params_M": round(sum(registry.count_parameters(n) for n in parts.nets.values()) / 1e6, 2),
        "s_per_step": round(step_s, 3),
        "peak_mem_mb": round(peak_mb),
        "loss_finite": all(bool(torch.isfinite(v).all()) for v in losses.values()),
    }


def main_3d(argv: list[str] | None = None) -> int:
    """``train_step.py 3d``: params, s/step and peak memory of the 3D models (paper widths)."""
    from concurrent.futures import ProcessPoolExecutor

    parser = argparse.ArgumentParser(description=main_3d.__doc__)
    parser.add_argument("--models", nargs="+", default=list(THREE_D))
    parser.add_argument("--preset", default="paper", choices=["paper", "demo"])
    parser.add_argument("--sizes", nargs="+", type=int, default=None, help="default 64 (CPU) / 128 (CUDA)")
    parser.add_argument("--perceptual", nargs="+", default=["cyclic25d"], help="none 3d static25d cyclic25d")
    parser.add_argument("--device", default="cpu", help="cpu | cuda | auto")
    parser.add_argument("--steps", type=int, default=1, help="timed training steps after one warm-up")
    parser.add_argument("--amp", default="bf16", choices=["bf16", "fp16", "none"], help="CUDA only")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--out", help="also write the table as CSV")
    args = parser.parse_args(argv)
    cpu = resolve_device(args.device).type == "cpu"
    rows = []
    for model in args.models:
        for size in args.sizes or [64 if cpu else 128]:
            for perceptual in args.perceptual:
                kwargs = dict(model=model, preset=args.preset, size=size, device_name=args.device, steps=args.steps,
                              amp=args.amp, threads=args.threads, perceptual=perceptual)
                if cpu:  # a fresh process per measurement: the peak RSS is this one's
                    with ProcessPoolExecutor(1, mp_context=mp.get_context("spawn")) as pool:
                        row = pool.submit(measure_3d, **kwargs).result()
                else:
                    row = measure_3d(**kwargs)
                print(row, file=sys.stderr, flush=True)
                rows.append(row)
    table = pd.DataFrame(rows)
    print(table.to_string(index=False))
    if args.out:
        table.to_csv(args.out, index=False)
    return 0


if __name__ == "__main__":
    sys.exit(main_3d(sys.argv[2:]) if sys.argv[1:2] == ["3d"] else main())
