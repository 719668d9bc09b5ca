from mri2tau.preprocess.suvr import save_suvr_qc
from mri2tau.smk import run_rule

w = snakemake.wildcards
run_rule(snakemake, save_suvr_qc, suvr=snakemake.input.suvr, t1=snakemake.input.t1, out_png=snakemake.output.png,
         subject=w.sub, session=w.ses, sidecar=snakemake.input.sidecar)
