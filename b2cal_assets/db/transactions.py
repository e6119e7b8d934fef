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
from b2cal_assets.db.errors import DatabaseUnreachable
from b2cal_assets.settings import settings

__all__ = [
    "DEADLOCK_ATTEMPTS",
    "deadlock_retrying",
    "is_retryable",
    "is_unreachable",
    "retry_on_deadlock",
    "retry_while_unreachable",
    "run_transaction",
]

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


def is_unreachable(exc: BaseException) -> bool:
    """The server did not answer or dropped the connection (a restart, a failover), or a deadlock: the
    transaction did not commit (unless the connection died during COMMIT itself), so running it again is
    safe for work that is idempotent or checks what is already there."""
    if isinstance(exc, DatabaseUnreachable):
        return True
    if isinstance(exc, DBAPIError):
        return isinstance(exc, OperationalError) or exc.connection_invalidated or is_retryable(exc)
    return False


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
    budget = settings().db_retry_s if budget_s is None else budget_s

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
