from mri2tau.io.session_index import write_session_index
from mri2tau.smk import run_rule

run_rule(snakemake, write_session_index, splits=snakemake.input.splits, split=snakemake.wildcards.split,
         patterns=snakemake.params.patterns, out=snakemake.output[0])
