from mri2tau.evaluate.diagnosis import test_stage
from mri2tau.smk import run_rule

p = snakemake.params
run_rule(snakemake, test_stage, model_file=snakemake.input.model, real_npz=snakemake.input.real,
         splits=snakemake.input.splits, synth_dirs=p.synth_dirs, **p.patterns,
         harmonization=snakemake.input.harmonization, resolution_mm=p.resolution_mm, slices_config=p.slices,
         out_table=snakemake.output.table, out_decisions=snakemake.output.decisions, settings=p.settings,
         on_unknown_manufacturer=p.on_unknown, threads=snakemake.threads)
