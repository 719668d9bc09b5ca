"""What a file holds, read once per version of that file.

Snakemake calls input and params functions for every job while it builds the DAG, and those read
the same table (``pairs.tsv``) again and again. :func:`per_file_version` caches a reader on the
file's version, ``(path, mtime ns, size)``: a rewritten file is read afresh, an unchanged one never.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

Reader = TypeVar("Reader", bound=Callable[..., Any])


def per_file_version(maxsize: int) -> Callable[[Reader], Reader]:
    """Decorator: cache ``read(path, *args)`` (``args`` hashable) per version of the file at ``path``.

    ``read`` receives ``path`` as a string; up to ``maxsize`` (version, args) results are kept.
    """

    def decorate(read: Reader) -> Reader:
        @functools.lru_cache(maxsize=maxsize)
        def cached(path: str, mtime_ns: int, size: int, *args: Any) -> Any:
            return read(path, *args)

        @functools.wraps(read)
        def wrapper(path: str | Path, *args: Any) -> Any:
            stat = Path(path).stat()
            return cached(str(path), stat.st_mtime_ns, stat.st_size, *args)

        wrapper.cache_clear = cached.cache_clear  # type: ignore[attr-defined]
        return wrapper  # type: ignore[return-value]

    return decorate
