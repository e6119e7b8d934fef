"""Engines and sessions for the calibration database (SQLite, MariaDB/MySQL, PostgreSQL).

One engine per URL per process (engines own connection pools). SQLite runs in WAL mode and starts every
transaction with ``BEGIN IMMEDIATE``: writers queue on the busy timeout instead of failing half-way when
two transactions both read and then write.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Engine, create_engine, event, make_url
from sqlalchemy.engine import URL
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from b2cal_assets.db.errors import BadDatabaseURL, DatabaseError, DatabaseUnreachable

T = TypeVar("T")

SQLITE_BUSY_TIMEOUT_S = 30
CONNECT_TIMEOUT_S = 10
_DEFAULT_DRIVERS = {"mysql": "pymysql", "mariadb": "pymysql", "postgresql": "psycopg2"}
_SUPPORTED = ("sqlite", "mysql", "mariadb", "postgresql")

_engines: dict[str, Engine] = {}
_sessionmakers: dict[str, sessionmaker[Session]] = {}
_lock = threading.Lock()


def b2cal_home() -> Path:
    """``$B2CAL_HOME``, default ``./.b2cal``."""
    return Path(os.environ.get("B2CAL_HOME") or ".b2cal")


def database_url() -> str:
    """``$B2CAL_DATABASE_URL``, else the SQLite file ``$B2CAL_HOME/b2cal.db``."""
    url = os.environ.get("B2CAL_DATABASE_URL", "").strip()
    if url:
        return url
    return f"sqlite:///{(b2cal_home() / 'b2cal.db').absolute()}"


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


def _configure_sqlite(engine: Engine, *, foreign_keys: bool, begin: str) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we emit BEGIN ourselves (see "begin" below)
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_S * 1000}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute(f"PRAGMA foreign_keys = {'ON' if foreign_keys else 'OFF'}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        mode = connection.get_execution_options().get("sqlite_begin", begin)
        connection.exec_driver_sql(f"BEGIN {mode}")


def create_database_engine(
    url: str | URL, *, foreign_keys: bool = True, sqlite_begin: str = "IMMEDIATE", **kwargs: Any
) -> Engine:
    """A new (uncached) engine; ``make_engine`` is the one to use outside migrations and tests.

    ``sqlite_begin="DEFERRED"`` suits read-only work: it does not wait for writers.
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
        options["connect_args"] = {"timeout": SQLITE_BUSY_TIMEOUT_S}
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
        _configure_sqlite(engine, foreign_keys=foreign_keys, begin=sqlite_begin)
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


# MySQL 1213 deadlock, 1205 lock wait timeout; PostgreSQL 40001 serialization, 40P01 deadlock.
_RETRYABLE_MYSQL = {1205, 1213}
_RETRYABLE_PG = {"40001", "40P01"}


def is_retryable(exc: BaseException) -> bool:
    """A deadlock, serialization failure or busy SQLite: re-running the whole transaction can succeed."""
    if not isinstance(exc, DBAPIError):
        return False
    orig = exc.orig
    args = getattr(orig, "args", ())
    if args and isinstance(args[0], int) and args[0] in _RETRYABLE_MYSQL:
        return True
    if getattr(orig, "pgcode", None) in _RETRYABLE_PG:
        return True
    return isinstance(exc, OperationalError) and "database is locked" in str(orig)


def run_transaction(engine: Engine, work: Callable[[Session], T], *, attempts: int = 3) -> T:
    """Run ``work(session)`` in a transaction, re-running it from the start after a deadlock."""
    for attempt in range(1, attempts + 1):
        try:
            with session_scope(engine) as session:
                return work(session)
        except DBAPIError as exc:
            if attempt == attempts or not is_retryable(exc):
                raise
            time.sleep(0.05 * attempt)
    raise AssertionError("unreachable")


DB_RETRY_ENV = "B2CAL_DB_RETRY_S"
DEFAULT_DB_RETRY_S = 300.0  # a restart takes seconds, a failover a minute or two; a run waits that long


def is_unreachable(exc: BaseException) -> bool:
    """The server did not answer or dropped the connection (a restart, a failover), or a deadlock: the
    transaction did not commit (unless the connection died during COMMIT itself), so running it again is
    safe for work that is idempotent or checks what is already there."""
    if isinstance(exc, DatabaseUnreachable):
        return True
    if isinstance(exc, DBAPIError):
        return isinstance(exc, OperationalError) or exc.connection_invalidated or is_retryable(exc)
    return False


def db_retry_budget_s() -> float:
    """How long a run waits for the calibration database to come back: ``$B2CAL_DB_RETRY_S`` (default 300)."""
    text = os.environ.get(DB_RETRY_ENV, "").strip()
    try:
        value = float(text) if text else DEFAULT_DB_RETRY_S
    except ValueError:
        raise ValueError(f"{DB_RETRY_ENV}={text!r} is not a number of seconds") from None
    if not (value >= 0 and value != float("inf")):
        raise ValueError(f"{DB_RETRY_ENV}={text!r} must be a finite number of seconds, at least 0")
    return value


def retry_while_unreachable(
    work: Callable[[], T],
    *,
    what: str,
    on_retry: Callable[[str], None] | None = None,
    budget_s: float | None = None,
) -> T:
    """Call ``work()`` again (backing off up to 10 s) while the database is unreachable, for at most
    ``budget_s`` (default ``$B2CAL_DB_RETRY_S``); then the last error is raised. A run that has done
    hours of batch work must not fail because the database restarted while it recorded the result.
    ``work`` must be idempotent (a retry may follow a COMMIT whose answer was lost)."""
    import tenacity

    budget = db_retry_budget_s() if budget_s is None else budget_s

    def tell(state: tenacity.RetryCallState) -> None:
        if on_retry is not None and state.outcome is not None:
            error = state.outcome.exception()
            first = str(getattr(error, "orig", None) or error).strip().splitlines()[:1]
            on_retry(
                f"the calibration database is unreachable while {what} (try {state.attempt_number}): "
                f"{first[0] if first else type(error).__name__}; trying again in "
                f"{state.upcoming_sleep:.1f} s (for up to {budget:.0f} s)"
            )

    retrying = tenacity.Retrying(
        retry=tenacity.retry_if_exception(is_unreachable),
        stop=tenacity.stop_after_delay(budget),
        wait=tenacity.wait_exponential(multiplier=0.5, max=10),
        before_sleep=tell,
        reraise=True,
    )
    return retrying(work)


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


def ensure_schema(url: str | URL | None = None) -> None:
    """Bring the database to the code's revision (``alembic upgrade head``); for fresh databases."""
    from b2cal_assets.db import migrate

    migrate.upgrade(url or database_url(), "head")


upgrade_to_head = ensure_schema


def check_schema(url: str | URL | None = None) -> None:
    """Raise a ``SchemaError`` saying what to do unless the database is at the code's revision."""
    from b2cal_assets.db import migrate

    migrate.check_schema(url or database_url())
