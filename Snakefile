# mri2tau: ADNI DICOM (T1w + tau PET) -> synthetic tau PET from MRI, with evaluation.
# Stages live in workflow/rules/*.smk; every rule calls a function in src/mri2tau.


configfile: "config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/demo.smk"
include: "workflow/rules/convert.smk"
include: "workflow/rules/mri.smk"
include: "workflow/rules/pet.smk"
include: "workflow/rules/split.smk"
include: "workflow/rules/index.smk"
include: "workflow/rules/regional.smk"
include: "workflow/rules/slices.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/synthesize.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/report.smk"


rule all:
    default_target: True
    input:
        all_targets,
