"""Managers: exclude/include, reassign (the Jira ticket follows), restart a failed calibration."""

from datetime import timedelta

import pytest

from b2cal_assets import home
from b2cal_assets.db.repo import attempts
from b2cal_assets.loop.service import AUTO_USER, LoopError
from b2cal_assets.tickets.jira_client import JiraTicketClient
from b2cal_assets.tickets.outbox import TicketOutbox
from b2cal_assets_tests.loop.conftest import T0
from b2cal_assets_tests.loop.helpers import audit_actions, fake_run, messages


def test_excluded_calibration_leaves_its_payloads_out_of_the_dependents_chain(loop):
    loop.tick(now=T0)
    fake_run(loop, "prompt_now", "toy_a", {"ToyA": {"mean": [99.0]}})
    (own,) = loop.current_payloads("prompt_now", "toy_a")
    loop.exclude("prompt_now", "toy_a", by="mgr", reason="bad calibration run")
    with pytest.raises(LoopError, match="already excluded"):
        loop.exclude("prompt_now", "toy_a", by="mgr")
    report = loop.tick(now=T0 + timedelta(minutes=5))
    assert ("prompt_now", "toy_b") in report.opened  # the loop goes on without toy_a
    chain = loop.database_chain("prompt_now", "toy_b")
    assert chain == [home.globaltag_dir("toy_base")]
    assert all(
        own.file not in str(p) and not str(p).startswith(str(home.b2cal_home() / "payloads"))
        for p in chain
    )
    row = {r.step: r for r in loop.status_rows("prompt_now")}["toy_a"]
    assert row.state == "excluded" and row.uses_global_tag
    (excluded,) = [m for m in messages(loop, "prompt_now", "toy_a") if m.kind == "excluded"]
    assert "by mgr" in excluded.body and "toy_b" in excluded.body and "global-tag chain" in excluded.body
    assert ("mgr", "exclude", {"reason": "bad calibration run"}) in audit_actions(loop, "prompt_now", "toy_a")

    loop.include("prompt_now", "toy_a", by="mgr")
    assert loop.step_states("prompt_now")["toy_a"] == "waiting"
    assert [m.kind for m in messages(loop, "prompt_now", "toy_a")].count("included") == 1


def test_running_calibration_is_excluded_and_its_attempt_cancelled(loop):
    loop.tick(now=T0)
    ticket = loop.begin_attempt("prompt_now", "toy_a", submitted_by="alice", expert_config={}, job_config={})
    loop.exclude("prompt_now", "toy_a", by="mgr", reason="stuck on a dead node")
    assert loop.attempt_state(ticket.attempt_id) == "cancelled"  # its run stops and records nothing
    assert loop.step_states("prompt_now")["toy_a"] == "excluded"
    assert ("mgr", "exclude", {"reason": "stuck on a dead node", "cancelled_attempt": 1}) in audit_actions(
        loop, "prompt_now", "toy_a"
    )


def test_reassign_moves_the_jira_ticket_to_the_new_expert_once(loop, fake_jira):
    loop.tick(now=T0)
    client = JiraTicketClient(fake_jira.url, fake_jira.user, fake_jira.token, fake_jira.project)
    TicketOutbox(loop.session, client).flush()
    (issue,) = [i for i in fake_jira.created_issues() if i.fields["summary"] == "[prompt_now] toy_a"]
    assert issue.fields["assignee"]["name"] == "alice"

    loop.reassign("prompt_now", "toy_a", expert="bob", by="mgr")
    with pytest.raises(LoopError, match="already the expert"):
        loop.reassign("prompt_now", "toy_a", expert="bob", by="mgr")
    report = TicketOutbox(loop.session, client).flush()
    assert report.errors == [] and report.pending == 0
    assert fake_jira.issues[issue.key].fields["assignee"]["name"] == "bob"
    reassigned = [c for c in fake_jira.issues[issue.key].comments if "reassigned from" in c["body"]]
    assert len(reassigned) == 1 and "[~bob]" in reassigned[0]["body"]
    before = len(fake_jira.requests)
    TicketOutbox(loop.session, client).flush()  # nothing pending: no request at all
    assert len(fake_jira.requests) == before
    assert {r.step: r.expert for r in loop.status_rows("prompt_now")}["toy_a"] == "bob"


def test_restart_runs_the_same_settings_as_a_new_attempt_and_keeps_the_old_logs(loop, clock):
    loop.tick(now=T0)
    clock.now = T0 + timedelta(hours=1)
    first = loop.begin_attempt(
        "prompt_now",
        "toy_a",
        submitted_by="alice",
        expert_config={"scale": 1.02},
        job_config={"max_iterations": 2},
    )
    first.workdir.mkdir(parents=True, exist_ok=True)
    (first.workdir / "collector.log").write_text("the old attempt's log\n")
    loop.fail_attempt(first, "collector subjob 0 failed", subjob="toy_a/0", log_tail="Traceback: boom")

    assert loop.restart("prompt_now", "toy_a", by="mgr") == 2
    clock.now = T0 + timedelta(hours=2)
    (launch,) = [x for x in loop.tick(now=clock.now).launches if x.processing == "prompt_now"]
    assert (launch.step, launch.expert_config, launch.job_config) == (
        "toy_a",
        {"scale": 1.02},
        {"max_iterations": 2},
    )
    second = loop.begin_attempt(
        "prompt_now",
        "toy_a",
        submitted_by=AUTO_USER,
        expert_config=launch.expert_config,
        job_config=launch.job_config,
    )
    assert (second.number, second.submitted_by, second.expert_config) == (2, "alice", {"scale": 1.02})
    assert second.workdir != first.workdir
    assert (first.workdir / "collector.log").read_text() == "the old attempt's log\n"
    with loop.session() as s:
        assert [(a.number, a.state) for a in attempts.list_attempts(s, "prompt_now", "toy_a")] == [
            (1, "failed"),
            (2, "running"),
        ]
    kinds = [m.kind for m in messages(loop, "prompt_now", "toy_a")]
    assert kinds.count("failed") == 1 and kinds.count("restarted") == 1
    (failed,) = [m for m in messages(loop, "prompt_now", "toy_a") if m.kind == "failed"]
    assert "toy_a/0" in failed.body and "Traceback: boom" in failed.body
    # the ticket points at the calibration page for the logs, never at the server's directory
    assert "/b2cal/processing/prompt_now/toy_a" in failed.body and str(first.workdir) not in failed.body
    restart = [d for u, a, d in audit_actions(loop, "prompt_now", "toy_a") if a == "restart"]
    assert restart == [{"attempt": 2, "previous": 1, "previous_workdir": str(first.workdir)}]


@pytest.mark.parametrize("outcome", ["failed", "rejected"])
def test_after_a_failure_or_reject_the_expert_resubmits_with_new_settings(loop, clock, outcome, capsys):
    from b2cal_assets.cli import main
    from b2cal_assets.db.models import utcnow

    loop.tick(now=T0)
    clock.now = T0 + timedelta(hours=1)
    first = loop.begin_attempt(
        "prompt_now", "toy_a", submitted_by="alice", expert_config={"scale": 1.02}, job_config={}
    )
    if outcome == "failed":
        loop.fail_attempt(first, "collector subjob 0 failed", subjob="toy_a/0", log_tail="Traceback: boom")
    else:
        from b2cal_assets.caf.localdb import write_outputdb

        outputdb = first.workdir / "job" / "outputdb"
        written = write_outputdb(outputdb, [], [("ToyA", loop.processing_iov("prompt_now"), {"mean": [9.0]})])
        loop.finish_attempt(first, outputdb, written, iterations=1)
        loop.sign_off("prompt_now", "toy_a", decision="reject", by="alice", comment="off", automatic=False)
    assert loop.step_states("prompt_now")["toy_a"] == outcome

    argv = ["submit", "prompt_now", "toy_a", "--set", "scale=1.05", "--user", "alice"]
    assert main(argv) == 0  # the CLI's loop runs on the real clock: it starts at once, at the next tick
    assert "attempt 2 submitted" in capsys.readouterr().out
    (launch,) = [x for x in loop.tick(now=utcnow()).launches if x.processing == "prompt_now"]
    assert (launch.step, launch.expert_config) == ("toy_a", {"scale": 1.05})
    second = loop.begin_attempt(
        "prompt_now", "toy_a", submitted_by=AUTO_USER, expert_config=launch.expert_config, job_config={}
    )
    assert (second.number, second.submitted_by, second.expert_config) == (2, "alice", {"scale": 1.05})

    # a manager's resubmission after the next failure takes the manager's settings, not the failed ones
    loop.fail_attempt(second, "boom again")
    assert main(["submit", "prompt_now", "toy_a", "--set", "scale=0.9", "--user", "mgr"]) == 0
    (launch,) = [x for x in loop.tick(now=utcnow()).launches if x.processing == "prompt_now"]
    assert launch.expert_config == {"scale": 0.9}
    resubmits = [
        (u, d["expert_config"]) for u, a, d in audit_actions(loop, "prompt_now", "toy_a") if a == "resubmit"
    ]
    assert resubmits == [("alice", {"scale": 1.05}), ("mgr", {"scale": 0.9})]


def test_a_sign_off_retried_after_a_lost_commit_is_recorded_once(loop, clock):
    """The sign-off step retries while the database restarts; a retry after a COMMIT whose answer was
    lost must not record the decision (or its audit entry) twice. A real second decision is recorded."""
    from b2cal_assets.caf.localdb import write_outputdb
    from b2cal_assets.db.repo import signoffs

    loop.tick(now=T0)
    clock.now = T0 + timedelta(hours=1)
    ticket = loop.begin_attempt("prompt_now", "toy_a", submitted_by="alice", expert_config={}, job_config={})
    outputdb = ticket.workdir / "job" / "outputdb"
    written = write_outputdb(outputdb, [], [("ToyA", loop.processing_iov("prompt_now"), {"mean": [9.0]})])
    loop.finish_attempt(ticket, outputdb, written, iterations=1)
    decide = {"decision": "accept", "by": "alice", "comment": "fine", "automatic": False}
    assert loop.sign_off("prompt_now", "toy_a", **decide) == "signed_off"
    assert loop.sign_off("prompt_now", "toy_a", **decide, retried=True) == "signed_off"
    with loop.session() as s:
        assert len(signoffs.list_signoffs(s, "prompt_now", "toy_a")) == 1
    assert [a for _u, a, _d in audit_actions(loop, "prompt_now", "toy_a")].count("signoff_accept") == 1
    loop.sign_off("prompt_now", "toy_a", **decide)  # not a retry: the expert decided again
    with loop.session() as s:
        assert len(signoffs.list_signoffs(s, "prompt_now", "toy_a")) == 2
