"""Time the demo cohort generator (issue 2 target: 12 subjects at 2 mm in < 1 min).

Usage: .venv/bin/python bench/demo_cohort.py [--subjects 12] [--voxel-mm 2] [--seed 0]
Prints wall time, CPU time, per-subject time and the size of what was written.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from mri2tau.demo.cohort import generate_cohort


def _size_mb(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subjects", type=int, default=12)
    parser.add_argument("--voxel-mm", type=float, default=2.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-demo-") as tmp:
        out = Path(tmp) / "cohort"
        wall, cpu = time.perf_counter(), time.process_time()
        generate_cohort(out, subjects=args.subjects, seed=args.seed, voxel_mm=args.voxel_mm)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        n_dicom = sum(1 for _ in (out / "ADNI").rglob("*.dcm"))
        print(f"demo cohort: {args.subjects} subjects at {args.voxel_mm:g} mm: wall {wall:.1f} s, "
              f"cpu {cpu:.1f} s, {wall / args.subjects:.2f} s/subject (target: 12 at 2 mm < 60 s)")
        print(f"written: {n_dicom} DICOM files, ADNI {_size_mb(out / 'ADNI'):.0f} MB, "
              f"truth {_size_mb(out / 'truth'):.0f} MB")


if __name__ == "__main__":
    main()
