from mri2tau.preprocess.harmonize import harmonize_subject
from mri2tau.smk import run_rule

i, o, p, w = snakemake.input, snakemake.output, snakemake.params, snakemake.wildcards
run_rule(snakemake, harmonize_subject, suvr=i.suvr, params_json=i.params, splits=i.splits, out=o.suvr,
         sidecar_out=o.suvr_json, sub=w.sub, ses=w.ses, resolution_mm=p.resolution_mm, on_unknown=p.on_unknown,
         template_mask=p.template_mask, reference_mask=i.reference)
