from mri2tau.preprocess.harmonize import fit_harmonization
from mri2tau.smk import run_rule

i, p = snakemake.input, snakemake.params
run_rule(snakemake, fit_harmonization, splits=i.splits, suvr_pattern=p.suvr_pattern, out=snakemake.output.params,
         method=p.method, resolution_mm=p.resolution_mm, robust_percentile=p.robust_percentile,
         template_mask=p.template_mask, resolution_matching_settings=p.resolution_matching,
         reference_mask=i.reference, trimmed_mean_percent=p.trimmed_mean_percent)
