"""Submission windows: open when inputs are ready, expert settings inside, held sites, defaults after."""

from datetime import timedelta

import pytest

from b2cal_assets.db.repo import attempts
from b2cal_assets.loop.service import AUTO_USER, LoopError, SubmissionHeld
from b2cal_assets_tests.loop.conftest import T0
from b2cal_assets_tests.loop.helpers import audit_actions, fake_run, kinds, messages

WINDOW = timedelta(hours=48)


def submit(loop, processing, calibration, user, **expert_config):
    return loop.begin_attempt(
        processing, calibration, submitted_by=user, expert_config=expert_config, job_config={}
    )


def test_window_opens_only_when_inputs_are_ready(loop):
    report = loop.tick(now=T0)
    assert ("prompt_now", "toy_a") in report.opened
    assert ("prompt_now", "toy_b") not in report.opened  # waits for toy_a's sign-off
    rows = {r.step: r for r in loop.status_rows("prompt_now")}
    assert rows["toy_a"].state == "window_open"
    assert rows["toy_a"].deadline == T0 + WINDOW
    assert rows["toy_b"].state == "waiting"
    assert "window_open" in kinds(loop, "prompt_now", "toy_a")
    with pytest.raises(LoopError, match=r"toy_b cannot be submitted yet.*toy_a signed off"):
        submit(loop, "prompt_now", "toy_b", "bob")


def test_expert_submits_inside_the_window_with_changed_settings(loop, clock):
    loop.tick(now=T0)
    clock.now = T0 + timedelta(hours=3)
    ticket = submit(loop, "prompt_now", "toy_a", "alice", scale=1.02)
    assert (ticket.submitted_by, ticket.expert_config, ticket.number) == ("alice", {"scale": 1.02}, 1)
    assert loop.step_states("prompt_now")["toy_a"] == "running"
    # the deadline passing later launches nothing: the expert's run is the one
    late = loop.tick(now=T0 + 2 * WINDOW).launches
    assert not [x for x in late if (x.processing, x.step) == ("prompt_now", "toy_a")]
    (submitted,) = [m for m in messages(loop, "prompt_now", "toy_a") if m.kind == "submitted"]
    assert "by alice" in submitted.body and '"scale": 1.02' in submitted.body
    assert (
        "alice",
        "submit",
        {"expert_config": {"scale": 1.02}, "job_config": {}, "attempt": 1},
    ) in audit_actions(loop, "prompt_now", "toy_a")


def test_hold_site_keeps_the_settings_until_the_deadline_then_launches_them(loop, clock):
    loop.tick(now=T0)
    clock.now = T0 + timedelta(hours=1)
    with pytest.raises(SubmissionHeld, match="starts jobs only when the window closes"):
        submit(loop, "prompt_hold", "toy_a", "alice", scale=1.01)
    clock.now = T0 + timedelta(hours=2)
    with pytest.raises(SubmissionHeld):
        submit(loop, "prompt_hold", "toy_a", "alice", scale=1.03)  # a second submission replaces the first
    assert loop.step_states("prompt_hold")["toy_a"] == "window_open"
    assert not [
        x for x in loop.tick(now=T0 + WINDOW - timedelta(minutes=1)).launches if x.processing == "prompt_hold"
    ]

    (launch,) = [x for x in loop.tick(now=T0 + WINDOW).launches if x.processing == "prompt_hold"]
    assert (launch.step, launch.reason, launch.expert_config) == ("toy_a", "deadline", {"scale": 1.03})
    ticket = loop.begin_attempt(
        "prompt_hold", "toy_a", submitted_by=AUTO_USER, expert_config=launch.expert_config, job_config={}
    )
    assert (ticket.submitted_by, ticket.expert_config) == ("alice", {"scale": 1.03})
    with loop.session() as s:
        states = [(a.number, a.state) for a in attempts.list_attempts(s, "prompt_hold", "toy_a")]
    assert states == [(1, "cancelled"), (2, "running")]
    assert kinds(loop, "prompt_hold", "toy_a").count("held") == 2
    submitted = [m for m in messages(loop, "prompt_hold", "toy_a") if m.kind == "submitted"]
    assert len(submitted) == 1 and "by alice" in submitted[0].body


def test_after_the_deadline_the_defaults_run_and_a_late_submission_is_refused(loop, clock):
    loop.tick(now=T0)
    clock.now = T0 + WINDOW + timedelta(hours=1)
    (launch,) = [x for x in loop.tick(now=clock.now).launches if x.processing == "prompt_now"]
    assert (launch.step, launch.reason, launch.expert_config) == ("toy_a", "deadline", {})
    with pytest.raises(LoopError, match="already submitted with its defaults after the deadline"):
        submit(loop, "prompt_now", "toy_a", "alice", scale=2.0)
    loop.begin_attempt("prompt_now", "toy_a", submitted_by=AUTO_USER, expert_config={}, job_config={})
    with pytest.raises(
        LoopError, match=r"default run \(attempt 1, submitted automatically\) has already started"
    ):
        submit(loop, "prompt_now", "toy_a", "alice", scale=2.0)
    (submitted,) = [m for m in messages(loop, "prompt_now", "toy_a") if m.kind == "submitted"]
    assert "automatically with the default settings" in submitted.body


def test_a_retick_posts_no_second_window_message(loop):
    loop.tick(now=T0)
    loop.tick(now=T0 + timedelta(hours=1))
    assert kinds(loop, "prompt_now", "toy_a").count("window_open") == 1


def test_a_submission_at_a_site_that_starts_jobs_at_once_is_queued_not_held(loop, clock):
    loop.tick(now=T0)
    clock.now = T0 + timedelta(hours=1)
    text = loop.submit("prompt_now", "toy_a", by="alice", expert_config={"scale": 1.02})
    assert "starts at the next sensor tick" in text
    (row,) = [r for r in loop.status_rows("prompt_now") if r.step == "toy_a"]
    assert row.deadline == T0 + WINDOW  # the deadline is not overwritten by the submission time
    assert row.attempt_state == "queued"
    bodies = [m.body for m in messages(loop, "prompt_now", "toy_a")]
    assert not any("starts jobs only when the window closes" in b for b in bodies)
    assert any("alice submitted *toy_a*" in b and "next tick" in b for b in bodies)
    (launch,) = [
        x for x in loop.tick(now=clock.now).launches if x.step == "toy_a" and x.processing == "prompt_now"
    ]
    assert (launch.expert_config, launch.submitted_by, launch.why) == ({"scale": 1.02}, "alice", "submission")


def test_ticket_messages_carry_no_server_path(loop, clock, b2cal_home):
    loop.tick(now=T0)
    ticket = submit(loop, "prompt_now", "toy_a", "alice", scale=1.02)
    loop.fail_attempt(ticket, f"OSError: [Errno 28] No space left on device: '{ticket.workdir}/state.json'")
    loop.restart("prompt_now", "toy_a", by="mgr")
    bodies = [m.body for m in messages(loop, "prompt_now", "toy_a")]
    assert any("state.json" in b for b in bodies)  # the file is still named
    assert not [b for b in bodies if str(b2cal_home) in b or str(ticket.workdir) in b]
    (failed,) = [m for m in messages(loop, "prompt_now", "toy_a") if m.kind == "failed"]
    assert "/b2cal/processing/prompt_now/toy_a" in failed.body  # where the logs are, for an expert


def test_a_finished_or_signed_off_row_shows_no_deadline(loop, clock):
    loop.tick(now=T0)
    clock.now = T0 + timedelta(hours=1)
    fake_run(loop, "prompt_now", "toy_a", {"ToyGain": {"gain": [1.0]}}, by="alice")
    (row,) = [r for r in loop.status_rows("prompt_now") if r.step == "toy_a"]
    assert (row.state, row.deadline) == ("finished", None)
    loop.sign_off("prompt_now", "toy_a", decision="accept", by="alice", automatic=False)
    (row,) = [r for r in loop.status_rows("prompt_now") if r.step == "toy_a"]
    assert (row.state, row.deadline) == ("signed_off", None)


def test_a_tick_of_one_processing_leaves_the_others_to_the_sensor(loop):
    """What the sign-off's run ticks (``tick(only=...)``): the same rules, for its own processing only."""
    report = loop.tick(now=T0, only="prompt_now")
    assert report.opened == [("prompt_now", "toy_a")]
    assert loop.step_states("prompt_hold").get("toy_a") != "window_open"
    assert ("prompt_hold", "toy_a") in loop.tick(now=T0).opened
