"""Writing files so a crash or a full disk never leaves a 0-byte or half file behind: the one helper.

Every file the loop relies on (checkpoints, job state, payloads, pid files, archives) is written to a
temporary file beside its destination, flushed to disk (fsync) and renamed over it; a failure removes
the temporary file and raises ``WriteError`` naming the destination, so the old file (if any) stays.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

__all__ = [
    "WriteError",
    "atomic_copy",
    "atomic_copytree",
    "atomic_directory",
    "atomic_open",
    "atomic_path",
    "atomic_write_bytes",
    "atomic_write_text",
]


class WriteError(OSError):
    """A file could not be written (full disk, quota, read-only, ...); the message names the file."""

    def __init__(self, path: Path | str, cause: OSError) -> None:
        reason = cause.strerror or str(cause)
        super().__init__(cause.errno, f"cannot write {path}: {reason}", str(path))
        self.path = Path(path)
        self.message = f"cannot write {path}: {reason}"

    def __str__(self) -> str:
        return self.message


def _temp_for(dest: Path, suffix: str = "") -> Path:
    return dest.with_name(f".{dest.name}.{os.getpid()}-{uuid.uuid4().hex[:6]}.tmp{suffix}")


def _fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(directory: Path) -> None:
    with contextlib.suppress(OSError):  # some filesystems cannot fsync a directory; the rename stands
        _fsync_path(directory)


_NO_ROOM = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS}


def _about_writing(exc: OSError, tmp: Path) -> bool:
    """A full disk, or an error about the temporary file (or no file in particular)."""
    if isinstance(exc, WriteError):
        return False
    names = {str(n) for n in (exc.filename, exc.filename2) if n is not None}
    return exc.errno in _NO_ROOM or not names or any(n.startswith(str(tmp)) for n in names)


def _named(dest: Path, tmp: Path, exc: OSError) -> OSError:
    """An error writing the temporary file is an error writing ``dest``; others pass as they are."""
    return WriteError(dest, exc) if _about_writing(exc, tmp) else exc


@contextlib.contextmanager
def atomic_path(dest: Path | str, *, suffix: str = "", mode: int | None = None) -> Iterator[Path]:
    """Yield a temporary path to write with any library; on success it becomes ``dest`` in one step.

    ``suffix`` is for writers that insist on an extension (``numpy.savez`` adds ``.npz``).
    """
    dest = Path(dest)
    tmp = _temp_for(dest, suffix)
    try:
        try:
            yield tmp
            if mode is not None:
                tmp.chmod(mode)
            _fsync_path(tmp)
            os.replace(tmp, dest)
        except OSError as exc:
            named = _named(dest, tmp, exc)
            if named is exc:
                raise
            raise named from exc
        _fsync_dir(dest.parent)
    finally:
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_open(dest: Path | str, mode: str = "w", **kwargs: Any) -> Iterator[IO[Any]]:
    """``open(dest, mode)`` whose result appears only complete, when the block ends without error."""
    with atomic_path(dest) as tmp, open(tmp, mode, **kwargs) as fh:
        yield fh


def atomic_write_text(dest: Path | str, text: str, *, encoding: str = "utf-8", mode: int | None = None) -> Path:
    """Write ``text`` to ``dest`` atomically; returns ``dest``."""
    with atomic_path(dest, mode=mode) as tmp:
        tmp.write_text(text, encoding=encoding)
    return Path(dest)


def atomic_write_bytes(dest: Path | str, data: bytes) -> Path:
    """Write ``data`` to ``dest`` atomically; returns ``dest``."""
    with atomic_path(dest) as tmp:
        tmp.write_bytes(data)
    return Path(dest)


def atomic_copy(source: Path | str, dest: Path | str) -> Path:
    """Copy ``source`` to ``dest`` so ``dest`` is never a 0-byte or partial copy."""
    with atomic_path(dest) as tmp:
        shutil.copyfile(source, tmp)
    return Path(dest)


def atomic_copytree(source: Path | str, dest: Path | str) -> Path:
    """Copy the directory ``source`` to ``dest`` (replacing it): ``dest`` holds the old or the whole new copy.

    The copy is made in a temporary directory beside ``dest``, each file flushed, then renamed into place.
    """
    source, dest = Path(source), Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_for(dest)
    aside = _temp_for(dest, ".old")
    try:
        try:
            tmp.mkdir()
            for path in sorted(source.rglob("*")):
                target = tmp / path.relative_to(source)
                if path.is_dir():
                    target.mkdir(exist_ok=True)
                    continue
                shutil.copyfile(path, target)
                _fsync_path(target)
            _fsync_dir(tmp)
            if dest.exists():
                os.rename(dest, aside)
            os.rename(tmp, dest)
        except OSError as exc:
            if aside.exists() and not dest.exists():
                os.rename(aside, dest)
            if not _about_writing(exc, tmp):
                raise
            raise WriteError(dest, exc) from exc
        _fsync_dir(dest.parent)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(aside, ignore_errors=True)
    return dest


@contextlib.contextmanager
def atomic_directory(dest: Path | str) -> Iterator[Path]:
    """Yield a new empty directory beside ``dest`` to fill; on success it becomes ``dest`` in one rename.

    ``dest`` must not exist yet (a directory already there is never replaced): readers see no directory
    or the whole one, each file flushed to disk. On failure the half-filled directory is removed.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_for(dest)
    try:
        try:
            tmp.mkdir()
            yield tmp
            for path in tmp.rglob("*"):
                if path.is_file():
                    _fsync_path(path)
            _fsync_dir(tmp)
            if dest.exists():
                raise FileExistsError(errno.EEXIST, f"{dest} already exists", str(dest))
            os.rename(tmp, dest)
        except OSError as exc:
            if isinstance(exc, FileExistsError) or not _about_writing(exc, tmp):
                raise
            raise WriteError(dest, exc) from exc
        _fsync_dir(dest.parent)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
