from mri2tau.smk import run_rule
from mri2tau.synthesize import synthesize_model

p = snakemake.params
run_rule(snakemake, synthesize_model, model_file=snakemake.input.model, splits=snakemake.input.splits,
         **p.patterns, harmonization=snakemake.input.harmonization, out_dir=snakemake.output[0],
         resolution_mm=p.resolution_mm, settings=p.settings, slices_config=p.slices, volumes_config=p.volumes,
         on_unknown_manufacturer=p.on_unknown, template_mask_path=p.template_mask, threads=snakemake.threads)
