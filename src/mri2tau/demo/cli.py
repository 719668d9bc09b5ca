"""``mri2tau demo-cohort OUT --subjects N --seed S --voxel-mm V [--all-manufacturers] [--second-visits K]
[--workers W]``."""

from __future__ import annotations

import argparse
import sys

from mri2tau.errors import PipelineInputError
from mri2tau.log import setup_logging


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``demo-cohort`` sub-command."""
    p = subparsers.add_parser(
        "demo-cohort",
        help="generate the synthetic ADNI-like demo cohort (DICOM tree, ADNIMERGE.csv, truth/)",
        description="Write OUT/ADNI (DICOM download tree), OUT/ADNIMERGE.csv and OUT/truth "
                    "(see docs/demo-cohort.md). Deterministic per seed.",
    )
    p.add_argument("out", help="output folder")
    p.add_argument("--subjects", type=int, default=12, help="number of subjects (default 12)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--voxel-mm", type=float, default=2.0, help="isotropic T1 voxel size in mm (default 2)")
    p.add_argument("--all-manufacturers", action="store_true",
                   help="also write every subject's blurred SUVR truth under each manufacturer")
    p.add_argument("--processed-pet-steps", type=int, nargs="*", default=[2, 4], choices=[2, 3, 4],
                   help="ADNI processed PET look-alikes beside each raw series (default 2 4; none: no value)")
    p.add_argument("--second-visits", type=int, default=0,
                   help="subjects with a second tau PET visit + T1 one year later (default 0)")
    p.add_argument("--workers", type=int, default=1,
                   help="subjects rendered in parallel processes (default 1; the files do not depend on it)")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from mri2tau.demo.cohort import generate_cohort

    setup_logging()
    try:
        generate_cohort(args.out, subjects=args.subjects, seed=args.seed, voxel_mm=args.voxel_mm,
                        all_manufacturers=args.all_manufacturers, processed_pet_steps=args.processed_pet_steps,
                        second_visits=args.second_visits, workers=args.workers)
    except PipelineInputError as exc:
        print(f"mri2tau demo-cohort: {exc}", file=sys.stderr)
        return 2
    return 0
