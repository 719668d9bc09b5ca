"""Shared fixtures: the real test data folder and a small demo cohort generated once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
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
    generate_cohort(root, subjects=DEMO_SUBJECTS, seed=DEMO_SEED, voxel_mm=DEMO_VOXEL_MM, all_manufacturers=True)
    return root
