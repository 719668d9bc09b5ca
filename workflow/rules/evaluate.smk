# Stage: evaluate + classify. Real vs synthetic test PET for every model: image metrics, paper
# Tables I/III/IV, ROI SUVR agreement, inference table, figures; the CN vs MCI/AD classifier
# trained on real training PET and tested on real and synthetic test PET (Table V).
# Tables are HTML pages (and .tsv numbers, .md) and figures PNGs, all in `snakemake --report`.
import os

from mri2tau.paths import EVAL_METRICS_NAMES, FIGURE_NAMES, comparison_name

_EVAL = config["evaluate"]
_CLF = config["classifier"]
SYNTH_DIRS = dict(zip(SYNTH_MODELS, expand(paths.synth_dir, model=SYNTH_MODELS)))
_METRICS = {k: paths.eval_file(name) for k, name in EVAL_METRICS_NAMES.items()}
_FIGURES = {k: paths.figure(name) for k, name in FIGURE_NAMES.items()}
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
        synth=list(SYNTH_DIRS.values()),
        splits=paths.splits,
        real=paths.session_indexes("suvr", ["test"]),
        mask=paths.session_indexes("mri", ["test"]),
    output:
        **_METRICS,
        tsv=[paths.eval_file(f"{stem}.tsv") for stem in EVAL_TABLES],
        md=[paths.eval_file(f"{stem}.md") for stem in EVAL_TABLES],
        html=[
            report(
                paths.eval_file(f"{stem}.html"),
                caption=f"../report/{stem}.rst",
                category=category,
                labels={"table": stem},
            )
            for stem, category in EVAL_TABLES.items()
        ],
    log:
        log_path("evaluate", "all"),
    conda:
        "../../envs/evaluate.yaml"
    threads: 1
    resources:
        mem_mb=_EVAL["mem_mb"],
        runtime=_EVAL["runtime_min"],
    params:
        synth_dirs=SYNTH_DIRS,
        patterns=lambda wildcards: dict(
            real_pattern=paths.suvr_template, mask_pattern=paths.brain_mask_template
        ),
        out_dir=lambda wildcards, output: os.path.dirname(output.slice_metrics),
        resolution_mm=config["template"]["resolution_mm"],
        slices=config["slices"],
        settings=_EVAL,
    script:
        "../scripts/evaluate.py"


rule figures:
    input:
        synth=list(SYNTH_DIRS.values()),
        losses=expand(paths.model_metrics, model=SYNTH_MODELS),
        slice_metrics=_METRICS["slice_metrics"],
        roi_suvr=_METRICS["roi_suvr"],
        splits=paths.splits,
        real=paths.session_indexes("suvr", ["test"]),
        mask=paths.session_indexes("mri", ["test"]),
    output:
        comparison=[
            report(
                paths.figure(comparison_name(model)),
                caption="../report/comparison.rst",
                category="Synthesis",
                labels={"figure": "real / synthetic / difference", "model": model},
            )
            for model in SYNTH_MODELS
        ],
        by_diagnosis=report(
            _FIGURES["by_diagnosis"],
            caption="../report/metrics_by_diagnosis.rst",
            category="Image metrics",
            labels={"figure": "metrics by diagnosis"},
        ),
        losses=report(
            _FIGURES["losses"],
            caption="../report/loss_curves.rst",
            category="Training",
            labels={"figure": "loss curves"},
        ),
        roi_scatter=report(
            _FIGURES["roi_scatter"],
            caption="../report/roi_scatter.rst",
            category="Regional SUVR",
            labels={"figure": "ROI scatter"},
        ),
    log:
        log_path("figures", "all"),
    conda:
        "../../envs/evaluate.yaml"
    threads: 1
    resources:
        mem_mb=_EVAL["mem_mb"],
        runtime=_EVAL["runtime_min"],
    params:
        synth_dirs=SYNTH_DIRS,
        metrics_csvs=dict(
            zip(SYNTH_MODELS, expand(paths.model_metrics, model=SYNTH_MODELS))
        ),
        patterns=lambda wildcards: dict(
            real_pattern=paths.suvr_template, mask_pattern=paths.brain_mask_template
        ),
        out_dir=lambda wildcards, output: os.path.dirname(output.losses),
        resolution_mm=config["template"]["resolution_mm"],
        slices=config["slices"],
        settings=_EVAL,
    script:
        "../scripts/figures.py"


rule regional_synth:
    input:
        synth=paths.synth_dir,
        splits=paths.splits,
    output:
        wide=paths.regional_synth_table("wide", "tsv"),
        wide_json=paths.regional_synth_table("wide", "json"),
        long=paths.regional_synth_table("long", "tsv"),
        long_json=paths.regional_synth_table("long", "json"),
    log:
        log_path("regional_synth", "{model}"),
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
        slices=paths.slices_central.format(split="train"),
        index=paths.slices_central_index.format(split="train"),
    output:
        model=paths.classifier_file("classifier.pt"),
        history=paths.classifier_file("history.tsv"),
    log:
        log_path("classifier_train", "all"),
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
        model=paths.classifier_file("classifier.pt"),
        real=paths.slices_central.format(split="test"),
        index=paths.slices_central_index.format(split="test"),
        synth=list(SYNTH_DIRS.values()),
        splits=paths.splits,
        harmonization=paths.harmonization_params,
        mask=paths.session_indexes("mri", ["test"]),
    output:
        table=paths.classifier_file("table5_classifier.tsv"),
        md=paths.classifier_file("table5_classifier.md"),
        html=report(
            paths.classifier_file("table5_classifier.html"),
            caption="../report/table5_classifier.rst",
            category="Classifier",
            labels={"table": "table5_classifier"},
        ),
        decisions=paths.classifier_file("decisions.tsv"),
    log:
        log_path("classifier_test", "all"),
    conda:
        "../../envs/evaluate.yaml"
    threads: _CLF["threads"]
    resources:
        mem_mb=_CLF["mem_mb"],
        runtime=_CLF["runtime_min"],
        gpu=_CLF["gpus"],
    params:
        synth_dirs=SYNTH_DIRS,
        patterns=lambda wildcards: dict(mask_pattern=paths.brain_mask_template),
        resolution_mm=config["template"]["resolution_mm"],
        slices=config["slices"],
        settings=_CLF,
        on_unknown=config["harmonization"]["on_unknown_manufacturer"],
    script:
        "../scripts/classifier_test.py"


FINAL_TARGETS.extend(
    [
        *expand(paths.regional_synth_table("wide", "tsv"), model=SYNTH_MODELS),
        paths.eval_file("table3_models.html"),
        _FIGURES["losses"],
        paths.classifier_file("table5_classifier.html"),
    ]
)
