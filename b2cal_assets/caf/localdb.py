"""Local payload databases (``outputdb/`` directories) and the conditions a job sees through a chain of them.

An outputdb holds ``database.txt`` (``dbstore/<Payload> <revision> e1,r1,e2,r2`` per line) and one
``dbstore_<Payload>_rev_<revision>.root`` per payload revision. A chain is a list of outputdb
directories where LATER entries override earlier ones, like a global-tag chain with the newest
upstream payloads last; inside one directory the highest revision valid for a run wins.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from b2cal_assets.caf.framework import Conditions
from b2cal_assets.caf.payload_io import md5sum, read_payload, write_payload
from b2cal_assets.domain.iov import ExpRun, IoV
from b2cal_assets.domain.outputdb import (
    PayloadEntry,
    format_database_txt,
    parse_database_txt,
    payload_filename,
)
from b2cal_assets.files import atomic_write_text

__all__ = ["DATABASE_TXT", "ConditionsChain", "StoredPayload", "read_entries", "write_outputdb"]

DATABASE_TXT = "database.txt"


@dataclass(frozen=True)
class StoredPayload:
    """One payload revision written to an outputdb: what the calibration DB and the upload need."""

    name: str
    revision: int
    iov: IoV
    file: Path
    checksum: str

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "revision": self.revision,
            "iov": list(self.iov),
            "file": str(self.file),
            "checksum": self.checksum,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> StoredPayload:
        return cls(
            str(data["name"]),
            int(data["revision"]),
            IoV(*data["iov"]),
            Path(data["file"]),
            str(data["checksum"]),
        )


def read_entries(outputdb: Path) -> list[PayloadEntry]:
    """The entries of ``outputdb/database.txt``; an outputdb without one is empty."""
    try:
        text = (Path(outputdb) / DATABASE_TXT).read_text()
    except FileNotFoundError:
        return []
    return list(parse_database_txt(text))


def write_outputdb(
    outputdb: Path,
    keep: Sequence[StoredPayload],
    new: Iterable[tuple[str, IoV, Mapping[str, np.ndarray | float]]],
) -> list[StoredPayload]:
    """Write ``new`` payloads next to the ``keep`` ones and rewrite ``database.txt`` atomically.

    Revisions continue from the highest kept revision of each name, so calling this again with the
    same arguments (a resumed run) writes the same files and the same ``database.txt``.
    """
    outputdb = Path(outputdb)
    outputdb.mkdir(parents=True, exist_ok=True)
    latest: dict[str, int] = {}
    for p in keep:
        latest[p.name] = max(latest.get(p.name, 0), p.revision)
    written = []
    for name, iov, constants in new:
        revision = latest.get(name, 0) + 1
        latest[name] = revision
        path = write_payload(outputdb / payload_filename(name, revision), constants)
        written.append(StoredPayload(name, revision, iov, path, md5sum(path)))
    entries = [PayloadEntry(p.name, p.revision, p.iov) for p in [*keep, *written]]
    atomic_write_text(outputdb / DATABASE_TXT, format_database_txt(entries))
    return written


class ConditionsChain:
    """The payloads valid for a run through a chain of outputdb directories (later ones win)."""

    def __init__(self, outputdbs: Sequence[Path]) -> None:
        self.outputdbs = [Path(p) for p in outputdbs]
        self._entries = [(db, read_entries(db)) for db in self.outputdbs]
        self._cache: dict[Path, dict[str, np.ndarray]] = {}

    def at(self, exp_run: ExpRun) -> Conditions:
        chosen: dict[str, Path] = {}
        for db, entries in self._entries:
            best: dict[str, PayloadEntry] = {}
            for entry in entries:
                if entry.iov.contains_run(*exp_run) and (
                    entry.name not in best or entry.revision > best[entry.name].revision
                ):
                    best[entry.name] = entry
            for name, entry in best.items():
                chosen[name] = db / payload_filename(name, entry.revision)
        return Conditions({name: self._read(path) for name, path in chosen.items()})

    def _read(self, path: Path) -> dict[str, np.ndarray]:
        if path not in self._cache:
            self._cache[path] = read_payload(path)
        return self._cache[path]
