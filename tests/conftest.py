"""Shared fixtures: the real test data folder and a small demo cohort generated once per session."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
# `make test` installs the official validator here (Makefile, tools/bids-validator) and sets BIDS_VALIDATOR
LOCAL_BIDS_VALIDATOR = REPO / ".venv" / "node" / "node_modules" / ".bin" / "bids-validator"
DEMO_SUBJECTS, DEMO_SEED, DEMO_VOXEL_MM = 4, 0, 4.0


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` (real public test DICOM/NIfTI); skips when it is not there."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real test data not available: {SHARED_DATA} (clone ../shared next to the repo)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def demo_cohort(tmp_path_factory) -> Path:
    """A demo cohort (4 subjects, 4 mm, seed 0, all manufacturers) built once per session.

    Layout as in docs/demo-cohort.md: ``<root>/ADNI/...``, ``<root>/ADNIMERGE.csv``,
    ``<root>/truth/``. Skips while the generator (``mri2tau.demo.cohort``) is not there.
    """
    try:
        from mri2tau.demo.cohort import generate_cohort
    except ModuleNotFoundError as exc:
        if exc.name != "mri2tau.demo.cohort":
            raise
        pytest.skip("the demo cohort generator (mri2tau.demo.cohort) is not built yet")
    root = tmp_path_factory.mktemp("demo_cohort")
    generate_cohort(root, subjects=DEMO_SUBJECTS, seed=DEMO_SEED, voxel_mm=DEMO_VOXEL_MM, all_manufacturers=True,
                    workers=2)  # in parallel: test_deterministic_per_seed checks it against serial rendering
    return root


@pytest.fixture(scope="session")
def bids_validator() -> Path:
    """The official BIDS validator (npm bids-validator 1.15): $BIDS_VALIDATOR, .venv/node, or PATH.

    ``make test`` installs it and sets BIDS_VALIDATOR (a set but broken path fails); run by hand
    without it, the tests that need it skip.
    """
    if os.environ.get("BIDS_VALIDATOR"):
        path = Path(os.environ["BIDS_VALIDATOR"])
        assert path.is_file(), f"BIDS_VALIDATOR={path} does not exist (make install builds it)"
        return path
    found = LOCAL_BIDS_VALIDATOR if LOCAL_BIDS_VALIDATOR.is_file() else shutil.which("bids-validator")
    if not found:
        pytest.skip("bids-validator not installed (`make install` puts npm bids-validator 1.15 into .venv/node)")
    return Path(found)
