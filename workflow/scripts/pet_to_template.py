from mri2tau.preprocess.pet import pet_to_template
from mri2tau.preprocess.registration import forward_transforms
from mri2tau.smk import run_rule

i, p = snakemake.input, snakemake.params
run_rule(snakemake, pet_to_template, pet_mean=i.mean, pet_to_t1=i.pet2t1, t1_to_template=forward_transforms(i.affine, i.warp),
         out=snakemake.output.pet, subject=snakemake.wildcards.sub, resolution_mm=p.resolution_mm,
         min_brain_overlap=p.min_brain_overlap, template_mask=p.template_mask, threads=snakemake.threads)
