"""Rule demo_cohort: generate the synthetic ADNI-like cohort (see docs/demo-cohort.md)."""
from mri2tau.demo.cohort import write_demo_cohort
from mri2tau.smk import run_rule

run_rule(snakemake, write_demo_cohort, dicom_root=snakemake.output.dicom_root,  # noqa: F821
         clinical_csv=snakemake.output.clinical_csv, truth_dir=snakemake.output.truth,  # noqa: F821
         workers=snakemake.threads, **snakemake.params.demo)  # noqa: F821
