"""Every state a calibration can be in has a way out, and none needs a hand edit of the database.

Each case brings toy_a into one state (a fault included where that is how the state arises) through the
loop's own calls, shows the way out (the loop by itself, or one manager or expert action), and drives
the processing to its end with a stand-in for Dagster (``FakeRuns``: a run key starts once) and for the
jobs (attempts finish with a payload). Then every step is signed off or excluded, no run key was started
twice, and each step has the attempts its story needs and no more.
"""

from datetime import timedelta

import pytest

from b2cal_assets.db.repo import attempts, calibrations
from b2cal_assets.loop.service import AUTO_USER
from b2cal_assets_tests.loop.conftest import T0
from b2cal_assets_tests.loop.fake_runs import FakeRuns, finish, start_attempt

P = "prompt_now"
PAYLOAD = {"toy_a": "ToyA", "toy_b": "ToyB", "toy_c": "ToyC"}
LATE = T0 + timedelta(hours=49)


class World:
    """The calibration loop, a fake Dagster, and workers that do what a launched run does."""

    def __init__(self, loop, clock) -> None:
        self.loop, self.clock, self.runs = loop, clock, FakeRuns()
        self.hung: set[str] = set()  # runs whose worker hangs: they never finish by themselves

    def tick(self, minutes: float = 1.0):
        self.clock.now += timedelta(minutes=minutes)
        report = self.loop.tick(now=self.clock.now, runs=self.runs)
        for run_id in report.terminate:  # what the sensor does: terminate the run of a cancelled attempt
            self.runs.set(run_id, "CANCELED", why="terminated: its attempt was cancelled")
        return [x for x in report.launches if x.processing == P]

    def request(self, launch) -> str | None:
        return self.runs.launch(launch.run_key)

    def work(self, launch, run_id: str) -> None:
        loop, runs = self.loop, self.runs
        if launch.checks_only:
            runs.set(run_id, "STARTED", started=True)
            loop.sign_off(P, launch.step, decision="accept", by=AUTO_USER, automatic=True)
            runs.set(run_id, "SUCCESS")
            return
        ticket = start_attempt(loop, runs, launch, run_id)
        if launch.step == "cdst":
            loop.complete_step(ticket)
            runs.set(run_id, "SUCCESS")
            return
        finish(loop, runs, ticket, run_id, {PAYLOAD[launch.step]: {"value": [1.0]}})
        loop.sign_off(P, launch.step, decision="accept", by=AUTO_USER, automatic=True)

    def drive(self, rounds: int = 40) -> None:
        """Tick, launch and run what is requested, until the processing is finished (every round the
        48 h submission windows pass: the defaults run)."""
        for _ in range(rounds):
            for launch in self.tick(minutes=49 * 60):
                run_id = self.request(launch)
                if run_id is not None:
                    self.work(launch, run_id)
            if self.loop.step_states(P) and all(
                v in ("signed_off", "excluded") for v in self.loop.step_states(P).values()
            ):
                return
        pytest.fail(f"the loop did not finish: {self.loop.step_states(P)}")

    def attempts(self) -> dict[str, list[str]]:
        with self.loop.session() as s:
            out: dict[str, list[str]] = {}
            for a in attempts.list_attempts(s, P):
                out.setdefault(a.calibration, []).append(a.state)
            return out

    def state(self, step: str = "toy_a") -> str:
        return self.loop.step_states(P)[step]


def submit_toy_a(w: World):
    w.clock.now = T0
    w.loop.tick(now=T0, runs=w.runs)
    w.clock.now = LATE
    (launch,) = [x for x in w.tick(0) if x.step == "toy_a"]
    return launch


def start_toy_a(w: World):
    launch = submit_toy_a(w)
    run_id = w.request(launch)
    return launch, run_id, start_attempt(w.loop, w.runs, launch, run_id)


# --- each case: reach the state (assert it), then take its way out -----------------------------
def waiting(w):
    w.loop.tick(now=T0, runs=w.runs)
    assert w.state("toy_b") == "waiting"  # for toy_a's sign-off: the loop opens it then


def window_open(w):
    w.loop.tick(now=T0, runs=w.runs)
    assert w.state() == "window_open"  # the deadline passes: the defaults are submitted


def submitted_request_lost(w):
    submit_toy_a(w)  # the request never reaches Dagster
    assert w.state() == "submitted"


def submitted_run_failed_before_start(w):
    launch = submit_toy_a(w)
    w.runs.set(w.request(launch), "FAILURE", why="User code server request timed out")
    assert w.state() == "submitted"


def submitted_run_cancelled_in_queue(w):
    launch = submit_toy_a(w)
    w.runs.set(w.request(launch), "CANCELED", why="cancelled from the queue")
    assert w.state() == "submitted"


def running_worker_killed(w):
    _launch, run_id, _ticket = start_toy_a(w)
    assert w.state() == "running"
    w.runs.set(run_id, "FAILURE", why="the run worker (pid 1) is gone")  # run monitoring's verdict


def running_run_hangs(w):
    _launch, _run_id, _ticket = start_toy_a(w)
    assert w.state() == "running"
    w.loop.restart(P, "toy_a", by="mgr")  # the manager's way out of a run that never ends


def running_run_cancelled(w):
    _launch, run_id, _ticket = start_toy_a(w)
    w.runs.set(run_id, "CANCELED")
    w.tick()
    assert w.state() == "failed"
    w.loop.restart(P, "toy_a", by="mgr")


def failed(w):
    _launch, run_id, ticket = start_toy_a(w)
    w.loop.fail_attempt(ticket, "collector subjob 0 failed")
    w.runs.set(run_id, "FAILURE", started=True)
    assert w.state() == "failed"
    w.loop.restart(P, "toy_a", by="mgr")


def finished_checks_not_started(w):
    _launch, run_id, ticket = start_toy_a(w)
    finish(w.loop, w.runs, ticket, run_id, {"ToyA": {"value": [1.0]}})
    assert w.state() == "finished"
    (checks,) = [x for x in w.tick() if x.step == "toy_a"]
    w.runs.set(w.request(checks), "FAILURE", why="launch timed out")  # the loop launches the checks again


def rejected(w):
    _launch, run_id, ticket = start_toy_a(w)
    finish(w.loop, w.runs, ticket, run_id, {"ToyA": {"value": [1.0]}})
    w.loop.sign_off(P, "toy_a", decision="reject", by="alice", comment="bad fit", automatic=False)
    assert w.state() == "rejected"
    w.loop.restart(P, "toy_a", by="mgr")


def excluded(w):
    w.loop.tick(now=T0, runs=w.runs)
    w.loop.exclude(P, "toy_a", by="mgr", reason="detector off")
    assert w.state() == "excluded"  # done as it is; or included again:
    w.loop.include(P, "toy_a", by="mgr")
    assert w.state() == "waiting"


def excluded_while_running(w):
    _launch, _run_id, ticket = start_toy_a(w)
    w.loop.exclude(P, "toy_a", by="mgr", reason="stuck")
    assert w.state() == "excluded" and w.loop.attempt_state(ticket.attempt_id) == "cancelled"


CASES = {
    waiting: {"toy_a": ["finished"]},
    window_open: {"toy_a": ["finished"]},
    submitted_request_lost: {"toy_a": ["finished"]},
    submitted_run_failed_before_start: {"toy_a": ["finished"]},
    submitted_run_cancelled_in_queue: {"toy_a": ["finished"]},
    running_worker_killed: {"toy_a": ["finished"]},  # resumed: the same attempt
    running_run_hangs: {"toy_a": ["cancelled", "finished"]},
    running_run_cancelled: {"toy_a": ["failed", "finished"]},
    failed: {"toy_a": ["failed", "finished"]},
    finished_checks_not_started: {"toy_a": ["finished"]},
    rejected: {"toy_a": ["finished", "finished"]},
    excluded: {"toy_a": ["finished"]},
    excluded_while_running: {"toy_a": ["cancelled"]},
}


@pytest.mark.parametrize("case", list(CASES), ids=[c.__name__ for c in CASES])
def test_every_state_has_a_way_out(loop, clock, case):
    w = World(loop, clock)
    case(w)
    w.drive()
    states = loop.step_states(P)
    expected_excluded = {"toy_a"} if case is excluded_while_running else set()
    assert {k for k, v in states.items() if v == "excluded"} == expected_excluded
    assert all(v == "signed_off" for k, v in states.items() if k not in expected_excluded)
    assert len(w.runs.started_keys) == len(set(w.runs.started_keys))  # no run key started twice
    made = w.attempts()
    assert made.get("toy_a", []) == CASES[case]["toy_a"]
    for step in ("toy_b", "cdst", "toy_c"):
        assert made[step] == ["finished"], (step, made)  # nothing lost, nothing done twice


def test_the_cases_cover_every_state():
    reached = {
        "waiting",
        "window_open",
        "submitted",
        "running",
        "failed",
        "finished",
        "rejected",
        "excluded",
        "signed_off",  # the end of every case
    }
    assert reached == set(calibrations.STATES) | {"signed_off"}
