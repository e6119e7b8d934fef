"""Entries of a calibration's database chain, as the framework's ``caf.utils`` names them.

A chain lists global tags (``CentralDatabase``) and local databases (a ``database.txt`` with its
payload files, ``LocalDatabase``); scripts build chains for their collections with these.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["CentralDatabase", "LocalDatabase"]


class LocalDatabase:
    """A local database: its ``database.txt`` and the folder of its payload files (both must exist)."""

    db_type = "local"

    def __init__(self, filepath: str | Path, payload_dir: str | Path = "") -> None:
        file = Path(filepath)
        if not file.exists():
            raise ValueError(f"The LocalDatabase filepath: {file} does not exist.")
        self.filepath = file.resolve()
        if payload_dir:
            folder = Path(payload_dir)
            if not folder.exists():
                raise ValueError(f"The LocalDatabase payload_dir: {folder} does not exist.")
            self.payload_dir = folder.resolve()
        else:
            self.payload_dir = self.filepath.parent

    def __repr__(self) -> str:
        return f"LocalDatabase({str(self.filepath)!r})"


class CentralDatabase:
    """A global tag of the conditions database (not checked for existence, as in the framework)."""

    db_type = "central"

    def __init__(self, global_tag: str) -> None:
        self.global_tag = global_tag

    def __repr__(self) -> str:
        return f"CentralDatabase({self.global_tag!r})"
