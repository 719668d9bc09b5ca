"""Which DICOM series an image folder holds: its files grouped by SeriesInstanceUID.

LONI exports sometimes mix series in one folder (e.g. a T1 folder holding a few stray slices of
another scanner's series). Such a folder must never be dated or classified by whichever file
sorts first, and only the real series' files may be converted. Every file's SeriesInstanceUID and
SeriesDescription are read (the header up to that tag: ~0.25 ms CPU a file); the
folder's series is the group whose description matches the folder's description name, else the
largest group. dcm2niix is then given a temporary folder of links to that group's files only.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from pydicom.filereader import read_partial
from pydicom.tag import BaseTag

from mri2tau.errors import PipelineInputError
from mri2tau.io.adni import description_folder
from mri2tau.io.dicom import STAGE, read_header, series_files

_SERIES_UID = 0x0020000E


@dataclass(frozen=True)
class SeriesGroup:
    """The files of one series (one SeriesInstanceUID) in a folder."""

    uid: str
    description: str
    files: tuple[Path, ...]


@dataclass(frozen=True)
class FolderContents:
    """A folder's series (``main`` first, then stray groups) and its unreadable files."""

    folder: Path
    groups: tuple[SeriesGroup, ...]
    unreadable: tuple[Path, ...]

    @property
    def main(self) -> SeriesGroup | None:
        """The folder's series (``None`` when no file could be read)."""
        return self.groups[0] if self.groups else None

    @property
    def strays(self) -> tuple[SeriesGroup, ...]:
        """Groups of other series' files found in the folder."""
        return self.groups[1:]


def _past_series_uid(tag: BaseTag, vr: str | None, length: int) -> bool:
    return tag > _SERIES_UID


def series_key(path: Path) -> tuple[str, str] | None:
    """(SeriesInstanceUID, SeriesDescription) of one file; ``None`` if it is not readable DICOM.

    Parses the header only up to SeriesInstanceUID (0020,000E): ~0.25 ms a file.
    """
    try:
        with open(path, "rb") as fh:
            ds = read_partial(fh, stop_when=_past_series_uid)
    except Exception:  # noqa: BLE001 - pydicom raises many types for broken files
        return None
    return str(ds.get("SeriesInstanceUID", "") or ""), str(ds.get("SeriesDescription", "") or "").strip()


def group_folder(folder: str | Path, description: str | None = None) -> FolderContents:
    """Group a series folder's files by SeriesInstanceUID.

    ``description``: the folder's description name in the download tree (e.g.
    ``Accelerated_Sagittal_MPRAGE``); the group whose SeriesDescription maps to it comes first,
    then larger groups. Unreadable files are listed apart (conversion names them).
    """
    folder = Path(folder)
    by_uid: dict[str, list[Path]] = defaultdict(list)
    names: dict[str, str] = {}
    unreadable = []
    for path in series_files(folder):
        key = series_key(path)
        if key is None:
            unreadable.append(path)
            continue
        by_uid[key[0]].append(path)
        names.setdefault(key[0], key[1])
    wanted = (description or "").lower()

    def rank(uid: str) -> tuple:
        return (description_folder(names[uid]).lower() != wanted, -len(by_uid[uid]), uid)

    groups = tuple(SeriesGroup(uid, names[uid], tuple(by_uid[uid])) for uid in sorted(by_uid, key=rank))
    return FolderContents(folder, groups, tuple(unreadable))


def files_of_series(folder: str | Path, uid: str | None, *, subject: str | None = None) -> list[Path]:
    """The files of series ``uid`` in ``folder`` (all files when ``uid`` is empty).

    Every file is read: an unreadable one raises :class:`PipelineInputError` naming it (it could
    belong to the series), as does a folder without a file of ``uid``.
    """
    files = series_files(folder)
    if not uid:
        return files
    chosen = [p for p in files if str(read_header(p, subject=subject).get("SeriesInstanceUID", "")) == uid]
    if not chosen:
        raise PipelineInputError(f"no file of series {uid} in the folder", subject=subject, stage=STAGE,
                                 path=folder, fix="rerun the select_series step (the folder changed)")
    return chosen


@contextlib.contextmanager
def series_folder_view(folder: str | Path, files: Sequence[Path]) -> Iterator[Path]:
    """``folder`` itself when ``files`` are all its files, else a temporary folder of symbolic links
    to ``files`` (for tools such as dcm2niix that read whole folders)."""
    folder = Path(folder)
    if len(files) == len(series_files(folder)):
        yield folder
        return
    with tempfile.TemporaryDirectory(prefix="mri2tau-series-") as tmp:
        for n, path in enumerate(files):
            os.symlink(Path(path).resolve(), Path(tmp) / f"{n:05d}_{Path(path).name}")
        yield Path(tmp)
