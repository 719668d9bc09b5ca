"""Atomic file writes: a file either appears complete or not at all.

Every writer goes through :func:`atomic_path`, which yields a temporary path in the same
directory (so the final ``os.replace`` is atomic on POSIX) and removes it on failure.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any


@contextlib.contextmanager
def atomic_path(path: str | Path, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary sibling of ``path``; move it onto ``path`` only if the block succeeds.

    ``suffix`` defaults to the full suffix of ``path`` (e.g. ``.nii.gz``) so libraries that
    pick the format from the extension still do the right thing.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if suffix is None:
        suffix = "".join(path.suffixes) or ".tmp"
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name.split('.')[0]}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp makes 0600; honour the user's umask
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_text_atomic(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically (UTF-8)."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json_atomic(path: str | Path, obj: Any) -> None:
    """Write ``obj`` as indented JSON to ``path`` atomically."""
    write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n")


def write_tsv_atomic(path: str | Path, frame: "Any") -> None:
    """Write a pandas DataFrame as TSV (no index, 'n/a' for missing, as BIDS) atomically."""
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, sep="\t", index=False, na_rep="n/a")


def copy_atomic(src: str | Path, dst: str | Path) -> None:
    """Copy the file ``src`` to ``dst`` atomically (contents only, as ``shutil.copyfile``)."""
    with atomic_path(dst) as tmp:
        shutil.copyfile(src, tmp)


def write_png_atomic(fig: Any, path: str | Path, **savefig_kwargs: Any) -> None:
    """Save the matplotlib figure ``fig`` as PNG to ``path`` atomically, then close it.

    ``savefig_kwargs`` go to ``Figure.savefig`` (``dpi``, ``facecolor``, ``bbox_inches``...).
    """
    import matplotlib.pyplot as plt

    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, **savefig_kwargs)
    plt.close(fig)
