from mri2tau.preprocess.mri import registration_summary
from mri2tau.smk import run_rule

run_rule(snakemake, registration_summary, qc_tsvs=list(snakemake.input), out=snakemake.output[0])
