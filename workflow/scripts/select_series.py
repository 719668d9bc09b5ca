from mri2tau.convert.select import select_series
from mri2tau.smk import run_rule

p = snakemake.params
run_rule(snakemake, select_series, dicom_root=snakemake.input.dicom, clinical_csv=snakemake.input.csv,
         pairs_tsv=snakemake.output.pairs, excluded_tsv=snakemake.output.excluded, t1_patterns=p.t1_patterns,
         pet_patterns=p.pet_patterns, exclude_patterns=p.exclude_patterns, max_days=p.max_days,
         exclude_subjects=p.exclude_subjects, pet_input=p.pet_input, sessions=p.sessions, pet_n_frames=p.pet_n_frames)
