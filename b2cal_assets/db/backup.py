"""Backups of the calibration database with each engine's own tool, and restoring them.

One backup is one timestamped ``.tar.gz`` archive holding ``manifest.json``, the database dump
(``database.sql`` from ``mariadb-dump --single-transaction`` or ``pg_dump``; ``database.sqlite`` from
SQLite's online backup API) and, when a payload directory is given, the payload files under ``payloads/``.
The dump is taken first and the payload files after it, so every payload the dump refers to is in the
archive (payload files are only ever added, never rewritten). None of the dumps blocks writers.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Engine, MetaData, inspect, select, text
from sqlalchemy.engine import URL
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import NullPool

from b2cal_assets.archives import UnsafeArchive, extract_data
from b2cal_assets.db.engine import (
    connection_error,
    create_database_engine,
    dialect_name,
    display_url,
    dispose_engine,
    parse_url,
    sqlite_path,
)
from b2cal_assets.db.errors import BackupError, InvalidValue, RestoreRefused
from b2cal_assets.files import atomic_path

ARCHIVE_PREFIX = "b2cal-backup-"
ARCHIVE_SUFFIX = ".tar.gz"
FORMAT_VERSION = 1
INSTALL_HINT = (
    "install the database client tools (.ci/install-db-tools.sh: mariadb-client, postgresql-client)"
)


@dataclass(frozen=True)
class BackupResult:
    """What ``backup_database`` wrote."""

    path: Path
    engine: str  # sqlite | mysql | postgresql
    created_at: datetime
    revision: str | None
    size_bytes: int
    payloads_included: bool
    payload_dir: Path | None
    removed: tuple[Path, ...] = ()  # older archives deleted by the retention count
    note: str = ""


@dataclass(frozen=True)
class RestoreResult:
    archive: Path
    engine: str
    revision: str | None
    tables: int
    payload_dir: Path | None = None
    payloads_moved_aside: Path | None = None
    safety_backup: Path | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)


# --- helpers --------------------------------------------------------------------------------------------


def _tool(*names: str) -> str:
    for name in names:
        found = shutil.which(name)
        if found:
            return found
    raise BackupError(f"{names[0]} was not found on PATH: {INSTALL_HINT}")


def _run(command: Sequence[str], *, env: dict[str, str] | None = None, stdin=None, stdout=None) -> None:
    try:
        completed = subprocess.run(
            list(command),
            env={**os.environ, **(env or {})},
            stdin=stdin,
            stdout=stdout if stdout is not None else subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            check=False,
        )
    except OSError as exc:
        raise BackupError(f"cannot run {command[0]}: {exc}") from exc
    if completed.returncode != 0:
        tail = completed.stderr.decode(errors="replace").strip().splitlines()[-3:]
        raise BackupError(f"{Path(command[0]).name} failed (exit {completed.returncode}): {' | '.join(tail)}")


@contextmanager
def _mysql_options(url: URL) -> Iterator[str]:
    """A private option file with the connection settings (keeps the password off the command line)."""
    lines = ["[client]"]
    if url.host:
        lines.append(f"host={url.host}")
    if url.port:
        lines.append(f"port={url.port}")
    if url.username:
        lines.append(f"user={url.username}")
    if url.password:
        lines.append(f"password={url.password}")
    socket = url.query.get("unix_socket")
    if socket:
        lines.append(f"socket={socket}")
    fd, path = tempfile.mkstemp(prefix="b2cal-my-", suffix=".cnf")
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write("\n".join(lines) + "\n")
        yield path
    finally:
        os.unlink(path)


def _pg_args(url: URL) -> tuple[list[str], dict[str, str]]:
    args = []
    if url.host:
        args += ["-h", url.host]
    if url.port:
        args += ["-p", str(url.port)]
    if url.username:
        args += ["-U", url.username]
    env = {"PGCONNECT_TIMEOUT": "10"}
    if url.password:
        env["PGPASSWORD"] = url.password
    return args, env


def _current_revision(engine: Engine) -> str | None:
    try:
        with engine.connect() as connection:
            if not inspect(connection).has_table("alembic_version"):
                return None
            return connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
    except DBAPIError as exc:
        raise connection_error(engine.url, exc) from exc


def _user_tables(engine: Engine) -> list[str]:
    try:
        with engine.connect() as connection:
            return sorted(inspect(connection).get_table_names())
    except DBAPIError as exc:
        raise connection_error(engine.url, exc) from exc


def list_backups(dest_dir: str | Path) -> list[Path]:
    """The backup archives in ``dest_dir``, newest first."""
    directory = Path(dest_dir)
    if not directory.is_dir():
        return []
    found = [p for p in directory.glob(f"{ARCHIVE_PREFIX}*{ARCHIVE_SUFFIX}") if p.is_file()]
    return sorted(found, key=lambda p: p.name, reverse=True)


# --- dumping --------------------------------------------------------------------------------------------


def _dump(url: URL, engine: str, target: Path) -> None:
    if engine == "sqlite":
        source = sqlite3.connect(f"file:{sqlite_path(url)}?mode=ro", uri=True, timeout=30)
        copy = sqlite3.connect(target)
        try:
            source.backup(copy)  # a consistent snapshot; in WAL mode writers carry on meanwhile
            copy.execute("PRAGMA journal_mode = DELETE")  # a self-contained file, no -wal beside it
        finally:
            copy.close()
            source.close()
    elif engine == "mysql":
        tool = _tool("mariadb-dump", "mysqldump")
        with _mysql_options(url) as options, target.open("wb") as out:
            _run(
                [
                    tool,
                    f"--defaults-extra-file={options}",
                    "--single-transaction",  # one consistent snapshot, no table locks
                    "--quick",
                    "--routines",
                    "--triggers",
                    "--hex-blob",
                    "--no-tablespaces",
                    "--default-character-set=utf8mb4",
                    str(url.database),
                ],
                stdout=out,
            )
    else:
        tool = _tool("pg_dump")
        args, env = _pg_args(url)
        _run(
            [
                tool,
                *args,
                "--no-owner",
                "--no-privileges",
                "--format=plain",
                f"--file={target}",
                str(url.database),
            ],
            env=env,
        )


def backup_database(
    url: str | URL,
    dest_dir: str | Path,
    retention: int | None = 14,
    payload_dir: str | Path | None = None,
) -> BackupResult:
    """Write a compressed, timestamped backup into ``dest_dir`` and keep only the newest ``retention``.

    ``retention=None`` keeps every archive. A ``payload_dir`` that does not exist is noted, not an error
    (no payloads were stored yet).
    """
    if retention is not None and retention < 1:
        raise InvalidValue(f"the retention count must be at least 1; got {retention}")
    parsed = parse_url(url)
    engine_name = dialect_name(parsed)
    source_file = sqlite_path(parsed)
    if engine_name == "sqlite" and (source_file is None or not source_file.exists()):
        raise BackupError(
            f"the SQLite database {source_file or ':memory:'} does not exist: nothing to back up"
        )
    engine = create_database_engine(parsed, sqlite_begin="DEFERRED", poolclass=NullPool)
    try:
        revision = _current_revision(engine)
    finally:
        engine.dispose()
    directory = Path(dest_dir)
    directory.mkdir(parents=True, exist_ok=True)
    created = datetime.now(UTC)
    name = f"{ARCHIVE_PREFIX}{created:%Y%m%dT%H%M%S%fZ}-{engine_name}{ARCHIVE_SUFFIX}"
    archive = directory / name
    payloads = Path(payload_dir) if payload_dir is not None else None
    include_payloads = payloads is not None and payloads.is_dir()
    note = ""
    if payloads is None:
        note = "payload files not included (no payload directory given)"
    elif not include_payloads:
        note = f"payload directory {payloads} does not exist: no payload files to include"
    with tempfile.TemporaryDirectory(prefix=".b2cal-backup-", dir=directory) as work:
        dump = Path(work) / ("database.sqlite" if engine_name == "sqlite" else "database.sql")
        _dump(parsed, engine_name, dump)
        manifest = {
            "format": FORMAT_VERSION,
            "engine": engine_name,
            "database": display_url(parsed),
            "revision": revision,
            "created_at": created.isoformat(),
            "dump": dump.name,
            "payloads": include_payloads,
            "payload_dir": str(payloads.resolve()) if payloads is not None else None,
        }
        manifest_file = Path(work) / "manifest.json"
        manifest_file.write_text(json.dumps(manifest, indent=2))
        with atomic_path(archive) as partial, tarfile.open(partial, "w:gz") as tar:
            tar.add(manifest_file, arcname="manifest.json")
            tar.add(dump, arcname=dump.name)
            if include_payloads:
                assert payloads is not None
                tar.add(payloads, arcname="payloads")
    removed: list[Path] = []
    if retention is not None:
        for old in list_backups(directory)[retention:]:
            old.unlink(missing_ok=True)
            removed.append(old)
    return BackupResult(
        path=archive,
        engine=engine_name,
        created_at=created.replace(tzinfo=None),
        revision=revision,
        size_bytes=archive.stat().st_size,
        payloads_included=include_payloads,
        payload_dir=payloads,
        removed=tuple(removed),
        note=note,
    )


# --- restoring ------------------------------------------------------------------------------------------


def read_manifest(archive: str | Path) -> dict:
    path = Path(archive)
    if not path.is_file():
        raise BackupError(f"no backup archive at {path}")
    try:
        with tarfile.open(path, "r:gz") as tar:
            member = tar.extractfile("manifest.json")
            if member is None:
                raise KeyError("manifest.json")
            return json.loads(member.read())
    except (tarfile.TarError, KeyError, OSError, json.JSONDecodeError, EOFError) as exc:
        raise BackupError(f"{path} is not a b2cal backup archive (or it is damaged): {exc}") from exc


def _extract(archive: Path, into: Path) -> None:
    """Unpack everything, reading the whole archive first so a damaged one fails before anything changes."""
    try:
        with tarfile.open(archive, "r:gz") as tar:
            extract_data(tar, into)
    except UnsafeArchive as exc:
        raise BackupError(f"{archive} holds what a b2cal backup never does: {exc}: not restored") from exc
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise BackupError(f"cannot unpack {archive} (damaged or incomplete?): {exc}") from exc


def _has_data(directory: Path) -> bool:
    return directory.is_dir() and any(p.is_file() for p in directory.rglob("*"))


def restore_database(
    url: str | URL,
    archive: str | Path,
    force: bool = False,
    payload_dir: str | Path | None = None,
    safety_backup_dir: str | Path | None = None,
) -> RestoreResult:
    """Replace the database at ``url`` with the backup in ``archive``.

    A database that holds tables (or a non-empty payload directory) is only replaced with ``force``; then,
    with ``safety_backup_dir``, a backup of what is there now is taken first, and existing payload files
    are moved aside (``<dir>.before-restore-<time>``), never deleted. On PostgreSQL and SQLite the
    database is replaced in one transaction.
    """
    archive = Path(archive)
    manifest = read_manifest(archive)
    parsed = parse_url(url)
    engine_name = dialect_name(parsed)
    if manifest.get("engine") != engine_name:
        raise BackupError(
            f"{archive.name} is a backup of a {manifest.get('engine')} database; it cannot be restored into "
            f"{display_url(parsed)} ({engine_name})"
        )
    target_payloads = (
        Path(payload_dir or manifest.get("payload_dir") or "") if manifest.get("payloads") else None
    )
    path = sqlite_path(parsed)
    if path is not None and not path.exists():
        tables: list[str] = []  # nothing there yet; connecting would leave an empty file on a refusal
    else:
        engine = create_database_engine(parsed, sqlite_begin="DEFERRED", poolclass=NullPool)
        try:
            tables = _user_tables(engine)
        finally:
            engine.dispose()
    refusals = []
    if tables:
        refusals.append(f"{display_url(parsed)} holds {len(tables)} tables")
    if target_payloads is not None and _has_data(target_payloads):
        refusals.append(f"the payload directory {target_payloads} is not empty")
    if refusals and not force:
        raise RestoreRefused(
            f"{' and '.join(refusals)}; restoring would replace them: add --force "
            "(a backup of the current state is taken first)"
        )
    notes: list[str] = []
    with tempfile.TemporaryDirectory(prefix="b2cal-restore-") as work:
        unpacked = Path(work)
        _extract(archive, unpacked)
        dump = unpacked / str(manifest.get("dump"))
        if not dump.is_file():
            raise BackupError(f"{archive.name} has no {manifest.get('dump')} in it: damaged archive")
        _check_dump(engine_name, dump, archive.name)  # before the safety backup: a refusal leaves nothing
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        safety = None
        if tables and safety_backup_dir is not None:
            safety = backup_database(parsed, safety_backup_dir, retention=None).path
            notes.append(f"the database as it was is saved in {safety}")
        dispose_engine(parsed)
        _load(parsed, engine_name, dump, tables, unpacked)
        dispose_engine(parsed)
        moved_aside = None
        if target_payloads is not None:
            moved_aside = _restore_payloads(unpacked / "payloads", target_payloads)
            if moved_aside is not None:
                notes.append(f"the payload files that were there are kept in {moved_aside}")
    engine = create_database_engine(parsed, sqlite_begin="DEFERRED", poolclass=NullPool)
    try:
        restored_tables = _user_tables(engine)
        revision = _current_revision(engine)
    finally:
        engine.dispose()
    if not manifest.get("payloads"):
        notes.append("the backup holds no payload files; the payload directory was left as it is")
    return RestoreResult(
        archive=archive,
        engine=engine_name,
        revision=revision,
        tables=len(restored_tables),
        payload_dir=target_payloads,
        payloads_moved_aside=moved_aside,
        safety_backup=safety,
        notes=tuple(notes),
    )


def _check_dump(engine_name: str, dump: Path, archive_name: str) -> None:
    """Refuse a damaged database inside the archive before anything is changed or backed up."""
    damaged = f"{archive_name}: the database inside ({dump.name}) is damaged"
    if engine_name == "sqlite":
        try:
            connection = sqlite3.connect(f"file:{dump}?mode=ro", uri=True)
            try:
                (verdict,) = connection.execute("PRAGMA quick_check").fetchone()
                connection.execute("SELECT count(*) FROM sqlite_master").fetchone()
            finally:
                connection.close()
        except sqlite3.Error as exc:
            raise BackupError(f"{damaged} ({exc}); nothing was changed") from None
        if verdict != "ok":
            raise BackupError(f"{damaged} (integrity check: {verdict}); nothing was changed")
        return
    tail = b""
    with dump.open("rb") as fh:  # a SQL dump: text, with the tables in it
        while chunk := fh.read(1 << 20):
            if b"CREATE TABLE" in (tail + chunk).upper():
                return
            tail = chunk[-16:]
    raise BackupError(f"{damaged} (no CREATE TABLE in it); nothing was changed")


def _load(url: URL, engine_name: str, dump: Path, existing_tables: list[str], work: Path) -> None:
    if engine_name == "sqlite":
        path = sqlite_path(url)
        assert path is not None
        source = sqlite3.connect(dump)
        target = sqlite3.connect(path, timeout=30)
        try:
            source.backup(target)  # replaces every page of the target in one write transaction
            target.execute("PRAGMA journal_mode = WAL")
        finally:
            target.close()
            source.close()
    elif engine_name == "mysql":
        engine = create_database_engine(url, poolclass=NullPool)
        try:
            with engine.begin() as connection:
                connection.execute(text("SET FOREIGN_KEY_CHECKS = 0"))
                for table in existing_tables:
                    connection.execute(text(f"DROP TABLE IF EXISTS `{table}`"))
                connection.execute(text("SET FOREIGN_KEY_CHECKS = 1"))
        finally:
            engine.dispose()
        tool = _tool("mariadb", "mysql")
        with _mysql_options(url) as options, dump.open("rb") as dump_file:
            _run(
                [
                    tool,
                    f"--defaults-extra-file={options}",
                    "--default-character-set=utf8mb4",
                    str(url.database),
                ],
                stdin=dump_file,
            )
    else:
        tool = _tool("psql")
        args, env = _pg_args(url)
        script = work / "restore.sql"
        drops = "".join(f'DROP TABLE IF EXISTS "{table}" CASCADE;\n' for table in existing_tables)
        quoted = str(dump).replace("'", "''")
        script.write_text(f"{drops}\\i '{quoted}'\n")
        _run(
            [
                tool,
                *args,
                "-X",
                "-q",
                "-v",
                "ON_ERROR_STOP=1",
                "--single-transaction",
                "-d",
                str(url.database),
                "-f",
                str(script),
            ],
            env=env,
        )


def _restore_payloads(source: Path, target: Path) -> Path | None:
    moved_aside = None
    if target.exists():
        if _has_data(target):
            moved_aside = target.with_name(f"{target.name}.before-restore-{datetime.now(UTC):%Y%m%dT%H%M%SZ}")
            target.rename(moved_aside)
        else:
            shutil.rmtree(target)  # only empty directories in it
    target.parent.mkdir(parents=True, exist_ok=True)
    if source.is_dir():
        shutil.copytree(source, target)
    else:
        target.mkdir()
    return moved_aside


# --- verification ---------------------------------------------------------------------------------------


def table_checksums(engine: Engine) -> dict[str, tuple[int, str]]:
    """``{table: (row count, sha256 of the rows in primary-key order)}``: equal before and after a restore."""
    metadata = MetaData()
    with engine.connect() as connection:
        metadata.reflect(connection)
        sums = {}
        for table in sorted(metadata.tables.values(), key=lambda t: t.name):
            order = list(table.primary_key.columns) or list(table.columns)
            digest = hashlib.sha256()
            count = 0
            for row in connection.execute(select(table).order_by(*order)):
                digest.update(repr(tuple(row)).encode())
                count += 1
            sums[table.name] = (count, digest.hexdigest())
    return sums
