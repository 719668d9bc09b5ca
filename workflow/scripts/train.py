from mri2tau.smk import run_rule
from mri2tau.train.runner import train_from_slices

run_rule(snakemake, train_from_slices, model=snakemake.wildcards.model, slices_npz=snakemake.input.slices,
         out_dir=snakemake.params.out_dir, hparams=snakemake.params.hparams,
         train_config={**snakemake.config["train"], **snakemake.params.settings, "threads": snakemake.threads})
