"""The calibration database's public face: connections (``connection.py``) and the schema (``migrate.py``).

Callers import engines, sessions and the schema checks from here; ``migrate`` builds on
``connection`` only, so the two never import each other.
"""

from __future__ import annotations

from sqlalchemy.engine import URL

from b2cal_assets.db import migrate
from b2cal_assets.db.connection import (
    CONNECT_TIMEOUT_S,
    SQLITE_BUSY_TIMEOUT_S,
    check_connection,
    connection_error,
    create_database_engine,
    database_url,
    dialect_name,
    display_url,
    dispose_engine,
    make_engine,
    parse_url,
    session_scope,
    sqlite_path,
)
from b2cal_assets.db.transactions import (
    is_retryable,
    is_unreachable,
    retry_while_unreachable,
    run_transaction,
)
from b2cal_assets.settings import settings

__all__ = [
    "CONNECT_TIMEOUT_S",
    "SQLITE_BUSY_TIMEOUT_S",
    "check_connection",
    "check_schema",
    "connection_error",
    "create_database_engine",
    "database_url",
    "db_retry_budget_s",
    "dialect_name",
    "display_url",
    "dispose_engine",
    "ensure_schema",
    "is_retryable",
    "is_unreachable",
    "make_engine",
    "parse_url",
    "retry_while_unreachable",
    "run_transaction",
    "session_scope",
    "sqlite_path",
    "upgrade_to_head",
]


def ensure_schema(url: str | URL | None = None) -> None:
    """Bring the database to the code's revision (``alembic upgrade head``); for fresh databases."""
    migrate.upgrade(url or database_url(), "head")


upgrade_to_head = ensure_schema


def check_schema(url: str | URL | None = None) -> None:
    """Raise a ``SchemaError`` saying what to do unless the database is at the code's revision."""
    migrate.check_schema(url or database_url())


def db_retry_budget_s() -> float:
    """How long a run waits for the calibration database to come back: ``$B2CAL_DB_RETRY_S`` (default 300)."""
    return settings().db_retry_s
