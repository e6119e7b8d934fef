"""Transactions that are re-run from the start when the database asks for it (tenacity).

MariaDB/MySQL end one of two deadlocked transactions (error 1213) or give up waiting for a lock
(1205); PostgreSQL fails one of two conflicting serializable transactions (SQLSTATE 40001) or a
deadlock (40P01); SQLite answers "database is locked" past its busy timeout. In each case nothing of
the transaction was committed, and running the whole of it again can succeed.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import ParamSpec, TypeVar

import tenacity
from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session

from b2cal_assets.db.connection import session_scope

__all__ = ["DEADLOCK_ATTEMPTS", "deadlock_retrying", "is_retryable", "retry_on_deadlock", "run_transaction"]

T = TypeVar("T")
P = ParamSpec("P")

DEADLOCK_ATTEMPTS = 5

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


def deadlock_retrying(attempts: int = DEADLOCK_ATTEMPTS) -> tenacity.Retrying:
    """Re-run on a retryable error, after a short random wait (the two sides should not meet again)."""
    return tenacity.Retrying(
        retry=tenacity.retry_if_exception(is_retryable),
        stop=tenacity.stop_after_attempt(attempts),
        wait=tenacity.wait_random_exponential(multiplier=0.05, max=1.0),
        reraise=True,
    )


def run_transaction(engine: Engine, work: Callable[[Session], T], *, attempts: int = DEADLOCK_ATTEMPTS) -> T:
    """Run ``work(session)`` in one transaction, re-running it from the start after a deadlock."""

    def once() -> T:
        with session_scope(engine) as session:
            return work(session)

    return deadlock_retrying(attempts)(once)


def retry_on_deadlock(fn: Callable[P, T]) -> Callable[P, T]:
    """Decorate a function that runs one whole transaction, so a deadlock re-runs all of it."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        return deadlock_retrying()(fn, *args, **kwargs)

    return wrapper
