from mri2tau.preprocess.pet import register_pet_to_t1
from mri2tau.smk import run_rule

i = snakemake.input
run_rule(snakemake, register_pet_to_t1, pet_mean=i.mean, t1=i.t1, brain_mask=i.brain_mask, xfm_out=snakemake.output.xfm,
         subject=snakemake.wildcards.sub, threads=snakemake.threads)
