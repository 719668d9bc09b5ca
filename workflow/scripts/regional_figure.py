from mri2tau.evaluate.regional_figure import regional_by_diagnosis
from mri2tau.smk import run_rule

run_rule(snakemake, regional_by_diagnosis, wide_tsv=snakemake.input.wide, out_png=snakemake.output.png)
