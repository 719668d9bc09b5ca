from mri2tau.io.derivatives import ANAT_IMAGE_KINDS, anat_sidecar_meta, write_sidecar
from mri2tau.preprocess.mri import preprocess_t1
from mri2tau.smk import run_rule
from mri2tau.templates import TEMPLATE_NAME

out, p = dict(snakemake.output.items()), snakemake.params
sidecars = {kind: out.pop(f"{kind}_json") for kind in ANAT_IMAGE_KINDS}
run_rule(snakemake, preprocess_t1, t1=snakemake.input.t1, subject=snakemake.wildcards.sub,
         session=snakemake.wildcards.ses, **dict(p.items()), **out)
for kind, path in sidecars.items():
    write_sidecar(out[kind], anat_sidecar_meta(kind, t1=snakemake.input.t1, transforms=[out["xfm_affine"], out["xfm_invwarp"]],
                                               template=TEMPLATE_NAME, resolution_mm=p.resolution_mm), path)
