"""Calibrations, attempts, jobs, sign-offs, payloads and the audit log on every engine."""

import pytest

from b2cal_assets.db.errors import ConcurrentUpdate, InvalidValue, NotFound
from b2cal_assets.db.repo import attempts, audit, calibrations, jobs, payloads, signoffs
from b2cal_assets_tests.db.factories import make_processing

IOV = (1, 0, 1, -1)


@pytest.fixture
def s(db_session):
    make_processing(db_session, "p")
    calibrations.ensure_calibrations(db_session, "p", {"beam_spot": "alice", "ecl_gain": ""})
    db_session.commit()
    return db_session


def test_calibrations_are_created_once_and_keep_their_state(s):
    calibrations.update_calibration(s, "p", "beam_spot", state="window_open")
    calibrations.ensure_calibrations(s, "p", {"beam_spot": "carol", "ecl_gain": "", "new_one": "dave"})
    rows = {r.calibration: r for r in calibrations.list_calibrations(s, "p")}
    assert sorted(rows) == ["beam_spot", "ecl_gain", "new_one"]
    assert rows["beam_spot"].state == "window_open" and rows["beam_spot"].expert_username == "carol"
    assert rows["new_one"].state == "waiting"
    with pytest.raises(NotFound, match="known: beam_spot, ecl_gain, new_one"):
        calibrations.get_calibration(s, "p", "svd")
    with pytest.raises(InvalidValue, match="a calibration state must be one of"):
        calibrations.update_calibration(s, "p", "beam_spot", state="done")
    with pytest.raises(InvalidValue, match="no settable field"):
        calibrations.update_calibration(s, "p", "beam_spot", version=7)


def test_update_with_the_version_seen_succeeds(s):
    row = calibrations.get_calibration(s, "p", "beam_spot")
    updated = calibrations.update_calibration(
        s, "p", "beam_spot", expected_version=row.version, excluded=True
    )
    assert updated.excluded and updated.version == row.version
    s.commit()
    assert calibrations.get_calibration(s, "p", "beam_spot").version == 2
    with pytest.raises(ConcurrentUpdate):
        calibrations.update_calibration(s, "p", "beam_spot", expected_version=1, excluded=False)


def test_attempt_lifecycle(s):
    first = attempts.create_attempt(
        s, "p", "beam_spot", "alice", {"min_entries": 10}, {"max_files": 2}, "run-1"
    )
    second = attempts.create_attempt(s, "p", "beam_spot", "auto")
    other = attempts.create_attempt(s, "p", "ecl_gain", "bob", state="held")
    assert (first.number, second.number, other.number) == (1, 2, 1)
    assert attempts.latest_attempt(s, "p", "beam_spot").id == second.id
    assert attempts.latest_attempt(s, "p", "svd") is None
    attempts.start_attempt(s, first.id, workdir="/work/1")
    done = attempts.finish_attempt(s, first.id, "failed", iterations=3, error="collector 2 exited 1")
    assert (done.state, done.iterations, done.workdir) == ("failed", 3, "/work/1")
    assert done.started_at is not None and done.finished_at is not None
    assert attempts.get_attempt(s, first.id).expert_config == {"min_entries": 10}
    assert [a.number for a in attempts.list_attempts(s, "p")] == [1, 2, 1]
    assert attempts.get_attempt_number(s, "p", "beam_spot", 2).id == second.id
    with pytest.raises(InvalidValue, match="already ended"):
        attempts.start_attempt(s, first.id)
    with pytest.raises(InvalidValue, match="end state must be one of"):
        attempts.finish_attempt(s, second.id, "running")
    with pytest.raises(NotFound, match="no attempt with id"):
        attempts.get_attempt(s, 10_000)


def test_jobs_are_recorded_once_per_name(s):
    attempt = attempts.create_attempt(s, "p", "beam_spot", "alice")
    jobs.record_jobs(
        s, attempt.id, "slurm", [{"name": "collector_0"}, {"name": "collector_1", "workdir": "/w/1"}]
    )
    again = jobs.record_jobs(
        s, attempt.id, "slurm", [{"name": "collector_0", "backend_job_id": "77", "state": "running"}]
    )
    jobs.update_job(s, again[0].id, state="completed", exit_code=0, tries=1)
    listed = jobs.list_jobs(s, attempt.id)
    assert [(j.name, j.backend_job_id, j.state, j.exit_code) for j in listed] == [
        ("collector_0", "77", "completed", 0),
        ("collector_1", "", "pending", None),
    ]
    with pytest.raises(InvalidValue, match="every job needs a name"):
        jobs.record_jobs(s, attempt.id, "slurm", [{"state": "x"}])


def test_signoff_rules(s):
    with pytest.raises(InvalidValue, match="no attempt to accept"):
        signoffs.record_signoff(s, "p", "beam_spot", "accept", "alice")
    attempt = attempts.create_attempt(s, "p", "beam_spot", "alice")
    with pytest.raises(InvalidValue, match="is submitted; only a finished attempt can be accepted"):
        signoffs.record_signoff(s, "p", "beam_spot", "accept", "alice")
    attempts.finish_attempt(s, attempt.id, "finished")
    with pytest.raises(InvalidValue, match="decision must be one of accept, reject"):
        signoffs.record_signoff(s, "p", "beam_spot", "maybe", "alice")
    signoffs.record_signoff(s, "p", "beam_spot", "reject", "alice", comment="too wide")
    signoffs.record_signoff(s, "p", "beam_spot", "accept", "auto", automatic=True)
    latest = signoffs.latest_signoff(s, "p", "beam_spot")
    assert (latest.decision, latest.automatic, latest.attempt_id) == ("accept", True, attempt.id)
    assert [x.decision for x in signoffs.list_signoffs(s, "p")] == ["reject", "accept"]
    assert signoffs.latest_signoff(s, "p", "ecl_gain") is None


def test_payload_revisions_supersede_and_never_delete(s):
    one = attempts.create_attempt(s, "p", "beam_spot", "alice")
    first = payloads.record_payloads(
        s,
        "p",
        "beam_spot",
        one.id,
        [("BeamSpot", "a" * 32, IOV, "/1/a"), ("BeamSize", "b" * 32, IOV, "/1/b")],
    )
    assert [(p.name, p.revision) for p in first] == [("BeamSpot", 1), ("BeamSize", 1)]
    # a retried step records the same entries again: no new revisions
    assert [
        p.id
        for p in payloads.record_payloads(
            s,
            "p",
            "beam_spot",
            one.id,
            [("BeamSpot", "a" * 32, IOV, "/1/a"), ("BeamSize", "b" * 32, IOV, "/1/b")],
        )
    ] == [p.id for p in first]
    two = attempts.create_attempt(s, "p", "beam_spot", "alice")
    payloads.record_payloads(s, "p", "beam_spot", two.id, [("BeamSpot", "c" * 32, (1, 0, 1, 50), "/2/a")])
    payloads.record_payloads(s, "p", "ecl_gain", None, [("ECLGain", "d" * 32, IOV, "/u/e")], source="upload")
    current = payloads.current_payloads(s, "p")
    assert [(p.calibration, p.name, p.revision, p.run_high) for p in current] == [
        ("beam_spot", "BeamSpot", 2, 50),
        ("ecl_gain", "ECLGain", 1, -1),
    ]
    history = payloads.payload_history(s, "p", "beam_spot")
    assert [(p.name, p.revision, p.superseded) for p in history] == [
        ("BeamSize", 1, True),
        ("BeamSpot", 1, True),
        ("BeamSpot", 2, False),
    ]
    with pytest.raises(InvalidValue, match="listed twice with the same IoV: X"):
        payloads.record_payloads(
            s, "p", "beam_spot", None, [("X", "e" * 32, IOV, "/x"), ("X", "f" * 32, IOV, "/y")]
        )
    # a run-by-run calibration stores one payload of a name per run set, each its own revision
    per_run = payloads.record_payloads(
        s, "p", "beam_spot", None, [("R", "e" * 32, (1, 0, 1, 9), "/r1"), ("R", "f" * 32, (1, 10, -1, -1), "/r2")]
    )
    assert [(p.name, p.revision, p.run_low) for p in per_run] == [("R", 1, 0), ("R", 2, 10)]
    with pytest.raises(InvalidValue, match="is not an attempt of ecl_gain"):
        payloads.record_payloads(s, "p", "ecl_gain", two.id, [("Y", "e" * 32, IOV, "/y")])
    with pytest.raises(InvalidValue, match="high end is before the low end"):
        payloads.record_payloads(s, "p", "beam_spot", None, [("Z", "e" * 32, (3, 5, 2, 0), "/z")])


def test_audit_log_filters_newest_first(s):
    audit.record_audit(s, "alice", "submit", "p", "beam_spot", {"attempt": 1})
    audit.record_audit(s, "bob", "signoff_reject", "p", "beam_spot", {"comment": "no"})
    audit.record_audit(s, "alice", "create_processing", "q")
    s.commit()
    assert [e.action for e in audit.list_audit(s)] == ["create_processing", "signoff_reject", "submit"]
    assert [e.action for e in audit.list_audit(s, user="alice", processing="p")] == ["submit"]
    assert [e.details for e in audit.list_audit(s, action="signoff_reject")] == [{"comment": "no"}]
    assert len(audit.list_audit(s, limit=1)) == 1
    with pytest.raises(InvalidValue, match="needs a user and an action"):
        audit.record_audit(s, "", "x")


def test_a_processing_moves_only_along_its_table_and_the_database_refuses_unknown_states(s):
    from sqlalchemy import text
    from sqlalchemy.exc import DBAPIError

    from b2cal_assets.db.repo import processings
    from b2cal_assets.domain.states import PROCESSING_TRANSITIONS, ProcessingState

    assert processings.get_processing(s, "p").state == ProcessingState.OPEN
    for old, new in [(ProcessingState.OPEN, ProcessingState.FINISHED), (ProcessingState.FINISHED, ProcessingState.OPEN)]:
        assert (old, new) in PROCESSING_TRANSITIONS
        assert processings.set_processing_state(s, "p", new).state == new
    processings.set_processing_state(s, "p", ProcessingState.CANCELLED)
    with pytest.raises(InvalidValue, match=r"processing p is cancelled and cannot become open; .* nothing"):
        processings.set_processing_state(s, "p", ProcessingState.OPEN)
    s.commit()
    with pytest.raises(DBAPIError, match=r"(?i)check|constraint"):
        s.execute(text("UPDATE processing SET state = 'paused' WHERE name = 'p'"))
        s.flush()
    s.rollback()
    assert processings.get_processing(s, "p").state == ProcessingState.CANCELLED
