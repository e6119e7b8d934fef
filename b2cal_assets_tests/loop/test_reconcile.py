"""Reconciliation: each tick compares the calibration database with Dagster's runs and heals the step.

Against ``FakeRuns`` (the loop's view of Dagster, with the daemon's rule that a run key starts once);
``defs/test_reconcile_dagster.py`` does the same through a real Dagster instance and the sensors.
"""

from datetime import timedelta

import pytest

from b2cal_assets.db.repo import attempts
from b2cal_assets.loop.reconcile import MAX_RELAUNCHES, MAX_RESUMES
from b2cal_assets_tests.loop.conftest import T0
from b2cal_assets_tests.loop.fake_runs import FakeRuns, finish, start_attempt
from b2cal_assets_tests.loop.helpers import audit_actions, kinds, messages

P = "prompt_now"
LATE = T0 + timedelta(hours=49)  # past toy_a's 48 h window


def launches_of(report, step="toy_a"):
    return [x for x in report.launches if (x.processing, x.step) == (P, step)]


def submitted(loop, runs):
    loop.tick(now=T0, runs=runs)
    (launch,) = launches_of(loop.tick(now=LATE, runs=runs))
    return launch


def attempt_rows(loop, step="toy_a"):
    with loop.session() as s:
        return [(a.number, a.state, a.resumes) for a in attempts.list_attempts(s, P, step)]


def recovery_note(loop, step="toy_a"):
    return {r.step: r for r in loop.status_rows(P)}[step].recovery


def test_a_lost_request_is_made_again_under_the_same_key(loop):
    runs = FakeRuns()
    launch = submitted(loop, runs)
    assert loop.step_states(P)["toy_a"] == "submitted"
    # the daemon died between the tick's commit and creating the run: Dagster has nothing
    (again,) = launches_of(loop.tick(now=LATE + timedelta(seconds=2), runs=runs))
    assert again.run_key == launch.run_key  # same key: Dagster can never start it twice
    assert recovery_note(loop).startswith("requested_again: toy_a was submitted but Dagster has no run")
    launches_of(loop.tick(now=LATE + timedelta(seconds=4), runs=runs))
    assert kinds(loop, P, "toy_a").count("loop_requested_again") == 1  # said once per key
    run_id = runs.launch(again.run_key)
    assert runs.launch(again.run_key) is None  # a second request of the key is skipped
    assert launches_of(loop.tick(now=LATE + timedelta(seconds=6), runs=runs)) == []  # queued: wait
    ticket = start_attempt(loop, runs, again, run_id)
    assert (ticket.number, loop.step_states(P)["toy_a"]) == (1, "running")
    assert launches_of(loop.tick(now=LATE + timedelta(seconds=8), runs=runs)) == []
    assert runs.started_keys.count(launch.run_key) == 1


def test_a_run_failed_before_it_started_is_launched_again_then_given_up(loop):
    runs = FakeRuns()
    launch = submitted(loop, runs)
    first = runs.launch(launch.run_key)
    timeout = "User code server request timed out due to taking longer than 60 seconds"
    runs.set(first, "FAILURE", why=timeout)
    report = loop.tick(now=LATE + timedelta(seconds=2), runs=runs)
    (relaunch,) = launches_of(report)
    assert relaunch.run_key == launch.run_key + "|g1"
    assert report.recovered and "before it started" in report.recovered[0] and timeout in report.recovered[0]
    assert loop.step_states(P)["toy_a"] == "submitted" and attempt_rows(loop) == []
    (msg,) = [m for m in messages(loop, P, "toy_a") if m.kind == "loop_relaunched"]
    assert timeout in msg.body and "launched it again" in msg.body
    ((user, _action, details),) = [a for a in audit_actions(loop, P, "toy_a") if a[1] == "loop_relaunched"]
    assert (user, details["run_id"], details["started"]) == ("auto", first, False)
    # each relaunch that fails again gets the next generation, up to the limit; then failed, for a manager
    for n in range(2, MAX_RELAUNCHES + 1):
        runs.set(runs.launch(relaunch.run_key), "CANCELED", why="cancelled from the queue")
        (relaunch,) = launches_of(loop.tick(now=LATE + timedelta(seconds=2 * n), runs=runs))
        assert relaunch.run_key.endswith(f"|g{n}")
    runs.set(runs.launch(relaunch.run_key), "FAILURE", why=timeout)
    assert launches_of(loop.tick(now=LATE + timedelta(minutes=1), runs=runs)) == []
    assert loop.step_states(P)["toy_a"] == "failed"
    assert recovery_note(loop).startswith("gave_up:") and "a manager can restart it" in recovery_note(loop)
    # the way out: a manager's restart; the new submission gets its own run keys and relaunch budget
    loop.restart(P, "toy_a", by="mgr")
    (fresh,) = launches_of(loop.tick(now=LATE + timedelta(minutes=2), runs=runs))
    assert fresh.run_key not in runs.started_keys
    ticket = start_attempt(loop, runs, fresh, runs.launch(fresh.run_key))
    assert ticket.number == 1 and [a[:2] for a in attempt_rows(loop)] == [(1, "running")]


def test_a_run_that_started_but_recorded_no_attempt_is_launched_again(loop):
    """The calibration database was down while the run started: it failed before recording anything."""
    runs = FakeRuns()
    launch = submitted(loop, runs)
    runs.set(runs.launch(launch.run_key), "FAILURE", started=True, why="OperationalError: database is down")
    (relaunch,) = launches_of(loop.tick(now=LATE + timedelta(seconds=2), runs=runs))
    assert relaunch.run_key.endswith("|g1") and "after it started" in recovery_note(loop)


def test_an_attempt_whose_run_died_is_resumed_from_its_checkpoint(loop):
    runs = FakeRuns()
    launch = submitted(loop, runs)
    dead = runs.launch(launch.run_key)
    ticket = start_attempt(loop, runs, launch, dead)
    (ticket.workdir / "state.json").parent.mkdir(parents=True, exist_ok=True)
    (ticket.workdir / "state.json").write_text("{}")
    # the daemon and its run workers were kill -9ed; run monitoring marked the run failed
    runs.set(dead, "FAILURE", why="the run worker (pid 4242) is gone: no such process")
    (resume,) = launches_of(loop.tick(now=LATE + timedelta(minutes=1), runs=runs))
    assert (resume.reason, resume.resume_run_id, resume.attempt) == ("resume", dead, 1)
    assert resume.run_key == f"{P}|toy_a|1|resume|g1"
    assert loop.step_states(P)["toy_a"] == "running" and attempt_rows(loop) == [(1, "running", 1)]
    assert "pid 4242" in recovery_note(loop) and "resumes the attempt from its checkpoint" in recovery_note(
        loop
    )
    # while the resume run waits in the queue nothing more is requested
    second = runs.launch(resume.run_key)
    assert launches_of(loop.tick(now=LATE + timedelta(minutes=2), runs=runs)) == []
    # it takes the attempt over: same number, same work directory (so finished subjobs are kept)
    resumed = start_attempt(loop, runs, resume, second)
    assert (resumed.attempt_id, resumed.workdir) == (ticket.attempt_id, ticket.workdir)
    assert launches_of(loop.tick(now=LATE + timedelta(minutes=3), runs=runs)) == []
    finish(loop, runs, resumed, second, {"ToyA": {"mean": [3.0]}})
    assert attempt_rows(loop) == [(1, "finished", 1)]
    assert kinds(loop, P, "toy_a").count("submitted") == 1  # one attempt, submitted once


def test_resumes_are_bounded_and_a_restart_continues_the_checkpoint(loop):
    runs = FakeRuns()
    launch = submitted(loop, runs)
    run_id = runs.launch(launch.run_key)
    ticket = start_attempt(loop, runs, launch, run_id)
    ticket.workdir.mkdir(parents=True, exist_ok=True)
    (ticket.workdir / "state.json").write_text("{}")
    current = launch
    for n in range(MAX_RESUMES):
        runs.set(run_id, "FAILURE", why="out of memory")
        (current,) = launches_of(loop.tick(now=LATE + timedelta(minutes=n + 1), runs=runs))
        run_id = runs.launch(current.run_key)
        start_attempt(loop, runs, current, run_id)
    runs.set(run_id, "FAILURE", why="out of memory")
    assert launches_of(loop.tick(now=LATE + timedelta(hours=1), runs=runs)) == []
    assert loop.step_states(P)["toy_a"] == "failed"
    assert attempt_rows(loop) == [(1, "failed", MAX_RESUMES)]
    assert "failed" in kinds(loop, P, "toy_a") and recovery_note(loop).startswith("gave_up:")
    number = loop.restart(P, "toy_a", by="mgr")
    (again,) = launches_of(loop.tick(now=LATE + timedelta(hours=2), runs=runs))
    second = start_attempt(loop, runs, again, runs.launch(again.run_key))
    assert (second.number, second.workdir) == (number, ticket.workdir)  # resumes attempt 1's checkpoint


def test_a_cancelled_run_fails_its_attempt(loop):
    runs = FakeRuns()
    launch = submitted(loop, runs)
    run_id = runs.launch(launch.run_key)
    start_attempt(loop, runs, launch, run_id)
    runs.set(run_id, "CANCELED", why="cancelled by alice from the UI")
    assert launches_of(loop.tick(now=LATE + timedelta(minutes=1), runs=runs)) == []
    assert loop.step_states(P)["toy_a"] == "failed" and attempt_rows(loop)[0][1] == "failed"
    assert "failed" in kinds(loop, P, "toy_a") and "loop_run_cancelled" in kinds(loop, P, "toy_a")


@pytest.mark.parametrize("action", ["restart", "exclude"])
def test_a_manager_restarts_or_excludes_a_stuck_running_step(loop, action):
    runs = FakeRuns()
    launch = submitted(loop, runs)
    stuck = runs.launch(launch.run_key)
    ticket = start_attempt(loop, runs, launch, stuck)  # its worker hangs; the run stays STARTED
    getattr(loop, action)(P, "toy_a", by="mgr")
    assert loop.attempt_state(ticket.attempt_id) == "cancelled"
    report = loop.tick(now=LATE + timedelta(minutes=1), runs=runs)
    assert stuck in report.terminate  # the sensor terminates the run of the cancelled attempt
    if action == "restart":
        (again,) = launches_of(report)
        second = start_attempt(loop, runs, again, runs.launch(again.run_key))
        assert second.number == 2 and second.workdir != ticket.workdir  # the old run may still write there
    else:
        assert launches_of(report) == [] and loop.step_states(P)["toy_a"] == "excluded"
    runs.set(stuck, "CANCELED")
    assert stuck not in loop.tick(now=LATE + timedelta(minutes=2), runs=runs).terminate


def test_checks_that_could_not_start_are_launched_again(loop):
    runs = FakeRuns()
    launch = submitted(loop, runs)
    run_id = runs.launch(launch.run_key)
    finish(loop, runs, start_attempt(loop, runs, launch, run_id), run_id, {"ToyA": {"mean": [3.0]}})
    (checks,) = launches_of(loop.tick(now=LATE + timedelta(minutes=1), runs=runs))
    assert checks.reason == "signoff" and checks.attempt_run_id == run_id
    runs.set(runs.launch(checks.run_key), "FAILURE", why="launch timed out")
    (again,) = launches_of(loop.tick(now=LATE + timedelta(minutes=2), runs=runs))
    assert again.reason == "signoff" and again.run_key == checks.run_key + "|g1"
    # a checks run that ran and did not sign off is left to people (a failed check is an answer)
    runs.set(runs.launch(again.run_key), "FAILURE", started=True, why="validation failed")
    assert launches_of(loop.tick(now=LATE + timedelta(minutes=3), runs=runs)) == []
    assert loop.step_states(P)["toy_a"] == "finished"


def test_a_tick_commits_all_of_its_decisions_or_none(loop, monkeypatch):
    """A tick that fails half-way (here: storing its ticket messages) leaves nothing half-decided."""
    import b2cal_assets.loop.tick as tick_module

    runs = FakeRuns()
    loop.tick(now=T0, runs=runs)
    real = tick_module.post_in_session

    def broken(s, events):
        raise RuntimeError("the database went away")

    monkeypatch.setattr(tick_module, "post_in_session", broken)
    with pytest.raises(RuntimeError):
        loop.tick(now=LATE, runs=runs)
    assert loop.step_states(P)["toy_a"] == "window_open"  # the deadline decision was rolled back
    monkeypatch.setattr(tick_module, "post_in_session", real)
    (launch,) = launches_of(loop.tick(now=LATE, runs=runs))  # and is made again at the next tick
    assert launch.reason == "deadline" and loop.step_states(P)["toy_a"] == "submitted"
