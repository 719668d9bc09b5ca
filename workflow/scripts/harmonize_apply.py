from mri2tau.preprocess.harmonize import harmonize_subject
from mri2tau.smk import run_rule

i, p, w = snakemake.input, snakemake.params, snakemake.wildcards
run_rule(snakemake, harmonize_subject, suvr=i.suvr, params_json=i.params, splits=i.splits, out=snakemake.output.suvr,
         sub=w.sub, ses=w.ses, resolution_mm=p.resolution_mm, on_unknown=p.on_unknown, template_mask=p.template_mask,
         reference_mask=i.reference)
