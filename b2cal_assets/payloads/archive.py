"""The download an expert gets: an outputdb (``database.txt`` + its payload files) as one tar.gz.

Members sit at the top level of the archive, the layout ``check_upload`` accepts back. The archive is
reproducible (sorted, fixed owner and time), so the same payloads always give the same bytes.
"""

from __future__ import annotations

import gzip
import shutil
import tarfile
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Protocol

from b2cal_assets.domain.iov import IoV
from b2cal_assets.domain.outputdb import DATABASE_TXT, PayloadEntry, format_database_txt, parse_database_txt
from b2cal_assets.files import atomic_open

ARCHIVE_SUFFIX = ".tar.gz"


class ArchiveError(Exception):
    """The outputdb cannot be packed (missing database.txt or a payload file it lists)."""


def _normalised(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.mtime = 0
    info.mode = 0o644
    return info


def make_archive(outputdb_dir: Path | str, dest: Path | str) -> Path:
    """Pack ``outputdb_dir`` into ``dest`` (a ``.tar.gz`` path, or a directory to put ``<name>.tar.gz`` in)."""
    outputdb_dir = Path(outputdb_dir)
    dest = Path(dest)
    if dest.is_dir():
        dest = dest / f"{outputdb_dir.name}{ARCHIVE_SUFFIX}"
    database_txt = outputdb_dir / DATABASE_TXT
    if not database_txt.is_file():
        raise ArchiveError(f"{outputdb_dir} holds no {DATABASE_TXT}: it is not an outputdb")
    entries = parse_database_txt(database_txt.read_text())
    files = sorted({e.filename for e in entries})
    missing = [f for f in files if not (outputdb_dir / f).is_file()]
    if missing:
        raise ArchiveError(
            f"{outputdb_dir}/{DATABASE_TXT} lists payload files that are missing: {', '.join(missing)}"
        )
    with (
        atomic_open(dest, "wb") as raw,
        gzip.GzipFile(filename="", fileobj=raw, mode="wb", mtime=0) as gz,
        tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar,
    ):
        for name in [DATABASE_TXT, *files]:
            tar.add(outputdb_dir / name, arcname=name, recursive=False, filter=_normalised)
    return dest


class PayloadFile(Protocol):
    """A current payload revision and its file (``loop.records.PayloadView``)."""

    @property
    def name(self) -> str: ...
    @property
    def revision(self) -> int: ...
    @property
    def iov(self) -> IoV: ...
    @property
    def file(self) -> str: ...


def current_payloads_archive(payloads: Iterable[PayloadFile], dest: Path | str) -> Path:
    """The current payloads (``name``, ``revision``, ``iov``, ``file``) as one ``.tar.gz`` an upload takes back.

    One outputdb directory listing exactly these revisions (a job's or a full upload's) is packed as it
    is; payloads spread over several (after a partial replacement) are gathered with a fresh
    ``database.txt`` naming only their current revisions.
    """
    payloads = list(payloads)
    if not payloads:
        raise ArchiveError("there are no current payloads to pack")
    entries = [PayloadEntry(p.name, int(p.revision), p.iov) for p in payloads]
    dirs = {Path(p.file).parent for p in payloads}
    if len(dirs) == 1:
        outputdb = next(iter(dirs))
        listed = (
            parse_database_txt((outputdb / DATABASE_TXT).read_text())
            if (outputdb / DATABASE_TXT).is_file()
            else []
        )
        if sorted(listed) == sorted(entries):
            return make_archive(outputdb, dest)
    with tempfile.TemporaryDirectory(prefix="b2cal-download-") as tmp:
        outputdb = Path(tmp) / "outputdb"
        outputdb.mkdir()
        for payload, entry in zip(payloads, entries, strict=True):
            shutil.copyfile(payload.file, outputdb / entry.filename)
        (outputdb / DATABASE_TXT).write_text(format_database_txt(entries))
        dest = Path(dest)
        if dest.is_dir():
            dest = dest / f"{Path(next(iter(dirs))).name}{ARCHIVE_SUFFIX}"
        return make_archive(outputdb, dest)
