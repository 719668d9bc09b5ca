from mri2tau.io.derivatives import bids_uri, pet_sidecar_meta, write_sidecar
from mri2tau.preprocess.pet import pet_to_template
from mri2tau.preprocess.registration import forward_transforms
from mri2tau.smk import run_rule
from mri2tau.templates import TEMPLATE_NAME

i, o, p = snakemake.input, snakemake.output, snakemake.params
run_rule(snakemake, pet_to_template, pet_mean=i.mean, pet_to_t1=i.pet2t1, t1_to_template=forward_transforms(i.affine, i.warp),
         out=o.pet, subject=snakemake.wildcards.sub, resolution_mm=p.resolution_mm,
         min_brain_overlap=p.min_brain_overlap, template_mask=p.template_mask, threads=snakemake.threads)
write_sidecar(o.pet, pet_sidecar_meta("mean_template", sources=[bids_uri(f, "") for f in (i.mean, i.pet2t1, i.affine, i.warp)],
                                      template=TEMPLATE_NAME, resolution_mm=p.resolution_mm), o.pet_json)
