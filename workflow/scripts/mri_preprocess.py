from mri2tau.preprocess.mri import preprocess_t1
from mri2tau.smk import run_rule

run_rule(snakemake, preprocess_t1, t1=snakemake.input.t1, subject=snakemake.wildcards.sub,
         session=snakemake.wildcards.ses, **dict(snakemake.params.items()), **dict(snakemake.output.items()))
