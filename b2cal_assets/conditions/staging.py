"""A staging global tag: a processing's signed-off payloads, checked and laid out for the conditions DB.

The rules follow the conditions database (``reference/basf2-prompt-contract.md``): a payload is its
name + checksum, so identical payloads (same name and checksum, from two revisions or calibrations)
are stored once and only their IoVs are listed; the IoVs of one payload name must neither overlap nor
leave gaps inside the processing's IoV; a tag goes OPEN -> TESTING -> VALIDATED -> PUBLISHED, and a
published tag never changes. The export is the framework's ``database.txt`` layout with the files
``dbstore_<Payload>_rev_<revision>.root``, plus ``tag.json`` recording the tag's state.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from itertools import pairwise
from pathlib import Path

from b2cal_assets.caf.payload_io import md5sum
from b2cal_assets.domain.iov import IoV
from b2cal_assets.domain.outputdb import DATABASE_TXT, PayloadEntry, format_database_txt, payload_filename
from b2cal_assets.files import atomic_copy, atomic_directory, atomic_write_text

TAG_JSON = "tag.json"


class StagingState(StrEnum):
    OPEN = "OPEN"
    TESTING = "TESTING"
    VALIDATED = "VALIDATED"
    PUBLISHED = "PUBLISHED"


_TRANSITIONS = {
    StagingState.OPEN: {StagingState.TESTING},
    StagingState.TESTING: {StagingState.OPEN, StagingState.VALIDATED},
    StagingState.VALIDATED: {StagingState.OPEN, StagingState.PUBLISHED},
    StagingState.PUBLISHED: set(),
}


class StagingError(Exception):
    """The payloads do not make a consistent tag; ``problems`` lists every one found, naming the payloads."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("staging tag rejected:\n" + "\n".join(f"- {p}" for p in problems))


class StagingStateError(Exception):
    """An action the tag's state does not allow (changing a published tag, skipping validation)."""


@dataclass(frozen=True)
class SignedOffPayload:
    """One signed-off payload IoV as the DB keeps it (plain record, no ORM)."""

    name: str
    revision: int
    checksum: str
    iov: IoV
    file: Path
    calibration: str = ""

    def describe(self) -> str:
        who = f" from {self.calibration}" if self.calibration else ""
        return f"{self.name} revision {self.revision}{who} IoV {self.iov}"


@dataclass(frozen=True)
class StagingEntry:
    name: str
    revision: int
    checksum: str
    iov: IoV
    file: Path  # the source file (before export) or the exported file (after)

    @property
    def filename(self) -> str:
        return payload_filename(self.name, self.revision)


def _after(exp: int, run: int) -> tuple[int, int]:
    return (exp, run + 1)


def _continues(end: IoV, start: IoV) -> bool:
    """``start`` begins right after ``end``; a new experiment starting at run 0 continues the previous one
    (the last run of an experiment is not known here)."""
    nxt = (start.exp_low, start.run_low)
    return nxt == _after(end.exp_high, end.run_high) or (
        start.exp_low == end.exp_high + 1 and start.run_low == 0
    )


def _inside(iov: IoV, processing_iov: IoV) -> bool:
    if not processing_iov.contains_run(iov.exp_low, iov.run_low):
        return False
    return iov.is_open_ended or processing_iov.contains(iov)


def _sort_key(iov: IoV) -> tuple[int, int]:
    return (iov.exp_low, iov.run_low)


def _end(iov: IoV) -> tuple[float, float]:
    return (float("inf"), float("inf")) if iov.is_open_ended else (iov.exp_high, iov.run_high)


def build_entries(payloads: Iterable[SignedOffPayload], processing_iov: IoV) -> list[StagingEntry]:
    """Deduplicate and check; raises ``StagingError`` listing every overlap, gap and conflict."""
    payloads = list(payloads)
    problems: list[str] = []
    # one stored payload per (name, checksum): the lowest revision carrying that content
    canonical: dict[tuple[str, str], SignedOffPayload] = {}
    for p in sorted(payloads, key=lambda p: (p.name, p.revision)):
        canonical.setdefault((p.name, p.checksum), p)
    by_revision: dict[tuple[str, int], SignedOffPayload] = {}
    for p in payloads:
        first = by_revision.setdefault((p.name, p.revision), p)
        if first.checksum != p.checksum:
            problems.append(
                f"{p.name} revision {p.revision} has two different contents (checksums {first.checksum} "
                f"in {first.file} and {p.checksum} in {p.file})"
            )
    entries: dict[tuple[str, IoV], StagingEntry] = {}
    sources: dict[tuple[str, IoV], SignedOffPayload] = {}
    for p in payloads:
        if not _inside(p.iov, processing_iov):
            problems.append(
                f"{p.describe()} is outside the processing's IoV {processing_iov} "
                "(it must start inside it and end inside it or stay open-ended)"
            )
            continue
        keep = canonical[(p.name, p.checksum)]
        entry = StagingEntry(p.name, keep.revision, p.checksum, p.iov, keep.file)
        existing = entries.get((p.name, p.iov))
        if existing is not None and existing.checksum == p.checksum:
            continue  # the same payload with the same IoV: listed once
        if existing is not None:
            problems.append(f"{sources[(p.name, p.iov)].describe()} and {p.describe()} have the same IoV")
            continue
        entries[(p.name, p.iov)] = entry
        sources[(p.name, p.iov)] = p

    names = sorted({name for name, _ in entries})
    for name in names:
        own = sorted((k for k in entries if k[0] == name), key=lambda k: _sort_key(k[1]))
        iovs = [k[1] for k in own]
        for i, a in enumerate(iovs):
            for b in iovs[i + 1 :]:
                if a.overlaps(b):
                    problems.append(
                        f"{sources[(name, a)].describe()} overlaps {sources[(name, b)].describe()}"
                    )
        first_iov = iovs[0]
        if _sort_key(first_iov) > (processing_iov.exp_low, processing_iov.run_low):
            problems.append(
                f"{name}: gap from the processing's start {processing_iov.exp_low},{processing_iov.run_low} "
                f"to {sources[(name, first_iov)].describe()}"
            )
        for a, b in pairwise(iovs):
            if a.is_open_ended or a.overlaps(b):
                continue
            if not _continues(a, b):
                problems.append(
                    f"{name}: gap between {sources[(name, a)].describe()} and {sources[(name, b)].describe()}"
                )
        reach = max(iovs, key=_end)
        if not reach.is_open_ended and _end(reach) < _end(processing_iov):
            end = (
                "open end"
                if processing_iov.is_open_ended
                else f"{processing_iov.exp_high},{processing_iov.run_high}"
            )
            problems.append(
                f"{name}: gap after {sources[(name, reach)].describe()} to the processing's {end}"
            )
    if problems:
        raise StagingError(problems)
    return sorted(entries.values(), key=lambda e: (e.name, _sort_key(e.iov)))


@dataclass
class StagingTag:
    """A named staging tag; only an OPEN tag takes payloads, a PUBLISHED one never changes."""

    name: str
    processing_iov: IoV
    entries: list[StagingEntry] = field(default_factory=list)
    state: StagingState = StagingState.OPEN
    directory: Path | None = None

    @classmethod
    def build(cls, name: str, payloads: Iterable[SignedOffPayload], processing_iov: IoV) -> StagingTag:
        return cls(name, processing_iov, build_entries(payloads, processing_iov))

    def _require(self, *states: StagingState, doing: str) -> None:
        if self.state not in states:
            if self.state is StagingState.PUBLISHED:
                raise StagingStateError(f"staging tag {self.name} is PUBLISHED and immutable: cannot {doing}")
            allowed = " or ".join(s.value for s in states)
            raise StagingStateError(
                f"staging tag {self.name} is {self.state.value}: {doing} needs it {allowed}"
            )

    def replace_payloads(self, payloads: Iterable[SignedOffPayload]) -> None:
        self._require(StagingState.OPEN, doing="change its payloads")
        self.entries = build_entries(payloads, self.processing_iov)

    def move_to(self, state: StagingState | str) -> None:
        """Change state along OPEN -> TESTING -> VALIDATED -> PUBLISHED (or back to OPEN before publishing)."""
        state = StagingState(state)
        if state not in _TRANSITIONS[self.state]:
            if self.state is StagingState.PUBLISHED:
                raise StagingStateError(f"staging tag {self.name} is PUBLISHED and immutable")
            raise StagingStateError(
                f"staging tag {self.name} cannot go from {self.state.value} to {state.value}"
            )
        self.state = state
        if self.directory is not None:
            self._write_tag_json(self.directory)
            if state is StagingState.PUBLISHED:
                for f in self.directory.iterdir():
                    f.chmod(0o444)

    def export(self, dest_dir: Path | str) -> Path:
        """Write ``database.txt``, the payload files and ``tag.json`` into the new directory ``dest_dir``."""
        self._require(StagingState.OPEN, doing="export it again")
        dest_dir = Path(dest_dir)
        if dest_dir.exists():
            raise FileExistsError(f"{dest_dir} already exists: export a staging tag into a new directory")
        problems = []
        for e in self.entries:
            if not e.file.is_file():
                problems.append(f"{e.name} revision {e.revision}: its file {e.file} is missing")
            elif md5sum(e.file) != e.checksum:
                problems.append(
                    f"{e.name} revision {e.revision}: {e.file} changed since sign-off (checksum differs)"
                )
        if problems:
            raise StagingError(problems)
        exported = []
        with atomic_directory(dest_dir) as tmp:
            for e in self.entries:
                target = tmp / e.filename
                if not target.exists():
                    atomic_copy(e.file, target)
                exported.append(StagingEntry(e.name, e.revision, e.checksum, e.iov, dest_dir / e.filename))
            (tmp / DATABASE_TXT).write_text(
                format_database_txt(PayloadEntry(e.name, e.revision, e.iov) for e in exported),
                encoding="utf-8",
            )
            self.entries = exported
            self._write_tag_json(tmp)
        self.directory = dest_dir
        return dest_dir

    def _write_tag_json(self, directory: Path) -> None:
        data = {
            "name": self.name,
            "state": self.state.value,
            "processing_iov": list(self.processing_iov),
            "entries": [
                {
                    "name": e.name,
                    "revision": e.revision,
                    "checksum": e.checksum,
                    "iov": list(e.iov),
                    "file": e.file.name,
                }
                for e in self.entries
            ],
        }
        atomic_write_text(directory / TAG_JSON, json.dumps(data, indent=2) + "\n")

    @classmethod
    def load(cls, directory: Path | str) -> StagingTag:
        directory = Path(directory)
        try:
            data = json.loads((directory / TAG_JSON).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise FileNotFoundError(
                f"{directory} holds no {TAG_JSON}: it is not an exported staging tag"
            ) from None
        entries = [
            StagingEntry(e["name"], e["revision"], e["checksum"], IoV(*e["iov"]), directory / e["file"])
            for e in data["entries"]
        ]
        return cls(
            data["name"], IoV(*data["processing_iov"]), entries, StagingState(data["state"]), directory
        )
