from mri2tau.evaluate.run import evaluate_models
from mri2tau.smk import run_rule

p = snakemake.params
run_rule(snakemake, evaluate_models, splits=snakemake.input.splits, **p.patterns, synth_dirs=p.synth_dirs,
         out_dir=p.out_dir, resolution_mm=p.resolution_mm, slices_config=p.slices, settings=p.settings)
