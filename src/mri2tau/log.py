"""Logging for rules and the CLI: one log file per rule and subject, plus the console; step times, peak memory."""

from __future__ import annotations

import contextlib
import logging
import resource
import sys
import time
from collections.abc import Iterator
from pathlib import Path


def setup_logging(log_file: str | Path | None = None, level: int = logging.INFO) -> logging.Logger:
    """Configure the ``mri2tau`` logger to write to stderr and, if given, ``log_file``."""
    logger = logging.getLogger("mri2tau")
    logger.setLevel(level)
    logger.handlers.clear()
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%Y-%m-%d %H:%M:%S")
    console = logging.StreamHandler(sys.stderr)
    console.setFormatter(fmt)
    logger.addHandler(console)
    if log_file:
        Path(log_file).parent.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(log_file, mode="w")
        handler.setFormatter(fmt)
        logger.addHandler(handler)
    logger.propagate = False
    return logger


def get_logger(name: str) -> logging.Logger:
    """A child of the ``mri2tau`` logger (``mri2tau.<name>``)."""
    return logging.getLogger(f"mri2tau.{name}")


@contextlib.contextmanager
def timed_step(logger: logging.Logger, step: str, label: str = "") -> Iterator[None]:
    """Log the wall and CPU seconds (all threads of this process) a block took.

    The record carries ``step``, ``wall_s`` and ``cpu_s`` attributes (``bench/preprocess.py``
    collects them per step); ``label`` (e.g. the subject) only prefixes the message.
    """
    wall, cpu = time.perf_counter(), time.process_time()
    yield
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    logger.info("%s%s: %.1f s wall, %.1f s CPU", f"{label}: " if label else "", step, wall, cpu,
                extra={"step": step, "wall_s": wall, "cpu_s": cpu})


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far (MB; Linux reports ``ru_maxrss`` in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
