"""Tables as small standalone HTML pages, so ``snakemake --report`` shows them inline
(the report viewer displays images and HTML; other files are only downloads)."""

from __future__ import annotations

import html
from pathlib import Path

import pandas as pd

from mri2tau.io.atomic import write_text_atomic

_STYLE = """
body { font-family: sans-serif; margin: 1em; }
table { border-collapse: collapse; font-size: 0.9em; }
th, td { border: 1px solid #bbb; padding: 3px 8px; text-align: right; }
th { background: #eee; }
td:first-child, th:first-child { text-align: left; }
"""


def html_table(frame: pd.DataFrame, title: str) -> str:
    """A complete HTML document: ``title`` as heading and ``frame`` (cells as shown) as a table."""
    body = frame.to_html(index=False, border=0, na_rep="n/a", escape=True)
    return (f"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>"
            f"<style>{_STYLE}</style></head>\n<body><h3>{html.escape(title)}</h3>\n{body}\n</body></html>\n")


def write_html_table(frame: pd.DataFrame, title: str, path: str | Path) -> None:
    """Write :func:`html_table` to ``path`` atomically."""
    write_text_atomic(path, html_table(frame, title))
