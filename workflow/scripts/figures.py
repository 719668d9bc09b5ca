from mri2tau.evaluate.figures import make_figures
from mri2tau.smk import run_rule

p = snakemake.params
run_rule(snakemake, make_figures, splits=snakemake.input.splits, **p.patterns, synth_dirs=p.synth_dirs,
         metrics_csvs=p.metrics_csvs, slice_metrics=snakemake.input.slice_metrics,
         roi_suvr=snakemake.input.roi_suvr, out_dir=p.out_dir, resolution_mm=p.resolution_mm,
         slices_config=p.slices, settings=p.settings)
