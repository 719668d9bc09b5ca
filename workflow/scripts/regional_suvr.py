from mri2tau.preprocess.regional_tables import session_regional
from mri2tau.smk import run_rule

i, o, w = snakemake.input, snakemake.output, snakemake.wildcards
run_rule(snakemake, session_regional, suvr=i.suvr, stats=i.stats, reference_mask=i.reference, pet_sidecar=i.pet_json,
         pet_native=i.pet_mean, out_tsv=o.tsv, out_json=o.json, subject=w.sub, session=w.ses,
         **dict(snakemake.params.items()))
