"""A transaction the server ends in a deadlock is re-run whole, on a real MariaDB and PostgreSQL."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import select, update
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import Session

from b2cal_assets.db.engine import session_scope
from b2cal_assets.db.models import Run
from b2cal_assets.db.transactions import is_retryable, retry_on_deadlock, run_transaction

pytestmark = pytest.mark.timeout(300)


def _two_runs(engine) -> tuple[int, int]:
    with session_scope(engine) as s:
        first, second = Run(exp=0, run=1, duration_minutes=0.0), Run(exp=0, run=2, duration_minutes=0.0)
        s.add_all([first, second])
        s.flush()
        return first.id, second.id


def _crossing_writers(engine, ids: tuple[int, int]) -> tuple[list[BaseException], list[int]]:
    """Two transactions lock the two rows in opposite order: the server must end one in a deadlock."""
    both_locked_one = threading.Barrier(2, timeout=60)
    errors: list[BaseException] = []
    tries = [0, 0]

    def writer(i: int) -> None:
        order = ids if i == 0 else ids[::-1]

        def work(s: Session) -> None:
            tries[i] += 1
            s.execute(update(Run).where(Run.id == order[0]).values(duration_minutes=Run.duration_minutes + 1))
            if tries[i] == 1:
                both_locked_one.wait()  # each holds its first row; now each asks for the other's
            s.execute(update(Run).where(Run.id == order[1]).values(duration_minutes=Run.duration_minutes + 1))

        try:
            run_transaction(engine, work)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=240)
    return errors, tries


@pytest.mark.parametrize("db_url", ["mariadb", "postgres"], indirect=True)
def test_a_deadlocked_transaction_is_run_again_and_both_commit(db_engine):
    ids = _two_runs(db_engine)
    errors, tries = _crossing_writers(db_engine, ids)
    assert errors == []
    assert sum(tries) >= 3  # the deadlock's victim ran again (more than once if it lost again)
    with session_scope(db_engine) as s:
        totals = s.scalars(select(Run.duration_minutes).where(Run.id.in_(ids))).all()
    assert sorted(totals) == [2.0, 2.0]  # each row got both transactions' increments, none twice


@pytest.mark.parametrize("db_url", ["mariadb", "postgres"], indirect=True)
def test_without_the_retry_the_server_really_reports_a_deadlock(db_engine):
    """The crossing writers produce a real deadlock, which is what ``is_retryable`` recognises."""
    ids = _two_runs(db_engine)
    seen: list[BaseException] = []
    barrier = threading.Barrier(2, timeout=60)

    def writer(i: int) -> None:
        order = ids if i == 0 else ids[::-1]
        try:
            with session_scope(db_engine) as s:
                s.execute(update(Run).where(Run.id == order[0]).values(duration_minutes=1.0))
                barrier.wait()
                s.execute(update(Run).where(Run.id == order[1]).values(duration_minutes=1.0))
        except DBAPIError as exc:
            seen.append(exc)

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=240)
    assert len(seen) == 1 and is_retryable(seen[0])


def test_other_errors_are_not_retried(db_engine):
    """A refusal (here a unique constraint) is the caller's to see at once, not to be tried again."""
    calls = []

    @retry_on_deadlock
    def insert_twice() -> None:
        calls.append(1)
        with session_scope(db_engine) as s:
            s.add_all([Run(exp=9, run=9), Run(exp=9, run=9)])

    with pytest.raises(IntegrityError):
        insert_twice()
    assert len(calls) == 1
