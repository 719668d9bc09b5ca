from mri2tau.preprocess.regional_tables import write_group_tables
from mri2tau.smk import run_rule

run_rule(snakemake, write_group_tables, indexes=snakemake.input.indexes, out_wide=snakemake.output.wide,
         out_long=snakemake.output.long, **dict(snakemake.params.items()))
