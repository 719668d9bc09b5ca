"""Time of the convert stage on the demo cohort (in-process, one core, no Snakemake overhead).

Generates the demo cohort (default: 12 subjects at 2 mm, seed 0) into a temporary folder, then
times series selection/pairing (every candidate file's SeriesInstanceUID is read; the figure per
DICOM file scales to a real download) and the conversion of every selected session (validation
with pydicom, dcm2niix via nipype, sidecars, de-identification check) and the dataset files.

    .venv/bin/python bench/convert.py                    # 12 subjects, 2 mm
    .venv/bin/python bench/convert.py --subjects 4 --voxel-mm 4
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from mri2tau.config import load_preset
from mri2tau.convert.metadata import write_bids_metadata
from mri2tau.convert.select import select_series, session_series
from mri2tau.convert.session import convert_session
from mri2tau.demo.cohort import generate_cohort


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subjects", type=int, default=12)
    parser.add_argument("--voxel-mm", type=float, default=2.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    data = load_preset("demo")["data"]
    with tempfile.TemporaryDirectory() as tmp:
        root, out = Path(tmp) / "demo", Path(tmp) / "results"
        started = time.perf_counter()
        generate_cohort(root, subjects=args.subjects, seed=args.seed, voxel_mm=args.voxel_mm)
        generated = time.perf_counter()
        n_files = sum(1 for _ in (root / "ADNI").rglob("*.dcm"))
        pairs = select_series(
            dicom_root=root / "ADNI", clinical_csv=root / "ADNIMERGE.csv", pairs_tsv=out / "pairs.tsv",
            excluded_tsv=out / "excluded.tsv", t1_patterns=data["t1_description_patterns"],
            pet_patterns=data["pet_description_patterns"], exclude_patterns=data["exclude_description_patterns"],
            max_days=data["max_mri_pet_days"])
        selected = time.perf_counter()
        for row in pairs.itertuples():
            stem = out / "bids" / f"sub-{row.sub}" / f"ses-{row.ses}"
            name = f"sub-{row.sub}_ses-{row.ses}"
            convert_session(sub=row.sub, ses=row.ses, t1_dir=row.t1_dir, pet_dir=row.pet_dir,
                            t1w=stem / "anat" / f"{name}_T1w.nii.gz", t1w_json=stem / "anat" / f"{name}_T1w.json",
                            pet=stem / "pet" / f"{name}_trc-18FAV1451_pet.nii.gz",
                            pet_json=stem / "pet" / f"{name}_trc-18FAV1451_pet.json",
                            **session_series(out / "pairs.tsv", row.sub, row.ses))
        bids = out / "bids"
        write_bids_metadata(pairs_tsv=out / "pairs.tsv", participants_tsv=bids / "participants.tsv",
                            participants_json=bids / "participants.json",
                            description_json=bids / "dataset_description.json", readme=bids / "README",
                            changes=bids / "CHANGES", name="bench", max_days=data["max_mri_pet_days"])
        done = time.perf_counter()
    n = len(pairs)
    print(f"demo cohort: {args.subjects} subjects at {args.voxel_mm:g} mm")
    print(f"  generate            {generated - started:7.1f} s")
    print(f"  select + pair       {selected - generated:7.1f} s  ({n_files} DICOM files, "
          f"{1000 * (selected - generated) / n_files:.2f} ms/file)")
    print(f"  convert {n:2d} sessions {done - selected:7.1f} s  ({(done - selected) / max(n, 1):.2f} s/session)")


if __name__ == "__main__":
    main()
