"""Connections to the calibration database (SQLite, MariaDB/MySQL, PostgreSQL): URLs, engines, sessions.

One engine per URL per process (engines own connection pools). SQLite runs in WAL mode and starts every
transaction with ``BEGIN IMMEDIATE``: writers queue on the busy timeout instead of failing half-way when
two transactions both read and then write.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Engine, create_engine, event, make_url
from sqlalchemy.engine import URL
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError
from sqlalchemy.orm import Session, sessionmaker

from b2cal_assets import home
from b2cal_assets.db.errors import BadDatabaseURL, DatabaseError, DatabaseUnreachable
from b2cal_assets.settings import settings

T = TypeVar("T")

SQLITE_BUSY_TIMEOUT_S = 30
CONNECT_TIMEOUT_S = 10
_DEFAULT_DRIVERS = {"mysql": "pymysql", "mariadb": "pymysql", "postgresql": "psycopg2"}
_SUPPORTED = ("sqlite", "mysql", "mariadb", "postgresql")

_engines: dict[str, Engine] = {}
_sessionmakers: dict[str, sessionmaker[Session]] = {}
_lock = threading.Lock()


def database_url() -> str:
    """``$B2CAL_DATABASE_URL``, else the SQLite file ``$B2CAL_HOME/b2cal.db``."""
    url = settings().database_url.strip()
    if url:
        return url
    return f"sqlite:///{home.b2cal_home() / 'b2cal.db'}"


def parse_url(url: str | URL) -> URL:
    """A checked URL with the driver b2cal installs (``mysql://`` becomes ``mysql+pymysql://``)."""
    try:
        parsed = make_url(url) if isinstance(url, str) else url
    except ArgumentError as exc:
        raise BadDatabaseURL(
            f"cannot parse database URL {str(url)!r}: expected e.g. sqlite:///path/b2cal.db, "
            "mysql+pymysql://user:pw@host:3306/db or postgresql://user@host:5432/db"
        ) from exc
    backend = parsed.get_backend_name()
    if backend not in _SUPPORTED:
        raise BadDatabaseURL(
            f"unsupported database kind {backend!r} in {display_url(parsed)}: use sqlite, mysql/mariadb or postgresql"
        )
    if "+" not in parsed.drivername and backend in _DEFAULT_DRIVERS:
        parsed = parsed.set(drivername=f"{backend}+{_DEFAULT_DRIVERS[backend]}")
    if backend != "sqlite" and not parsed.database:
        raise BadDatabaseURL(f"database URL {display_url(parsed)} names no database: add /<name> at the end")
    return parsed


def display_url(url: str | URL) -> str:
    """The URL without its password, for messages and logs."""
    try:
        parsed = make_url(url) if isinstance(url, str) else url
    except ArgumentError:
        return "<unparsable URL>"
    return parsed.render_as_string(hide_password=True)


def dialect_name(url: str | URL) -> str:
    """``sqlite``, ``mysql`` (also for MariaDB) or ``postgresql``."""
    backend = parse_url(url).get_backend_name()
    return "mysql" if backend == "mariadb" else backend


def sqlite_path(url: str | URL) -> Path | None:
    """The file of a SQLite URL (``None`` for an in-memory database or another engine)."""
    parsed = parse_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database or parsed.database == ":memory:":
        return None
    return Path(parsed.database)


def _configure_sqlite(engine: Engine, *, foreign_keys: bool, begin: str, busy_timeout_s: float) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we emit BEGIN ourselves (see "begin" below)
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {int(busy_timeout_s * 1000)}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute(f"PRAGMA foreign_keys = {'ON' if foreign_keys else 'OFF'}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        mode = connection.get_execution_options().get("sqlite_begin", begin)
        connection.exec_driver_sql(f"BEGIN {mode}")


def create_database_engine(
    url: str | URL,
    *,
    foreign_keys: bool = True,
    sqlite_begin: str = "IMMEDIATE",
    sqlite_busy_timeout_s: float = SQLITE_BUSY_TIMEOUT_S,
    **kwargs: Any,
) -> Engine:
    """A new (uncached) engine; ``make_engine`` is the one to use outside migrations and tests.

    ``sqlite_begin="DEFERRED"`` suits read-only work: it does not wait for writers.
    ``sqlite_busy_timeout_s`` is how long a SQLite writer queues behind another before "database is locked".
    """
    parsed = parse_url(url)
    backend = parsed.get_backend_name()
    options: dict[str, Any] = {"future": True}
    if backend == "sqlite":
        path = sqlite_path(parsed)
        if path is not None and not path.parent.exists():
            raise DatabaseUnreachable(
                f"the directory of the SQLite database {path} does not exist: create it or set B2CAL_HOME"
            )
        options["connect_args"] = {"timeout": sqlite_busy_timeout_s}
    elif backend in ("mysql", "mariadb"):
        options.update(
            pool_pre_ping=True,
            pool_recycle=3600,
            isolation_level="READ COMMITTED",
            connect_args={"connect_timeout": CONNECT_TIMEOUT_S, "charset": "utf8mb4"},
        )
    else:
        options.update(pool_pre_ping=True, connect_args={"connect_timeout": CONNECT_TIMEOUT_S})
    options.update(kwargs)
    try:
        engine = create_engine(parsed, **options)
    except (ArgumentError, NoSuchModuleError, ImportError) as exc:
        raise BadDatabaseURL(f"cannot use database URL {display_url(parsed)}: {exc}") from exc
    if backend == "sqlite":
        _configure_sqlite(
            engine, foreign_keys=foreign_keys, begin=sqlite_begin, busy_timeout_s=sqlite_busy_timeout_s
        )
    return engine


def make_engine(url: str | URL | None = None) -> Engine:
    """The process-wide engine for ``url`` (default ``database_url()``)."""
    key = parse_url(url or database_url()).render_as_string(hide_password=False)
    with _lock:
        engine = _engines.get(key)
        if engine is None:
            engine = _engines[key] = create_database_engine(key)
        return engine


def dispose_engine(url: str | URL) -> None:
    """Close the pooled connections of ``url`` (before dropping or replacing the database)."""
    key = parse_url(url).render_as_string(hide_password=False)
    with _lock:
        engine = _engines.pop(key, None)
        _sessionmakers.pop(key, None)
    if engine is not None:
        engine.dispose()


def _sessionmaker(engine: Engine) -> sessionmaker[Session]:
    key = engine.url.render_as_string(hide_password=False)
    with _lock:
        maker = _sessionmakers.get(key)
        if maker is None or maker.kw.get("bind") is not engine:
            maker = _sessionmakers[key] = sessionmaker(bind=engine, expire_on_commit=False)
        return maker


@contextmanager
def session_scope(engine: Engine | None = None, *, readonly: bool = False) -> Iterator[Session]:
    """One transaction: commit when the block ends, roll back when it raises.

    ``readonly=True`` (pages, listings) does not queue behind writers on SQLite.
    """
    engine = engine or make_engine()
    session = _sessionmaker(engine)()
    if readonly:
        session.connection(execution_options={"sqlite_begin": "DEFERRED"})
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def connection_error(url: str | URL, exc: BaseException) -> DatabaseError:
    """A one-line, actionable error for a failed connection."""
    orig = getattr(exc, "orig", None) or exc
    detail = str(orig).strip().splitlines()[0] if str(orig).strip() else type(orig).__name__
    where = display_url(url)
    lowered = detail.lower()
    if "unknown database" in lowered or ("database" in lowered and "does not exist" in lowered):
        hint = "create the database first (CREATE DATABASE ...) or fix the name in B2CAL_DATABASE_URL"
    elif "access denied" in lowered or "authentication failed" in lowered or "role" in lowered:
        hint = "check the user name and password in B2CAL_DATABASE_URL"
    elif "unable to open database file" in lowered:
        hint = "check that the SQLite file's directory exists and is writable"
    else:
        hint = "is the server running and the host/port in B2CAL_DATABASE_URL right?"
    return DatabaseUnreachable(f"cannot connect to the calibration database {where}: {detail} ({hint})")


def check_connection(url: str | URL | None = None) -> None:
    """Connect once, raising ``DatabaseUnreachable`` with a clear message when that fails."""
    url = url or database_url()
    try:
        with make_engine(url).connect():
            pass
    except DatabaseError:
        raise
    except (DBAPIError, OSError) as exc:
        raise connection_error(url, exc) from exc
