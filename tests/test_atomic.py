"""Atomic writes: a failed write leaves the old file (or nothing) and no temp files."""

import os

import pytest

from mri2tau.io.atomic import atomic_path, write_text_atomic


def test_failed_write_keeps_previous_content_and_no_temp(tmp_path):
    target = tmp_path / "out.nii.gz"
    write_text_atomic(target, "old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            assert tmp.name.endswith(".nii.gz") and tmp.parent == tmp_path
            tmp.write_text("half")
            raise RuntimeError("crash mid-write")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.nii.gz"]


def test_new_file_honours_umask(tmp_path):
    old = os.umask(0o022)
    try:
        write_text_atomic(tmp_path / "a.txt", "x")
    finally:
        os.umask(old)
    assert (tmp_path / "a.txt").stat().st_mode & 0o777 == 0o644
