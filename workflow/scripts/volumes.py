from mri2tau.data.volumes import build_volumes
from mri2tau.smk import run_rule

p = snakemake.params
run_rule(snakemake, build_volumes, splits_tsv=snakemake.input.splits, t1_pattern=p.t1_pattern,
         pet_pattern=p.pet_pattern, mask_pattern=p.mask_pattern, out_dir=p.out_dir, slices_config=p.slices,
         volumes_config=p.volumes, resolution_mm=p.resolution_mm, template_mask_path=p.template_mask)
