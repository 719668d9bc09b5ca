from mri2tau.convert.session import convert_session
from mri2tau.smk import run_rule

i, o, w = snakemake.input, snakemake.output, snakemake.wildcards
run_rule(snakemake, convert_session, sub=w.sub, ses=w.ses, t1_dir=i.t1_dir, pet_dir=i.pet_dir, t1w=o.t1w,
         t1w_json=o.t1w_json, pet=o.pet, pet_json=o.pet_json, **snakemake.params.series)
