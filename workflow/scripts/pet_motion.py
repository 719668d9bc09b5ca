from mri2tau.preprocess.motion import correct_motion
from mri2tau.smk import run_rule

i, o, p = snakemake.input, snakemake.output, snakemake.params
run_rule(snakemake, correct_motion, pet=i.pet, sidecar=i.sidecar, pet_mean_out=o.mean, motion_out=o.motion,
         mean_json=o.mean_json, subject=snakemake.wildcards.sub, expected_frames=p.expected_frames,
         method=p.method, threads=snakemake.threads)
