"""The framework's local payload database: ``database.txt`` plus one ROOT file per payload revision.

A line reads ``dbstore/<Payload> <revision> <e1>,<r1>,<e2>,<r2>``; the payload file next to it is
``dbstore_<Payload>_rev_<revision>.root``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import NamedTuple

from b2cal_assets.domain.iov import IoV

__all__ = [
    "DATABASE_TXT",
    "DatabaseTxtError",
    "PayloadEntry",
    "format_database_txt",
    "parse_database_txt",
    "payload_filename",
]

DATABASE_TXT = "database.txt"
_PREFIX = "dbstore/"
_PAYLOAD_NAME = re.compile(r"[A-Za-z0-9_.\-]+")


class DatabaseTxtError(ValueError):
    """A ``database.txt`` line that cannot be read; names the line number and what is wrong."""

    def __init__(self, line_number: int, line: str, problem: str) -> None:
        super().__init__(f"database.txt line {line_number}: {problem} in {line!r}")
        self.line_number = line_number
        self.line = line
        self.problem = problem


class PayloadEntry(NamedTuple):
    name: str
    revision: int
    iov: IoV

    @property
    def filename(self) -> str:
        return payload_filename(self.name, self.revision)

    def to_line(self) -> str:
        return f"{_PREFIX}{self.name} {self.revision} {self.iov}"


def _check_payload_name(name: object) -> str:
    if not isinstance(name, str) or not _PAYLOAD_NAME.fullmatch(name):
        raise ValueError(f"payload name {name!r} must be letters, digits, '_', '.' or '-' (no blanks or '/')")
    return name


def _check_revision(revision: object) -> int:
    if isinstance(revision, bool) or not isinstance(revision, int) or revision < 1:
        raise ValueError(f"payload revision {revision!r} must be a positive integer")
    return revision


def payload_filename(name: str, revision: int) -> str:
    """``dbstore_<name>_rev_<revision>.root``."""
    return f"dbstore_{_check_payload_name(name)}_rev_{_check_revision(revision)}.root"


def parse_database_txt(text: str) -> list[PayloadEntry]:
    """Read every entry, in file order; blank lines and ``#`` comments are skipped."""
    entries = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split()
        if len(parts) != 3:
            raise DatabaseTxtError(
                number,
                line,
                f"expected 3 fields 'dbstore/<Payload> <revision> <e1>,<r1>,<e2>,<r2>', got {len(parts)}",
            )
        key, revision_text, iov_text = parts
        if not key.startswith(_PREFIX):
            raise DatabaseTxtError(number, line, f"the payload {key!r} must start with {_PREFIX!r}")
        name = key[len(_PREFIX) :]
        try:
            _check_payload_name(name)
        except ValueError as exc:
            raise DatabaseTxtError(number, line, str(exc)) from None
        try:
            revision = int(revision_text)
        except ValueError:
            raise DatabaseTxtError(number, line, f"revision {revision_text!r} is not an integer") from None
        if revision < 1:
            raise DatabaseTxtError(number, line, f"revision {revision} must be at least 1")
        try:
            iov = IoV.parse(iov_text)
        except ValueError as exc:
            raise DatabaseTxtError(number, line, str(exc)) from None
        entries.append(PayloadEntry(name, revision, iov))
    return entries


def format_database_txt(entries: Iterable[PayloadEntry]) -> str:
    """The text of a ``database.txt`` holding ``entries`` in the given order (ends with a newline)."""
    lines = []
    for entry in entries:
        _check_payload_name(entry.name)
        _check_revision(entry.revision)
        iov = entry.iov if isinstance(entry.iov, IoV) else IoV(*entry.iov)
        iov.check()
        lines.append(PayloadEntry(entry.name, entry.revision, iov).to_line())
    return "".join(line + "\n" for line in lines)
