"""The transition tables of ``domain/states.py`` are the loop's state machine, exactly.

Every move in a table is made by one of the loop's public methods (each case brings a calibration to
the move's start through public calls only, then makes the move and checks that the loop's guard saw
it); every move not in a table is refused, by the table and by the loop when a rule would make it.
"""

import itertools
from datetime import timedelta

import pytest

from b2cal_assets.db.repo import calibrations
from b2cal_assets.domain.states import (
    ATTEMPT_TRANSITIONS,
    CALIBRATION_TRANSITIONS,
    AttemptState,
    CalibrationState,
    TransitionRefused,
    check_attempt_move,
    check_calibration_move,
)
from b2cal_assets.loop import transitions
from b2cal_assets.loop.reconcile import MAX_RELAUNCHES
from b2cal_assets.loop.records import AUTO_USER, LoopError
from b2cal_assets.payloads.archive import current_payloads_archive
from b2cal_assets_tests.loop.conftest import T0
from b2cal_assets_tests.loop.fake_runs import FakeRuns
from b2cal_assets_tests.loop.helpers import fake_run

P = "prompt_now"
HOLD = "prompt_hold"
LATE = T0 + timedelta(hours=49)  # past the 48 h windows
C, A = CalibrationState, AttemptState
PAYLOAD = {"toy_a": "ToyA", "toy_b": "ToyB", "toy_c": "ToyC"}


class Driver:
    """Brings a calibration into a state with the loop's public methods only."""

    def __init__(self, loop, tmp_path) -> None:
        self.loop, self.tmp_path, self.ticket = loop, tmp_path, None

    def tick(self, now=T0, runs=None):
        return self.loop.tick(now=now, runs=runs)

    def begin(self, calibration="toy_a", by=AUTO_USER, processing=P, **kwargs):
        self.ticket = self.loop.begin_attempt(
            processing, calibration, submitted_by=by, expert_config={}, job_config={}, **kwargs
        )
        return self.ticket

    def done(self, calibration):
        """``calibration`` finished and signed off."""
        fake_run(self.loop, P, calibration, {PAYLOAD[calibration]: {"value": [1.0]}})
        self.loop.sign_off(P, calibration, decision="accept", by=AUTO_USER, automatic=True)

    def upstream_of_cdst_done(self):
        """Everything the cDST production needs is signed off; no tick has seen it yet."""
        for name in self.loop.order:
            if name in self.loop.steps["cdst"].depends_on:
                self.tick()  # opens its window
                self.done(name)

    # --- toy_a in each state -------------------------------------------------------------------
    def window_open(self):
        self.tick()

    def submitted(self):
        self.tick()
        self.tick(LATE)

    def running(self):
        self.tick()
        self.begin()

    def failed(self):
        self.finished()
        self.archive()  # while it still has payloads, for the cases that upload
        self.begin()  # the loop runs it again
        self.loop.fail_attempt(self.ticket, "the collector crashed")

    def finished(self):
        self.tick()
        fake_run(self.loop, P, "toy_a", {"ToyA": {"mean": [2.0]}})

    def signed_off(self):
        self.finished()
        self.loop.sign_off(P, "toy_a", decision="accept", by="alice", automatic=False)

    def rejected(self):
        self.finished()
        self.loop.sign_off(P, "toy_a", decision="reject", by="alice", automatic=False)

    def archive(self):
        path = self.tmp_path / "toy_a.tar.gz"
        if not path.exists():
            current_payloads_archive(self.loop.current_payloads(P, "toy_a"), path)
        return path

    def upload(self):
        self.loop.upload_payloads(P, "toy_a", self.archive(), by="alice")

    def include(self, calibration="toy_a"):
        self.loop.include(P, calibration, by="mgr")

    def exclude(self, calibration="toy_a"):
        self.loop.exclude(P, calibration, by="mgr")

    def restart(self):
        self.loop.restart(P, "toy_a", by="mgr")

    def submit(self, processing=P):
        self.loop.submit(processing, "toy_a", by="alice", expert_config={})

    def runs_end_without_attempts(self):
        """Every run the loop launches for toy_a ends before it records an attempt."""
        runs = FakeRuns()
        self.tick(T0, runs)
        for n in range(MAX_RELAUNCHES + 1):
            (launch,) = [
                x
                for x in self.tick(LATE + timedelta(seconds=n), runs).launches
                if (x.processing, x.step) == (P, "toy_a")
            ]
            runs.set(runs.launch(launch.run_key), "FAILURE", why="the launch timed out")
        return runs


def _upload_from(state):
    def setup(d):
        getattr(d, state)()
        d.archive()

    return setup


# (from, to) -> (calibration, setup, the move); the setup only uses the loop's public methods
CALIBRATION_CASES = {
    (C.WAITING, C.WINDOW_OPEN): ("toy_b", lambda d: (d.tick(), d.done("toy_a")), lambda d: d.tick()),
    (C.WAITING, C.SUBMITTED): ("cdst", lambda d: d.upstream_of_cdst_done(), lambda d: d.tick()),
    (C.WINDOW_OPEN, C.SUBMITTED): ("toy_a", Driver.window_open, lambda d: d.tick(LATE)),
    (C.WINDOW_OPEN, C.RUNNING): ("toy_a", Driver.window_open, lambda d: d.begin(by="alice")),
    (C.WINDOW_OPEN, C.WAITING): ("toy_a", lambda d: (d.window_open(), d.exclude()), Driver.include),
    (C.SUBMITTED, C.RUNNING): ("toy_a", Driver.submitted, lambda d: d.begin()),
    (C.SUBMITTED, C.FAILED): (
        "toy_a",
        lambda d: setattr(d, "runs", d.runs_end_without_attempts()),
        lambda d: d.tick(LATE + timedelta(minutes=5), d.runs),
    ),
    (C.SUBMITTED, C.WINDOW_OPEN): ("toy_a", Driver.submitted, Driver.restart),
    (C.SUBMITTED, C.WAITING): ("toy_a", lambda d: (d.submitted(), d.exclude()), Driver.include),
    (C.RUNNING, C.FAILED): ("toy_a", Driver.running, lambda d: d.loop.fail_attempt(d.ticket, "crashed")),
    (C.RUNNING, C.FINISHED): (
        "toy_a",
        Driver.running,
        lambda d: d.loop.finish_attempt(d.ticket, d.tmp_path / "empty_outputdb", [], iterations=1),
    ),
    (C.RUNNING, C.SIGNED_OFF): (
        "cdst",
        lambda d: (d.upstream_of_cdst_done(), d.tick(), d.begin("cdst")),
        lambda d: d.loop.complete_step(d.ticket),
    ),
    (C.RUNNING, C.WINDOW_OPEN): ("toy_a", Driver.running, Driver.restart),
    (C.RUNNING, C.WAITING): ("toy_a", lambda d: (d.running(), d.exclude()), Driver.include),
    (C.FAILED, C.RUNNING): ("toy_a", Driver.failed, lambda d: d.begin(by="alice")),
    (C.FAILED, C.WINDOW_OPEN): ("toy_a", Driver.failed, Driver.submit),
    (C.FAILED, C.FINISHED): ("toy_a", Driver.failed, Driver.upload),
    (C.FAILED, C.WAITING): ("toy_a", lambda d: (d.failed(), d.exclude()), Driver.include),
    (C.FINISHED, C.SIGNED_OFF): (
        "toy_a",
        Driver.finished,
        lambda d: d.loop.sign_off(P, "toy_a", decision="accept", by="alice", automatic=False),
    ),
    (C.FINISHED, C.REJECTED): (
        "toy_a",
        Driver.finished,
        lambda d: d.loop.sign_off(P, "toy_a", decision="reject", by="alice", automatic=False),
    ),
    (C.FINISHED, C.RUNNING): ("toy_a", Driver.finished, lambda d: d.begin()),
    (C.FINISHED, C.WINDOW_OPEN): ("toy_a", Driver.finished, Driver.restart),
    (C.FINISHED, C.WAITING): ("toy_a", lambda d: (d.finished(), d.exclude()), Driver.include),
    (C.SIGNED_OFF, C.REJECTED): (
        "toy_a",
        Driver.signed_off,
        lambda d: d.loop.sign_off(P, "toy_a", decision="reject", by="alice", automatic=False),
    ),
    (C.SIGNED_OFF, C.FINISHED): ("toy_a", _upload_from("signed_off"), Driver.upload),
    (C.REJECTED, C.SIGNED_OFF): (
        "toy_a",
        Driver.rejected,
        lambda d: d.loop.sign_off(P, "toy_a", decision="accept", by="alice", automatic=False),
    ),
    (C.REJECTED, C.RUNNING): ("toy_a", Driver.rejected, lambda d: d.begin(by="alice")),
    (C.REJECTED, C.WINDOW_OPEN): ("toy_a", Driver.rejected, Driver.submit),
    (C.REJECTED, C.FINISHED): ("toy_a", _upload_from("rejected"), Driver.upload),
    (C.REJECTED, C.WAITING): ("toy_a", lambda d: (d.rejected(), d.exclude()), Driver.include),
}

# (from, to) -> (setup, the move), on toy_a
ATTEMPT_CASES = {
    (A.SUBMITTED, A.HELD): (Driver.window_open, Driver.submit),
    (A.SUBMITTED, A.RUNNING): (Driver.submitted, lambda d: d.begin()),
    (A.HELD, A.SUBMITTED): (
        lambda d: (d.tick(), d.submit(HOLD), d.tick(LATE)),
        lambda d: d.begin(processing=HOLD),
    ),
    (A.HELD, A.CANCELLED): (lambda d: (d.tick(), d.submit(HOLD)), lambda d: d.submit(HOLD)),
    (A.RUNNING, A.FAILED): (Driver.running, lambda d: d.loop.fail_attempt(d.ticket, "crashed")),
    (A.RUNNING, A.FINISHED): (
        Driver.running,
        lambda d: d.loop.finish_attempt(d.ticket, d.tmp_path / "empty_outputdb", [], iterations=1),
    ),
    (A.RUNNING, A.CANCELLED): (Driver.running, Driver.restart),
    (A.FAILED, A.RUNNING): (  # a re-execution of the failed attempt's run resumes it
        lambda d: (d.tick(), d.begin(dagster_run_id="run-1"), d.loop.fail_attempt(d.ticket, "crashed")),
        lambda d: d.begin(dagster_run_id="run-2", resume_run_ids=["run-1"]),
    ),
}


@pytest.fixture
def moves(monkeypatch):
    """Every change of state the loop's guard let through, as (kind, from, to)."""
    seen: list[tuple[str, str, str]] = []
    real_calibration, real_attempt = transitions.check_calibration_move, transitions.check_attempt_move

    def calibration_move(old, new, what):
        real_calibration(old, new, what)
        if old != new:
            seen.append(("calibration", str(old), str(new)))

    def attempt_move(old, new, what):
        real_attempt(old, new, what)
        if old != new:
            seen.append(("attempt", str(old), str(new)))

    monkeypatch.setattr(transitions, "check_calibration_move", calibration_move)
    monkeypatch.setattr(transitions, "check_attempt_move", attempt_move)
    return seen


def test_every_transition_has_its_case():
    assert set(CALIBRATION_CASES) == set(CALIBRATION_TRANSITIONS)
    assert set(ATTEMPT_CASES) == set(ATTEMPT_TRANSITIONS)


@pytest.mark.parametrize("move", list(CALIBRATION_CASES), ids=lambda m: f"{m[0]}->{m[1]}")
def test_each_calibration_transition_is_made_by_a_public_method(loop, tmp_path, moves, move):
    old, new = move
    calibration, setup, act = CALIBRATION_CASES[move]
    (tmp_path / "empty_outputdb").mkdir()
    d = Driver(loop, tmp_path)
    setup(d)
    assert loop.step_states(P)[calibration] == (C.EXCLUDED if new == C.WAITING else old)
    moves.clear()
    act(d)
    assert ("calibration", old, new) in moves
    with loop.session() as s:
        assert calibrations.get_calibration(s, P, calibration).state == new


@pytest.mark.parametrize("move", list(ATTEMPT_CASES), ids=lambda m: f"{m[0]}->{m[1]}")
def test_each_attempt_transition_is_made_by_a_public_method(loop, tmp_path, moves, move):
    old, new = move
    setup, act = ATTEMPT_CASES[move]
    (tmp_path / "empty_outputdb").mkdir()
    d = Driver(loop, tmp_path)
    setup(d)
    moves.clear()
    act(d)
    assert ("attempt", old, new) in moves


CALIBRATION_REFUSED = [
    (old, new)
    for old, new in itertools.product(CalibrationState, repeat=2)
    if old != new and (old, new) not in CALIBRATION_TRANSITIONS
]
ATTEMPT_REFUSED = [
    (old, new)
    for old, new in itertools.product(AttemptState, repeat=2)
    if old != new and (old, new) not in ATTEMPT_TRANSITIONS
]


@pytest.mark.parametrize("move", CALIBRATION_REFUSED, ids=lambda m: f"{m[0]}->{m[1]}")
def test_every_other_calibration_move_is_refused(move):
    old, new = move
    with pytest.raises(TransitionRefused, match=f"toy_a in p is {old} and cannot become {new}"):
        check_calibration_move(old, new, "toy_a in p")


@pytest.mark.parametrize("move", ATTEMPT_REFUSED, ids=lambda m: f"{m[0]}->{m[1]}")
def test_every_other_attempt_move_is_refused(move):
    old, new = move
    with pytest.raises(TransitionRefused, match=f"is {old} and cannot become {new}"):
        check_attempt_move(old, new, "attempt 1 of toy_a")


def test_the_loop_refuses_a_move_outside_the_table_and_changes_nothing(loop):
    """A rule that tried to run a signed-off calibration again would be stopped by the guard."""
    loop.tick(now=T0)
    fake_run(loop, P, "toy_a", {"ToyA": {"mean": [2.0]}})
    loop.sign_off(P, "toy_a", decision="accept", by="alice", automatic=False)
    refused = "toy_a in prompt_now is signed_off and cannot become running"
    with pytest.raises(LoopError, match=refused), loop.session() as s:
        transitions.move_calibration(s, P, "toy_a", C.RUNNING)
    assert loop.step_states(P)["toy_a"] == "signed_off"
