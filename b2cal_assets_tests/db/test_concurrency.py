"""Concurrent writers (sensors, UI actions, CLI) on the same rows, with real threads on every engine."""

import threading
import time

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from b2cal_assets.db.engine import session_scope
from b2cal_assets.db.errors import ConcurrentUpdate
from b2cal_assets.db.models import CatalogFile, Run, Signoff
from b2cal_assets.db.repo import attempts, calibrations, catalog, payloads, signoffs
from b2cal_assets_tests.db.factories import make_processing

THREADS = 3


def run_threads(target, count=THREADS):
    """Start ``count`` threads together; re-raise the first error any of them hit."""
    barrier = threading.Barrier(count)
    errors: list[BaseException] = []
    results: list = [None] * count

    def wrapped(i):
        try:
            barrier.wait(timeout=60)
            results[i] = target(i)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=wrapped, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    if errors:
        raise errors[0]
    return results


@pytest.fixture
def processing(db_engine):
    with session_scope(db_engine) as s:
        make_processing(s, "p")
        calibrations.ensure_calibrations(s, "p", {"beam_spot": "alice"})
    return "p"


def test_attempts_numbered_concurrently_get_distinct_numbers(db_engine, processing):
    def submit(i):
        numbers = []
        for _ in range(3):
            with session_scope(db_engine) as s:
                numbers.append(attempts.create_attempt(s, "p", "beam_spot", f"user{i}").number)
        return numbers

    numbers = sorted(n for batch in run_threads(submit) for n in batch)
    assert numbers == list(range(1, 3 * THREADS + 1))


def test_two_ticks_registering_the_same_files(db_engine):
    def tick(_i):
        created = 0
        with session_scope(db_engine) as s:
            for run in range(1, 6):
                _f, new = catalog.register_file(
                    s,
                    path=f"/skims/e3/r{run}.root",
                    data_tag="hlt_mumu",
                    data_format="raw",
                    exp=3,
                    run=run,
                    run_info={"magnet": "On"},
                    n_events=run,
                    size_bytes=run,
                )
                created += new
        return created

    created = run_threads(tick)
    with Session(db_engine) as s:
        assert s.scalar(select(func.count()).select_from(CatalogFile)) == 5
        assert s.scalar(select(func.count()).select_from(Run)) == 5
    assert sum(created) == 5  # each file reported new exactly once


def test_signoff_of_an_attempt_replaced_meanwhile_is_refused(db_engine, processing):
    with session_scope(db_engine) as s:
        first = attempts.create_attempt(s, "p", "beam_spot", "alice")
        attempts.finish_attempt(s, first.id, "finished", iterations=1)
    created, release = threading.Event(), threading.Event()

    def new_attempt():
        with session_scope(db_engine) as s:
            attempts.create_attempt(s, "p", "beam_spot", "bob")
            created.set()
            release.wait(timeout=60)

    writer = threading.Thread(target=new_attempt)
    writer.start()
    assert created.wait(timeout=60)
    outcome: dict[str, BaseException | None] = {}

    def sign():
        try:
            with session_scope(db_engine) as s:
                signoffs.record_signoff(s, "p", "beam_spot", "accept", "alice", attempt_id=first.id)
            outcome["error"] = None
        except BaseException as exc:
            outcome["error"] = exc

    signer = threading.Thread(target=sign)
    signer.start()
    time.sleep(0.3)  # let the sign-off queue on the processing lock (the outcome is the same either way)
    release.set()
    writer.join(timeout=60)
    signer.join(timeout=60)
    assert isinstance(outcome["error"], ConcurrentUpdate)
    assert "replaced by attempt #2" in str(outcome["error"])
    with Session(db_engine) as s:
        assert s.scalar(select(func.count()).select_from(Signoff)) == 0
        assert [a.number for a in attempts.list_attempts(s, "p", "beam_spot")] == [1, 2]


def test_signoff_first_then_new_attempt_both_kept(db_engine, processing):
    with session_scope(db_engine) as s:
        first = attempts.create_attempt(s, "p", "beam_spot", "alice")
        attempts.finish_attempt(s, first.id, "finished")

    def race(i):
        with session_scope(db_engine) as s:
            if i == 0:
                return signoffs.record_signoff(s, "p", "beam_spot", "accept", "alice", attempt_id=first.id).id
            return attempts.create_attempt(s, "p", "beam_spot", "bob").number

    try:
        run_threads(race, count=2)
        signed = True
    except ConcurrentUpdate:
        signed = False  # the new attempt won the lock: the sign-off was refused, nothing half-written
    with Session(db_engine) as s:
        recorded = list(s.scalars(select(Signoff)))
        assert [a.number for a in attempts.list_attempts(s, "p", "beam_spot")] == [1, 2]
    assert [(x.attempt_id, x.decision) for x in recorded] == ([(first.id, "accept")] if signed else [])


def test_concurrent_field_updates_are_not_lost(db_engine, processing):
    def update(i):
        for n in range(4):
            with session_scope(db_engine) as s:
                if i == 0:
                    calibrations.update_calibration(s, "p", "beam_spot", expert_username=f"expert{n}")
                else:
                    calibrations.update_calibration(s, "p", "beam_spot", excluded=bool(n % 2 == 0))

    run_threads(update, count=2)
    with Session(db_engine) as s:
        row = calibrations.get_calibration(s, "p", "beam_spot")
        assert row.expert_username == "expert3" and row.excluded is False
        assert row.version == 1 + 8  # every update counted once


def test_stale_version_from_a_form_is_refused(db_engine, processing):
    with session_scope(db_engine) as s:
        seen = calibrations.get_calibration(s, "p", "beam_spot").version
    with session_scope(db_engine) as s:
        calibrations.update_calibration(s, "p", "beam_spot", state="window_open")
    with session_scope(db_engine) as s, pytest.raises(ConcurrentUpdate, match="changed by someone else"):
        calibrations.update_calibration(s, "p", "beam_spot", expected_version=seen, state="excluded")
    with Session(db_engine) as s:
        assert calibrations.get_calibration(s, "p", "beam_spot").state == "window_open"


def test_concurrent_payload_uploads_get_distinct_revisions(db_engine, processing):
    def upload(i):
        for n in range(2):
            with session_scope(db_engine) as s:
                payloads.record_payloads(
                    s,
                    "p",
                    "beam_spot",
                    None,
                    [("BeamSpot", f"{i}{n}".ljust(32, "0"), (1, 0, 1, -1), f"/f{i}{n}")],
                    source="upload",
                )

    run_threads(upload)
    with Session(db_engine) as s:
        history = payloads.payload_history(s, "p", "beam_spot")
        assert [p.revision for p in history] == list(range(1, 2 * THREADS + 1))
        assert [p.revision for p in payloads.current_payloads(s, "p")] == [2 * THREADS]
