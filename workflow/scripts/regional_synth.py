from mri2tau.evaluate.regional_synth import synthetic_regional_tables
from mri2tau.smk import run_rule

i, o = snakemake.input, snakemake.output
run_rule(snakemake, synthetic_regional_tables, synth_dir=i.synth, splits=i.splits, model=snakemake.wildcards.model,
         out_wide=o.wide, out_long=o.long, **dict(snakemake.params.items()))
