from mri2tau.data.split import write_splits
from mri2tau.smk import run_rule

p = snakemake.params
run_rule(snakemake, write_splits, pairs=snakemake.input.pairs, out=snakemake.output.splits,
         test_fraction=p.test_fraction, seed=p.seed, stratify_by=p.stratify_by)
