"""Alembic, driven from Python: upgrade, downgrade, where a database stands, and the revision history.

The migration scripts live in ``migrations/`` at the repository root (``$B2CAL_MIGRATIONS_DIR`` overrides).
Every upgrade or downgrade runs in one transaction where the engine allows it (SQLite, PostgreSQL).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError
from sqlalchemy import Connection, inspect, text
from sqlalchemy.engine import URL
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import NullPool

from b2cal_assets.db.connection import (
    connection_error,
    create_database_engine,
    display_url,
    dispose_engine,
    parse_url,
    sqlite_path,
)
from b2cal_assets.db.errors import (
    DatabaseError,
    InvalidValue,
    SchemaBehind,
    SchemaError,
    SchemaMissing,
    UnknownRevision,
)
from b2cal_assets.settings import settings

# How long a migrator waits for another one on the same database (a loaded machine runs them slowly).
MIGRATION_LOCK_WAIT_S = 600

SchemaState = Literal["current", "behind", "missing", "unknown", "unversioned"]


def migrations_dir() -> Path:
    configured = settings().migrations_dir
    path = configured or Path(__file__).resolve().parents[2] / "migrations"
    if not (path / "env.py").is_file():
        raise SchemaError(f"the Alembic migrations were not found at {path}: set B2CAL_MIGRATIONS_DIR")
    return path


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    return config


def script_directory() -> ScriptDirectory:
    return ScriptDirectory.from_config(alembic_config())


def head_revision() -> str:
    head = script_directory().get_current_head()
    assert head is not None, "the migrations directory has no revisions"
    return head


@dataclass(frozen=True)
class SchemaStatus:
    """Where a database stands relative to the code's migrations."""

    url: str
    current: str | None
    head: str
    state: SchemaState

    def describe(self) -> str:
        where = display_url(self.url)
        return {
            "current": f"{where} is at revision {self.current} (head): up to date",
            "behind": f"{where} is at revision {self.current}, the code is at {self.head}: run `b2cal db upgrade`",
            "missing": f"{where} has no b2cal tables yet: run `b2cal db upgrade` to create them",
            "unknown": (
                f"{where} is at revision {self.current!r}, which this b2cal does not know (the code's head is "
                f"{self.head}): it was migrated by a newer b2cal; use that version or restore a backup"
            ),
            "unversioned": (
                f"{where} has tables but no Alembic revision: it is not a b2cal database, or was made "
                "without migrations; point B2CAL_DATABASE_URL at an empty database"
            ),
        }[self.state]


def schema_status(url: str | URL) -> SchemaStatus:
    """Read the database's revision; never writes (a missing SQLite file is not created)."""
    parsed = parse_url(url)
    key = parsed.render_as_string(hide_password=False)
    head = head_revision()
    path = sqlite_path(parsed)
    if path is not None and not path.exists():
        return SchemaStatus(key, None, head, "missing")
    engine = create_database_engine(parsed, sqlite_begin="DEFERRED", poolclass=NullPool)
    try:
        with engine.connect() as connection:
            current = MigrationContext.configure(connection).get_current_revision()
            tables = set(inspect(connection).get_table_names()) - {"alembic_version"}
    except DBAPIError as exc:
        raise connection_error(parsed, exc) from exc
    finally:
        engine.dispose()
    if current is None:
        state: SchemaState = "unversioned" if tables else "missing"
    elif current == head:
        state = "current"
    elif _known(current):
        state = "behind"
    else:
        state = "unknown"
    return SchemaStatus(key, current, head, state)


def _known(revision: str) -> bool:
    try:
        return script_directory().get_revision(revision) is not None
    except CommandError:
        return False


def check_schema(url: str | URL) -> SchemaStatus:
    """Raise a ``SchemaError`` that says what to do unless the database is at the code's head."""
    status = schema_status(url)
    error = {"behind": SchemaBehind, "missing": SchemaMissing, "unknown": UnknownRevision}.get(
        status.state, SchemaError
    )
    if status.state != "current":
        raise error(status.describe())
    return status


def resolve_revision(revision: str) -> str:
    """``head``, ``base`` or the full id of a known revision (a unique prefix is enough)."""
    if revision in ("head", "base"):
        return revision
    try:
        script = script_directory().get_revision(revision)
    except CommandError:
        script = None
    if script is None:
        known = ", ".join(r.revision for r in reversed(list(script_directory().walk_revisions())))
        raise InvalidValue(f"unknown revision {revision!r}: known revisions are {known}, head and base")
    return script.revision


def _lock_migrations(connection: Connection) -> None:
    """One migration at a time per database (two processes starting on a fresh database both migrate).

    SQLite needs nothing: the transaction began with ``BEGIN IMMEDIATE``.
    """
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(hashtext('b2cal-migrations'))"))
    elif connection.dialect.name in ("mysql", "mariadb"):
        # a session lock: MySQL commits each DDL statement; it is released when the connection closes
        connection.execute(text(f"SELECT GET_LOCK('b2cal-migrations', {MIGRATION_LOCK_WAIT_S})"))


def _migrate(url: str | URL, target: str, direction: Literal["upgrade", "downgrade"]) -> SchemaStatus:
    target = resolve_revision(target)
    path = sqlite_path(url)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
    config = alembic_config()
    # SQLite: foreign keys off while batch migrations copy tables (the Alembic recommendation).
    engine = create_database_engine(
        url, foreign_keys=False, poolclass=NullPool, sqlite_busy_timeout_s=MIGRATION_LOCK_WAIT_S
    )
    try:
        with engine.begin() as connection:
            _lock_migrations(connection)
            # Checked under the lock: on MariaDB another migrator's tables exist before its version row.
            before = schema_status(url)
            if before.state in ("unknown", "unversioned"):
                raise UnknownRevision(before.describe())
            config.attributes["connection"] = connection
            getattr(command, direction)(config, target)
    except CommandError as exc:
        raise SchemaError(f"cannot {direction} {display_url(url)} to {target}: {exc}") from exc
    except DBAPIError as exc:
        if exc.connection_invalidated or "connect" in str(exc.orig).lower():
            raise connection_error(url, exc) from exc
        raise DatabaseError(
            f"the {direction} of {display_url(url)} to {target} failed and was rolled back where the engine "
            f"allows it: {str(exc.orig).splitlines()[0]}"
        ) from exc
    finally:
        engine.dispose()
        dispose_engine(url)
    return schema_status(url)


def upgrade(url: str | URL, revision: str = "head") -> SchemaStatus:
    return _migrate(url, revision, "upgrade")


def downgrade(url: str | URL, revision: str) -> SchemaStatus:
    return _migrate(url, revision, "downgrade")


@dataclass(frozen=True)
class RevisionInfo:
    revision: str
    down_revision: str | None
    message: str
    is_head: bool


def history() -> list[RevisionInfo]:
    """All revisions, oldest first."""
    revisions = list(script_directory().walk_revisions())
    return [
        RevisionInfo(
            revision=r.revision,
            down_revision=r.down_revision
            if isinstance(r.down_revision, str) or r.down_revision is None
            else None,
            message=(r.doc or "").strip(),
            is_head=r.is_head,
        )
        for r in reversed(revisions)
    ]
