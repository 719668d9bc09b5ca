"""Run the official BIDS validator and read its report (fixture ``bids_validator`` in conftest.py)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

# The 1.x validator has no rules for derivative file names: this config ignores NOT_INCLUDED (1) and
# NO_VALID_DATA_FOUND_FOR_SUBJECT (67) on the derivatives tree; every other check must pass.
DERIVATIVES_CONFIG = Path(__file__).resolve().parents[1] / "tools" / "bids-validator" / "derivatives-config.json"


def validate_bids(validator: Path, dataset: Path, config: Path | None = None) -> dict:
    """Run the validator on ``dataset`` (``--json``); return its report (issues.errors / warnings)."""
    args = [str(validator), str(dataset), "--json"] + (["--config", str(config)] if config else [])
    run = subprocess.run(args, capture_output=True, text=True, timeout=300)
    return json.loads(run.stdout[run.stdout.index("{"):])


def bids_errors(report: dict) -> list[tuple[str, list[str]]]:
    """(issue key, first files) for every error of a validator report."""
    return [(e["key"], [(f.get("file") or {}).get("relativePath") for f in e.get("files", [])][:3])
            for e in report["issues"]["errors"]]
