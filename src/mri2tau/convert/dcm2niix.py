"""dcm2niix through nipype's ``Dcm2niix`` interface: one DICOM series -> one NIfTI + JSON."""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
import sys
from functools import lru_cache
from pathlib import Path

from mri2tau.errors import PipelineInputError
from mri2tau.log import get_logger

os.environ.setdefault("NIPYPE_NO_ET", "1")  # no network "etelemetry" check on import
log = get_logger("convert.dcm2niix")


def dcm2niix_executable() -> str:
    """Path of dcm2niix: on PATH, else beside this Python (the PyPI wheel's binary)."""
    found = shutil.which("dcm2niix") or shutil.which("dcm2niix", path=str(Path(sys.executable).parent))
    if not found:
        raise PipelineInputError("dcm2niix not found", stage="convert",
                                 fix="pip install dcm2niix (see requirements.txt) or put it on PATH")
    return found


@lru_cache(maxsize=1)
def dcm2niix_version() -> str | None:
    """dcm2niix's version string, e.g. ``v1.0.20260724``."""
    out = subprocess.run([dcm2niix_executable(), "--version"], capture_output=True, text=True, check=False)
    match = re.search(r"v\d+\.\d+\.\d+\w*", out.stdout + out.stderr)
    return match.group(0) if match else None


def run_dcm2niix(series_dir: str | Path, out_dir: str | Path, *, subject: str | None = None) -> tuple[Path, Path]:
    """Convert one series folder to ``out_dir/image.nii.gz`` + ``image.json``.

    Options: gzip (internal zlib), BIDS sidecar, dcm2niix's own anonymisation (``-ba y``: no
    names/IDs/dates), no cropping, no merging of series, the fixed output name ``image`` (no header text in file names).
    Raises :class:`PipelineInputError` unless exactly one image comes out.
    """
    from nipype.interfaces.dcm2nii import Dcm2niix

    series_dir, out_dir = Path(series_dir).resolve(), Path(out_dir).resolve()  # dcm2niix runs in out_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    exe = Path(dcm2niix_executable())
    node = Dcm2niix(source_dir=str(series_dir), output_dir=str(out_dir), out_filename="image",
                    compress="i", bids_format=True, anon_bids=True, crop=False, merge_imgs=0)
    node.inputs.environ = {"PATH": f"{exe.parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    logging.getLogger("nipype.interface").setLevel(logging.WARNING)
    result = node.run(cwd=str(out_dir))
    log.debug("dcm2niix %s:\n%s", series_dir, result.runtime.stdout)
    images = sorted(out_dir.glob("*.nii.gz"))
    if len(images) != 1 or not (out_dir / "image.json").exists():
        raise PipelineInputError(
            f"dcm2niix made {len(images)} images from one series (expected 1): "
            f"{[p.name for p in images]}\n{(result.runtime.stdout + result.runtime.stderr)[-2000:]}",
            subject=subject, stage="convert", path=series_dir,
            fix="the folder must hold exactly one series (one volume / one dynamic PET)")
    return images[0], out_dir / "image.json"
