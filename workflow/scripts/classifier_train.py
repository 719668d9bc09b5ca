from mri2tau.evaluate.diagnosis import train_stage
from mri2tau.smk import run_rule

run_rule(snakemake, train_stage, slices_npz=snakemake.input.slices, out_model=snakemake.output.model,
         out_history=snakemake.output.history, settings=snakemake.params.settings, threads=snakemake.threads)
