"""Glue for ``workflow/scripts/*.py``: log to the rule's log file, report failures clearly.

A rule script is a few lines::

    from mri2tau.smk import run_rule
    from mri2tau.preprocess.mri import preprocess_t1
    run_rule(snakemake, preprocess_t1, t1=snakemake.input.t1, ...)
"""

from __future__ import annotations

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
