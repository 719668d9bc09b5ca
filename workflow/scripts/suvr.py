from mri2tau.preprocess.suvr import compute_suvr
from mri2tau.smk import run_rule

i, o, p = snakemake.input, snakemake.output, snakemake.params
run_rule(snakemake, compute_suvr, pet_template=i.pet, reference_mask=i.reference, motion=i.motion, suvr_out=o.suvr,
         stats_out=o.stats, sidecar_out=o.suvr_json, subject=snakemake.wildcards.sub, reference_region=p.reference_region,
         erosion_vox=p.erosion_vox, trimmed_mean_percent=p.trimmed_mean_percent)
