from mri2tau.smk import run_rule
from mri2tau.train.steps3d import train_from_volumes

run_rule(snakemake, train_from_volumes, model=snakemake.wildcards.model, volumes_dir=snakemake.params.volumes_dir,
         out_dir=snakemake.params.out_dir, hparams=snakemake.params.hparams,
         train_config={**snakemake.config["train"], **snakemake.params.settings, "threads": snakemake.threads})
