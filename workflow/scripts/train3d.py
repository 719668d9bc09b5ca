from mri2tau.smk import run_rule
from mri2tau.train.runner import train_model

run_rule(snakemake, train_model, model=snakemake.wildcards.model, data=snakemake.params.volumes_dir,
         out_dir=snakemake.params.out_dir, hparams=snakemake.params.hparams,
         train_config={**snakemake.config["train"], **snakemake.params.settings, "threads": snakemake.threads})
