from mri2tau.convert.metadata import write_bids_metadata
from mri2tau.smk import run_rule

o = snakemake.output
run_rule(snakemake, write_bids_metadata, pairs_tsv=snakemake.input.pairs, participants_tsv=o.participants,
         participants_json=o.participants_json, description_json=o.description, readme=o.readme,
         changes=o.changes, name=snakemake.params.name, max_days=snakemake.params.max_days)
