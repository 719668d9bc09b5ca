from mri2tau.preprocess.suvr import write_reference_mask
from mri2tau.smk import run_rule

p = snakemake.params
run_rule(snakemake, write_reference_mask, out=snakemake.output.mask, sidecar_out=snakemake.output.mask_json,
         reference_region=p.reference_region, resolution_mm=p.resolution_mm, erosion_vox=p.erosion_vox,
         template_path=p.template_path, template_mask=p.template_mask)
