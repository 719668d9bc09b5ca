from mri2tau.data.slices import build_slices
from mri2tau.smk import run_rule

p = snakemake.params
run_rule(snakemake, build_slices, splits_tsv=snakemake.input.splits, t1_pattern=p.t1_pattern,
         pet_pattern=p.pet_pattern, mask_pattern=p.mask_pattern, out_dir=p.out_dir, config=p.settings)
