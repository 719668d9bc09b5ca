from mri2tau.io.derivatives import write_dataset_description
from mri2tau.smk import run_rule

o, p = snakemake.output, snakemake.params
run_rule(snakemake, write_dataset_description, description_json=o.description, readme=o.readme, raw_dir=p.raw_dir,
         template=p.template)
