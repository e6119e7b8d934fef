"""The conditions-database step of a finished processing: its signed-off payloads as a staging global tag.

The tag is exported to ``$B2CAL_HOME/staging/<processing>/`` in the framework's ``database.txt``
layout (plus ``tag.json``), ready for upload to the conditions database. A tag that does not check
(overlaps, gaps, a payload file changed since sign-off) is not exported: its problems are written to
``staging/<processing>.problems.json`` and reported, and the loop goes on.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from b2cal_assets import home
from b2cal_assets.conditions.staging import SignedOffPayload, StagingError, StagingTag
from b2cal_assets.domain.iov import IoV
from b2cal_assets.settings import settings


def staging_root() -> Path:
    return home.b2cal_home() / "staging"


def staging_dir(processing: str) -> Path:
    return staging_root() / processing


def problems_file(processing: str) -> Path:
    return staging_root() / f"{processing}.problems.json"


def tag_name(processing: str) -> str:
    """The staging global tag of ``processing`` (``B2CAL_CONDB_TAG_PATTERN``, default ``staging_{processing}``),
    the same name locally and in the conditions database."""
    return settings().condb_tag_pattern.replace("{processing}", processing)


@dataclass(frozen=True)
class StagedPayload:
    """One payload IoV of an exported staging tag, as callers show it; ``file`` is its name in the tag."""

    name: str
    revision: int
    checksum: str
    iov: IoV
    file: str


@dataclass(frozen=True)
class StagingResult:
    processing: str
    tag: str
    directory: Path | None  # None when the tag did not check and nothing was exported
    entries: list[StagedPayload] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    built_at: str = ""

    @property
    def ok(self) -> bool:
        return self.directory is not None and not self.problems


def export_staging(
    processing: str, payloads: Iterable[SignedOffPayload], processing_iov: IoV
) -> StagingResult:
    """Build, check and export; an earlier export is moved to ``staging/.history/`` (never deleted)."""
    payloads = list(payloads)
    built_at = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    name = tag_name(processing)
    if not payloads:
        return _refused(processing, name, ["no signed-off payloads: nothing to stage"], built_at)
    root = staging_root()
    root.mkdir(parents=True, exist_ok=True)
    fresh = root / f".{processing}.new-{uuid.uuid4().hex[:8]}"
    try:
        tag = StagingTag.build(name, payloads, processing_iov)
        tag.export(fresh)
    except StagingError as exc:
        shutil.rmtree(fresh, ignore_errors=True)
        return _refused(processing, name, exc.problems, built_at)
    target = staging_dir(processing)
    if target.exists():
        history = root / ".history"
        history.mkdir(exist_ok=True)
        os.rename(target, history / f"{processing}-{built_at}-{uuid.uuid4().hex[:4]}")
    os.rename(fresh, target)
    problems_file(processing).unlink(missing_ok=True)
    return show_staging(processing)


def _refused(processing: str, name: str, problems: list[str], built_at: str) -> StagingResult:
    path = problems_file(processing)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"tag": name, "built_at": built_at, "problems": problems}, indent=2) + "\n")
    return StagingResult(processing, name, None, [], list(problems), built_at)


def show_staging(processing: str) -> StagingResult:
    """What was last exported for ``processing`` and what stopped the latest build, if anything."""
    problems: list[str] = []
    built_at = ""
    if problems_file(processing).exists():
        data = json.loads(problems_file(processing).read_text())
        problems, built_at = list(data["problems"]), data.get("built_at", "")
    directory = staging_dir(processing)
    if not (directory / "tag.json").exists():
        return StagingResult(processing, tag_name(processing), None, [], problems, built_at)
    tag = StagingTag.load(directory)
    entries = [StagedPayload(e.name, e.revision, e.checksum, e.iov, e.file.name) for e in tag.entries]
    return StagingResult(processing, tag.name, directory, entries, problems, built_at)
