"""An expert's replacement payloads: every check before anything is stored, then an all-or-nothing install.

``check_upload`` unpacks a tar.gz or zip into a private directory while checking it: the layout (a
``database.txt`` and the ``dbstore_<Payload>_rev_<revision>.root`` files it lists, at the top level or
inside one top directory), no path tricks (``..``, absolute names, links, devices), size limits counted
on the bytes actually unpacked (so a zip bomb stops at the limit, not at a full disk), the
``database.txt`` syntax, payload names the calibration produces, IoVs inside the processing, and ROOT
files that the payload reader opens. ``install_upload`` then copies the checked files into a fresh
revision directory through a temporary directory and one rename: a bad upload changes nothing.
"""

from __future__ import annotations

import gzip
import re
import shutil
import stat
import tarfile
import tempfile
import zipfile
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO, BinaryIO

from b2cal_assets.caf.payload_io import md5sum, read_payload
from b2cal_assets.domain.iov import IoV
from b2cal_assets.domain.outputdb import (
    DATABASE_TXT,
    DatabaseTxtError,
    PayloadEntry,
    format_database_txt,
    parse_database_txt,
    payload_filename,
)
from b2cal_assets.files import atomic_directory

PAYLOAD_FILE = re.compile(r"dbstore_(?P<name>[A-Za-z0-9_.\-]+)_rev_(?P<revision>[1-9][0-9]*)\.root")
DEFAULT_MAX_MEMBERS = 2000
_CHUNK = 1 << 16
_LAYOUT_HINT = (
    "an upload holds database.txt and the dbstore_<Payload>_rev_<revision>.root files it lists, "
    "at the top of the archive or inside one directory"
)


class UploadRejected(Exception):
    """The upload is not accepted; the message says what is wrong and what the upload must look like."""


@dataclass(frozen=True)
class UploadedPayload:
    name: str
    revision: int
    iov: IoV
    file: Path
    checksum: str  # md5 hex, as the conditions database computes it
    size: int


@dataclass
class UploadContents:
    """A checked upload, unpacked in ``directory`` (private; removed by ``cleanup`` or the context manager)."""

    directory: Path
    entries: list[PayloadEntry]
    payloads: list[UploadedPayload] = field(default_factory=list)
    total_bytes: int = 0

    def cleanup(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> UploadContents:
        return self

    def __exit__(self, *exc: object) -> None:
        self.cleanup()


@dataclass(frozen=True)
class InstalledUpload:
    directory: Path
    payloads: list[UploadedPayload]


@dataclass(frozen=True)
class _Member:
    name: str
    kind: str  # file | dir | link | special
    open: object  # () -> binary stream, for files


class _TooBig(Exception):
    pass


class _LimitedReader:
    """Caps everything decompressed (headers included), so no member can make the reader eat the disk."""

    def __init__(self, raw: IO[bytes], limit: int) -> None:
        self._raw, self._limit, self.count = raw, limit, 0

    def read(self, size: int = -1) -> bytes:
        data = self._raw.read(size)
        self.count += len(data)
        if self.count > self._limit:
            raise _TooBig
        return data


def _archive_kind(path: Path) -> str:
    with path.open("rb") as fh:
        magic = fh.read(4)
    if magic[:2] == b"\x1f\x8b":
        return "tar.gz"
    if magic in (b"PK\x03\x04", b"PK\x05\x06"):
        return "zip"
    raise UploadRejected(
        f"{path.name} is not a tar.gz or zip archive; pack the payloads with "
        "'tar czf upload.tar.gz database.txt dbstore_*.root' (or as a zip)"
    )


def _tar_members(path: Path, limit: int) -> Iterator[_Member]:
    with gzip.open(path, "rb") as gz:
        limited = _LimitedReader(gz, limit)  # type: ignore[arg-type]  # GzipFile reads bytes
        try:
            with tarfile.open(fileobj=limited, mode="r|") as tar:  # type: ignore[call-overload]
                for info in tar:
                    if info.isreg():
                        kind = "file"
                    elif info.isdir():
                        kind = "dir"
                    elif info.issym() or info.islnk():
                        kind = "link"
                    else:
                        kind = "special"
                    yield _Member(info.name, kind, lambda info=info, tar=tar: tar.extractfile(info))
        except tarfile.ReadError as exc:
            raise UploadRejected(
                f"{path.name} is a gzip file but not a readable tar archive ({exc})"
            ) from None
        except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
            raise UploadRejected(
                f"{path.name} is truncated or corrupt ({exc or type(exc).__name__})"
            ) from None


def _zip_members(path: Path) -> Iterator[_Member]:
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise UploadRejected(f"{path.name} is not a readable zip archive ({exc})") from None
    with archive:
        for info in archive.infolist():
            file_type = stat.S_IFMT(info.external_attr >> 16)  # 0 when the zip records no Unix mode
            if file_type == stat.S_IFLNK:
                kind = "link"
            elif info.is_dir():
                kind = "dir"
            elif file_type not in (0, stat.S_IFREG):
                kind = "special"
            else:
                kind = "file"
            if info.flag_bits & 0x1:
                raise UploadRejected(f"{info.filename} in {path.name} is encrypted; upload it unencrypted")
            yield _Member(info.filename, kind, lambda info=info: archive.open(info))


def _member_parts(name: str) -> tuple[str, ...]:
    """The path parts of a member name, refusing anything that could land outside the upload."""
    if "\\" in name:
        raise UploadRejected(f"unsafe path {name!r} in the archive: use '/' as the separator")
    if name.startswith("/") or re.match(r"^[A-Za-z]:", name):
        raise UploadRejected(f"unsafe path {name!r} in the archive: absolute paths are not allowed")
    parts = tuple(p for p in PurePosixPath(name).parts if p not in ("", "."))
    if ".." in parts:
        raise UploadRejected(f"unsafe path {name!r} in the archive: '..' is not allowed")
    if not parts:
        raise UploadRejected(f"unsafe path {name!r} in the archive: it names no file")
    return parts


def _copy_limited(src: BinaryIO, dst: Path, name: str, *, max_file_bytes: int, budget: int) -> int:
    written = 0
    with dst.open("xb") as out:
        while block := src.read(_CHUNK):
            written += len(block)
            if written > max_file_bytes:
                raise UploadRejected(f"{name} is larger than the per-file limit of {max_file_bytes} bytes")
            if written > budget:
                raise _TooBig
            out.write(block)
    return written


def _unpack(
    path: Path, into: Path, *, max_bytes: int, max_file_bytes: int, max_members: int
) -> tuple[dict[str, Path], int]:
    kind = _archive_kind(path)
    # tar headers: 512 bytes per member plus up to two extended headers, and the end-of-archive blocks
    limit = max_bytes + 3 * 512 * (max_members + 1) + 20 * 512
    members = _tar_members(path, limit) if kind == "tar.gz" else _zip_members(path)
    files: dict[str, Path] = {}
    root: str | None = None  # "" = members at top level, else the single top directory
    total = count = 0
    try:
        for member in members:
            count += 1
            if count > max_members:
                raise UploadRejected(f"{path.name} has more than {max_members} members; {_LAYOUT_HINT}")
            parts = _member_parts(member.name)
            if member.kind == "link":
                raise UploadRejected(f"{member.name} is a link; links are not allowed in an upload")
            if member.kind == "special":
                raise UploadRejected(
                    f"{member.name} is not a regular file (device, fifo, ...); {_LAYOUT_HINT}"
                )
            if member.kind == "dir":
                if len(parts) > 1:
                    raise UploadRejected(f"nested directory {member.name!r}: {_LAYOUT_HINT}")
                if root not in (None, parts[0]):
                    raise UploadRejected(f"{member.name!r} is a second top directory: {_LAYOUT_HINT}")
                root = parts[0]
                continue
            if len(parts) > 2:
                raise UploadRejected(f"{member.name} is in a nested directory: {_LAYOUT_HINT}")
            top = parts[0] if len(parts) == 2 else ""
            if root is None:
                root = top
            elif top != root:
                where = f"directory {root!r}" if root else "the top of the archive"
                raise UploadRejected(
                    f"{member.name} is outside {where} where the other files are: {_LAYOUT_HINT}"
                )
            base = parts[-1]
            if base != DATABASE_TXT and not PAYLOAD_FILE.fullmatch(base):
                raise UploadRejected(f"unexpected file {member.name!r}: {_LAYOUT_HINT}")
            if base in files:
                raise UploadRejected(f"{member.name} appears twice in the archive")
            stream = member.open()  # type: ignore[operator]
            if stream is None:
                raise UploadRejected(f"{member.name} cannot be read from the archive")
            with stream:
                size = _copy_limited(
                    stream, into / base, member.name, max_file_bytes=max_file_bytes, budget=max_bytes - total
                )
            total += size
            files[base] = into / base
    except _TooBig:
        raise UploadRejected(
            f"{path.name} unpacks to more than the limit of {max_bytes} bytes; upload fewer or smaller payloads"
        ) from None
    except (OSError, EOFError, zlib.error, zipfile.BadZipFile, tarfile.TarError, RuntimeError) as exc:
        if isinstance(exc, FileExistsError):
            raise UploadRejected(f"{exc.filename} appears twice in the archive") from None
        raise UploadRejected(f"{path.name} is truncated or corrupt ({exc or type(exc).__name__})") from None
    return files, total


def _iov_inside(iov: IoV, processing_iov: IoV) -> bool:
    """Starts inside the processing and ends inside it, or stays open-ended (prompt payloads do)."""
    if not processing_iov.contains_run(iov.exp_low, iov.run_low):
        return False
    return iov.is_open_ended or processing_iov.contains(iov)


def check_upload(
    archive_path: Path | str,
    *,
    produced_payloads: set[str],
    processing_iov: IoV,
    max_bytes: int,
    max_file_bytes: int | None = None,
    max_members: int = DEFAULT_MAX_MEMBERS,
    work_dir: Path | str | None = None,
) -> UploadContents:
    """Unpack and check an upload; raises ``UploadRejected`` naming the first problem found."""
    archive_path = Path(archive_path)
    if not archive_path.is_file():
        raise UploadRejected(f"no upload file at {archive_path}")
    if archive_path.stat().st_size > max_bytes:
        raise UploadRejected(f"{archive_path.name} is larger than the limit of {max_bytes} bytes")
    into = Path(tempfile.mkdtemp(prefix="b2cal-upload-", dir=work_dir))
    try:
        files, total = _unpack(
            archive_path,
            into,
            max_bytes=max_bytes,
            max_file_bytes=max_file_bytes if max_file_bytes is not None else max_bytes,
            max_members=max_members,
        )
        contents = UploadContents(
            into, _check_database(files, produced_payloads, processing_iov), total_bytes=total
        )
        contents.payloads = _check_payload_files(contents.entries, files)
        return contents
    except BaseException:
        shutil.rmtree(into, ignore_errors=True)
        raise


def _check_database(files: dict[str, Path], produced: set[str], processing_iov: IoV) -> list[PayloadEntry]:
    if DATABASE_TXT not in files:
        raise UploadRejected(f"database.txt is missing: {_LAYOUT_HINT}")
    try:
        entries = parse_database_txt(files[DATABASE_TXT].read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise UploadRejected("database.txt is not a UTF-8 text file") from None
    except DatabaseTxtError as exc:
        raise UploadRejected(str(exc)) from None
    if not entries:
        raise UploadRejected("database.txt lists no payloads")
    allowed = ", ".join(sorted(produced)) or "none"
    for e in entries:
        if e.name not in produced:
            raise UploadRejected(
                f"payload {e.name} is not produced by this calibration (it produces: {allowed}); "
                "upload only replacements of its own payloads"
            )
        if not _iov_inside(e.iov, processing_iov):
            raise UploadRejected(
                f"payload {e.name} revision {e.revision}: IoV {e.iov} is outside the processing's IoV "
                f"{processing_iov}; it must start inside it and end inside it or stay open-ended"
            )
    by_name: dict[str, list[PayloadEntry]] = {}
    for e in entries:
        for other in by_name.get(e.name, []):
            if other.iov.overlaps(e.iov):
                raise UploadRejected(
                    f"payload {e.name}: IoV {other.iov} (revision {other.revision}) overlaps IoV {e.iov} "
                    f"(revision {e.revision}) in database.txt"
                )
        by_name.setdefault(e.name, []).append(e)
    return entries


def _check_payload_files(entries: list[PayloadEntry], files: dict[str, Path]) -> list[UploadedPayload]:
    listed = {e.filename for e in entries}
    for name in sorted(files):
        if name != DATABASE_TXT and name not in listed:
            raise UploadRejected(
                f"{name} is not listed in database.txt; list it or leave it out of the upload"
            )
    checked: dict[str, tuple[str, int]] = {}
    payloads = []
    for e in entries:
        path = files.get(e.filename)
        if path is None:
            raise UploadRejected(
                f"database.txt lists {e.name} revision {e.revision} but the archive has no {e.filename}"
            )
        if e.filename not in checked:
            try:
                read_payload(path)
            except Exception as exc:
                raise UploadRejected(f"{e.filename} is not a readable payload ROOT file: {exc}") from None
            checked[e.filename] = (md5sum(path), path.stat().st_size)
        checksum, size = checked[e.filename]
        payloads.append(UploadedPayload(e.name, e.revision, e.iov, path, checksum, size))
    return payloads


def install_upload(
    contents: UploadContents,
    dest_dir: Path | str,
    *,
    revisions: Mapping[tuple[str, int], int] | None = None,
) -> InstalledUpload:
    """Copy a checked upload into the new directory ``dest_dir`` (which must not exist) in one rename.

    ``revisions`` maps an uploaded ``(name, revision)`` to the revision it gets in the payload store
    (uploads add revisions, they never overwrite); unmapped ones keep their number.
    """
    dest_dir = Path(dest_dir)
    if dest_dir.exists():
        raise FileExistsError(f"{dest_dir} already exists: an upload is installed into a new directory")
    mapping = dict(revisions or {})
    installed: list[UploadedPayload] = []
    with atomic_directory(dest_dir) as tmp:
        copied: dict[str, Path] = {}
        for p in contents.payloads:
            revision = mapping.get((p.name, p.revision), p.revision)
            target = tmp / payload_filename(p.name, revision)
            if target.name not in copied:
                shutil.copyfile(p.file, target)
                copied[target.name] = p.file
            elif copied[target.name] != p.file:
                raise ValueError(f"revisions maps two uploaded files onto {target.name}")
            installed.append(
                UploadedPayload(p.name, revision, p.iov, dest_dir / target.name, p.checksum, p.size)
            )
        text = format_database_txt(PayloadEntry(p.name, p.revision, p.iov) for p in installed)
        (tmp / DATABASE_TXT).write_text(text, encoding="utf-8")
    return InstalledUpload(dest_dir, installed)
