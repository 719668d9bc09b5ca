# Stage: evaluate + classify. Real vs synthetic test PET for every model: image metrics, paper
# Tables I/III/IV, ROI SUVR agreement, inference table, figures; the CN vs MCI/AD classifier
# trained on real training PET and tested on real and synthetic test PET (Table V).
# Tables are HTML pages (and .tsv numbers, .md) and figures PNGs, all in `snakemake --report`.
import os

EVAL_DIR = f"{R}/eval"
FIG_DIR = f"{EVAL_DIR}/figures"
CLASSIFIER_DIR = f"{R}/classifier"
_EVAL = config["evaluate"]
_CLF = config["classifier"]
# per model: the synthetic test PET's regional SUVR (layout of the cohort tables, regional.smk)
REGIONAL_SYNTH = f"{GROUP}/regional_suvr_synth-{{{{model}}}}_{{table}}.{{ext}}"
EVAL_TABLES = {  # stem (= caption workflow/report/<stem>.rst) -> report category
    "table1_ablation": "Image metrics",
    "table3_models": "Image metrics",
    "table4_diagnosis": "Image metrics",
    "table_volumes": "Image metrics",
    "roi_agreement": "Regional SUVR",
    "inference": "Synthesis",
}


rule evaluate:
    input:
        synth=expand(SYNTH_DIR, model=SYNTH_MODELS),
        splits=SPLITS,
        real=session_index("suvr", "test"),
        mask=session_index("mri", "test"),
    output:
        slice_metrics=f"{EVAL_DIR}/slice_metrics.tsv",
        volume_metrics=f"{EVAL_DIR}/volume_metrics.tsv",
        roi_suvr=f"{EVAL_DIR}/roi_suvr.tsv",
        tsv=expand(f"{EVAL_DIR}/{{stem}}.tsv", stem=EVAL_TABLES),
        md=expand(f"{EVAL_DIR}/{{stem}}.md", stem=EVAL_TABLES),
        html=[
            report(
                f"{EVAL_DIR}/{stem}.html",
                caption=f"../report/{stem}.rst",
                category=category,
                labels={"table": stem},
            )
            for stem, category in EVAL_TABLES.items()
        ],
    log:
        log_path("evaluate", per_subject=False),
    conda:
        "../../envs/evaluate.yaml"
    threads: 1
    resources:
        mem_mb=_EVAL["mem_mb"],
        runtime=_EVAL["runtime_min"],
    params:
        synth_dirs=dict(zip(SYNTH_MODELS, expand(SYNTH_DIR, model=SYNTH_MODELS))),
        patterns=lambda wildcards: dict(
            real_pattern=SUVR_TEMPLATE, mask_pattern=BRAIN_MASK_TEMPLATE
        ),
        out_dir=lambda wildcards, output: os.path.dirname(output.slice_metrics),
        resolution_mm=config["template"]["resolution_mm"],
        slices=config["slices"],
        settings=_EVAL,
    script:
        "../scripts/evaluate.py"


rule figures:
    input:
        synth=expand(SYNTH_DIR, model=SYNTH_MODELS),
        losses=expand(MODEL_METRICS, model=SYNTH_MODELS),
        slice_metrics=f"{EVAL_DIR}/slice_metrics.tsv",
        roi_suvr=f"{EVAL_DIR}/roi_suvr.tsv",
        splits=SPLITS,
        real=session_index("suvr", "test"),
        mask=session_index("mri", "test"),
    output:
        comparison=[
            report(
                f"{FIG_DIR}/comparison_{model}.png",
                caption="../report/comparison.rst",
                category="Synthesis",
                labels={"figure": "real / synthetic / difference", "model": model},
            )
            for model in SYNTH_MODELS
        ],
        by_diagnosis=report(
            f"{FIG_DIR}/metrics_by_diagnosis.png",
            caption="../report/metrics_by_diagnosis.rst",
            category="Image metrics",
            labels={"figure": "metrics by diagnosis"},
        ),
        losses=report(
            f"{FIG_DIR}/loss_curves.png",
            caption="../report/loss_curves.rst",
            category="Training",
            labels={"figure": "loss curves"},
        ),
        roi_scatter=report(
            f"{FIG_DIR}/roi_scatter.png",
            caption="../report/roi_scatter.rst",
            category="Regional SUVR",
            labels={"figure": "ROI scatter"},
        ),
    log:
        log_path("figures", per_subject=False),
    conda:
        "../../envs/evaluate.yaml"
    threads: 1
    resources:
        mem_mb=_EVAL["mem_mb"],
        runtime=_EVAL["runtime_min"],
    params:
        synth_dirs=dict(zip(SYNTH_MODELS, expand(SYNTH_DIR, model=SYNTH_MODELS))),
        metrics_csvs=dict(zip(SYNTH_MODELS, expand(MODEL_METRICS, model=SYNTH_MODELS))),
        patterns=lambda wildcards: dict(
            real_pattern=SUVR_TEMPLATE, mask_pattern=BRAIN_MASK_TEMPLATE
        ),
        out_dir=lambda wildcards, output: os.path.dirname(output.losses),
        resolution_mm=config["template"]["resolution_mm"],
        slices=config["slices"],
        settings=_EVAL,
    script:
        "../scripts/figures.py"


rule regional_synth:
    input:
        synth=SYNTH_DIR,
        splits=SPLITS,
    output:
        wide=REGIONAL_SYNTH.format(table="wide", ext="tsv"),
        wide_json=REGIONAL_SYNTH.format(table="wide", ext="json"),
        long=REGIONAL_SYNTH.format(table="long", ext="tsv"),
        long_json=REGIONAL_SYNTH.format(table="long", ext="json"),
    log:
        "logs/regional_synth/{model}.log",
    wildcard_constraints:
        model="|".join(map(re.escape, SYNTH_MODELS)) or "no-model-enabled",
    conda:
        "../../envs/evaluate.yaml"
    threads: 1
    resources:
        mem_mb=_EVAL["mem_mb"],
        runtime=_EVAL["runtime_min"],
    params:
        reference_region=config["pet"]["reference_region"],
        resolution_mm=config["template"]["resolution_mm"],
        erosion_vox=config["pet"]["erosion_vox"],
        template_path=config["template"].get("path"),
        template_mask=config["template"].get("mask_path"),
    script:
        "../scripts/regional_synth.py"


rule classifier_train:
    input:
        slices=SLICES_CENTRAL.format(split="train"),
        index=SLICES_CENTRAL_INDEX.format(split="train"),
    output:
        model=f"{CLASSIFIER_DIR}/classifier.pt",
        history=f"{CLASSIFIER_DIR}/history.tsv",
    log:
        log_path("classifier_train", per_subject=False),
    conda:
        "../../envs/evaluate.yaml"
    threads: _CLF["threads"]
    resources:
        mem_mb=_CLF["mem_mb"],
        runtime=_CLF["runtime_min"],
        gpu=_CLF["gpus"],
    params:
        settings=_CLF,
    script:
        "../scripts/classifier_train.py"


rule classifier_test:
    input:
        model=f"{CLASSIFIER_DIR}/classifier.pt",
        real=SLICES_CENTRAL.format(split="test"),
        index=SLICES_CENTRAL_INDEX.format(split="test"),
        synth=expand(SYNTH_DIR, model=SYNTH_MODELS),
        splits=SPLITS,
        harmonization=HARMONIZATION_PARAMS,
        mask=session_index("mri", "test"),
    output:
        table=f"{CLASSIFIER_DIR}/table5_classifier.tsv",
        md=f"{CLASSIFIER_DIR}/table5_classifier.md",
        html=report(
            f"{CLASSIFIER_DIR}/table5_classifier.html",
            caption="../report/table5_classifier.rst",
            category="Classifier",
            labels={"table": "table5_classifier"},
        ),
        decisions=f"{CLASSIFIER_DIR}/decisions.tsv",
    log:
        log_path("classifier_test", per_subject=False),
    conda:
        "../../envs/evaluate.yaml"
    threads: _CLF["threads"]
    resources:
        mem_mb=_CLF["mem_mb"],
        runtime=_CLF["runtime_min"],
        gpu=_CLF["gpus"],
    params:
        synth_dirs=dict(zip(SYNTH_MODELS, expand(SYNTH_DIR, model=SYNTH_MODELS))),
        patterns=lambda wildcards: dict(mask_pattern=BRAIN_MASK_TEMPLATE),
        resolution_mm=config["template"]["resolution_mm"],
        slices=config["slices"],
        settings=_CLF,
        on_unknown=config["harmonization"]["on_unknown_manufacturer"],
    script:
        "../scripts/classifier_test.py"


FINAL_TARGETS.extend(
    [
        *expand(
            REGIONAL_SYNTH.format(table="wide", ext="tsv"),
            model=SYNTH_MODELS,
        ),
        f"{EVAL_DIR}/table3_models.html",
        f"{FIG_DIR}/loss_curves.png",
        f"{CLASSIFIER_DIR}/table5_classifier.html",
    ]
)
