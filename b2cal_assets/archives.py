"""Unpacking a tar archive as data only, on every Python the product runs on.

``tarfile``'s extraction filters came with Python 3.11.4; Debian bookworm's 3.11.2 (the images' Python)
has none, and ``extractall(filter="data")`` raises ``TypeError`` there. Both paths let through only
regular files and folders inside the target.
"""

from __future__ import annotations

import tarfile
from pathlib import Path

__all__ = ["UnsafeArchive", "extract_data"]


class UnsafeArchive(tarfile.TarError):
    """The archive holds a member outside the target or one that is not a file or a folder."""


def extract_data(tar: tarfile.TarFile, into: Path | str) -> None:
    """Unpack every member of ``tar`` into ``into``; refuse links, devices and paths that leave it."""
    if hasattr(tarfile, "data_filter"):
        try:
            tar.extractall(into, filter="data")
        except tarfile.FilterError as exc:
            raise UnsafeArchive(str(exc)) from exc
        return
    tar.extractall(into, members=_data_members(tar))


def _data_members(tar: tarfile.TarFile) -> list[tarfile.TarInfo]:
    """What the "data" filter lets through, checked before anything is written."""
    members = tar.getmembers()
    for member in members:
        parts = Path(member.name).parts
        if member.name.startswith("/") or ".." in parts or not (member.isfile() or member.isdir()):
            raise UnsafeArchive(f"{member.name!r} is not a plain file or folder inside the archive's target")
    return members
