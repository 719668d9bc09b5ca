from mri2tau.io.derivatives import bids_uri, pet_sidecar_meta, write_sidecar
from mri2tau.preprocess.pet import choose_motion_method, correct_motion
from mri2tau.smk import run_rule

i, o, p = snakemake.input, snakemake.output, snakemake.params
run_rule(snakemake, correct_motion, pet=i.pet, sidecar=i.sidecar, pet_mean_out=o.mean, motion_out=o.motion,
         subject=snakemake.wildcards.sub, expected_frames=p.expected_frames, method=p.method, threads=snakemake.threads)
write_sidecar(o.mean, pet_sidecar_meta("mean", sources=[bids_uri(i.pet)],
                                       MotionCorrection=choose_motion_method(p.method)), o.mean_json)
