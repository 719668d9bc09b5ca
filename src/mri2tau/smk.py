"""Glue for ``workflow/scripts/*.py``: log to the rule's log file, report failures clearly.

A rule script is a few lines::

    from mri2tau.smk import run_rule
    from mri2tau.preprocess.mri import preprocess_t1
    run_rule(snakemake, preprocess_t1, t1=snakemake.input.t1, ...)

and ``workflow/rules/common.smk`` calls :func:`tune_gc_for_planning` while Snakemake parses.
"""

from __future__ import annotations

import gc
from collections.abc import Callable
from typing import Any

from mri2tau.log import setup_logging


def run_rule(snakemake: Any, func: Callable[..., Any], /, **kwargs: Any) -> Any:
    """Call ``func(**kwargs)`` with logging to ``snakemake.log[0]``; log and re-raise errors."""
    log_file = snakemake.log[0] if len(snakemake.log) else None
    logger = setup_logging(log_file)
    wildcards = dict(snakemake.wildcards.items())
    logger.info("rule %s %s", snakemake.rule, wildcards or "")
    try:
        result = func(**kwargs)
    except Exception as exc:  # noqa: BLE001 - we re-raise after logging
        logger.error("rule %s failed for %s: %s", snakemake.rule, wildcards or "all", exc)
        logger.debug("traceback", exc_info=True)
        raise
    logger.info("rule %s done", snakemake.rule)
    return result


# Young-generation size of Python's cyclic GC while Snakemake plans (Python's default: 700).
GC_YOUNG_THRESHOLD = 50_000


def tune_gc_for_planning(young_threshold: int = GC_YOUNG_THRESHOLD) -> None:
    """Make Python's cyclic garbage collector cheaper in the Snakemake process that parses this
    workflow, plans the DAG and schedules jobs.

    Building the DAG of a large cohort allocates millions of small objects (files, jobs,
    wildcards); with Python's default thresholds (700, 10, 10) the collector rescans them over and
    over: about a fifth of the CPU time of ``snakemake -n all`` (``bench/dag.py``). Here the
    objects alive after imports and parsing move to the permanent generation (``gc.freeze``: never
    rescanned, and not collected should they become cyclic garbage: the workflow's parse state,
    which lives as long as the process) and a young collection runs every
    ``young_threshold`` allocations instead of 700. Cycles are still collected, so peak memory
    stays the same (unlike ``gc.disable``, which costs +50 % RSS at 2,000 sessions).
    The scripts of the rules run in their own processes and keep Python's defaults.
    """
    gc.freeze()
    gc.set_threshold(young_threshold, 10, 10)
