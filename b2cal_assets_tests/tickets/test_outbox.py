"""The ticket outbox against a fake Jira that speaks the REST protocol (no Jira server can run here).

What is asserted is what reached "Jira": issue fields, comment bodies, attachment names and bytes.
"""

from datetime import datetime

import pytest
from sqlalchemy import select, update

from b2cal_assets.db.models import TicketMessage
from b2cal_assets.db.repo.calibrations import update_calibration
from b2cal_assets.tickets.client import TicketServiceUnavailable
from b2cal_assets.tickets.jira_client import JiraTicketClient
from b2cal_assets.tickets.messages import (
    CheckVerdict,
    Created,
    Failed,
    Finished,
    Reassigned,
    Submitted,
    ticket_label,
)
from b2cal_assets.tickets.outbox import TicketOutbox
from b2cal_assets_tests.tickets.conftest import DEADLINE, PROCESSING

CREATED = Created(PROCESSING, "beamspot", expert="alice", deadline=DEADLINE)
SUBMITTED = Submitted(
    PROCESSING, "beamspot", attempt=1, submitted_by="alice", expert_config={"min_events": 5000}
)
FAILED = Failed(
    PROCESSING, "beamspot", 1, "collector_2", "ERROR: no tracks\nexit 3", "/b2cal/work/beamspot/1"
)


def client_for(fake, **kwargs):
    return JiraTicketClient(fake.url, fake.user, fake.token, fake.project, max_retries=0, **kwargs)


def comments(fake, key):
    return [c["body"] for c in fake.issues[key].comments]


def stored(sessions):
    with sessions() as s:
        return list(s.scalars(select(TicketMessage).order_by(TicketMessage.id)))


def test_issue_created_once_with_summary_assignee_due_date(sessions, fake_jira):
    outbox = TicketOutbox(sessions, client_for(fake_jira))
    assert outbox.post(CREATED)
    report = outbox.flush()
    assert (report.sent, report.pending, report.errors) == (1, 0, [])
    [issue] = fake_jira.created_issues()
    assert issue.fields["summary"] == f"[{PROCESSING}] beamspot"
    assert issue.fields["project"] == {"key": "CAL"}
    assert issue.fields["assignee"]["name"] == "alice"
    assert issue.fields["duedate"] == "2024-05-03"
    assert issue.fields["labels"] == [ticket_label(PROCESSING, "beamspot")]
    assert "2024-05-03 12:00 UTC" in issue.fields["description"]
    assert comments(fake_jira, issue.key) == []  # the created message is the description
    [message] = stored(sessions)
    assert message.ticket_key == issue.key and message.sent_at is not None


def test_events_become_comments_and_plots_attachments_in_order(sessions, fake_jira, tmp_path):
    plot = tmp_path / "beamspot_residuals.png"
    plot.write_bytes(b"\x89PNG fake plot")
    outbox = TicketOutbox(sessions, client_for(fake_jira))
    for event in (
        CREATED,
        SUBMITTED,
        FAILED,
        Finished(
            PROCESSING, "beamspot", 2, passed=True, checks=(CheckVerdict("validity", True),), plots=(plot,)
        ),
    ):
        outbox.post(event)
    assert outbox.flush().sent == 4
    [issue] = fake_jira.created_issues()
    bodies = comments(fake_jira, issue.key)
    assert len(bodies) == 3
    assert "submitted by alice" in bodies[0] and '"min_events": 5000' in bodies[0]
    assert (
        "collector_2" in bodies[1]
        and "ERROR: no tracks" in bodies[1]
        and "/b2cal/processing/prompt_2024a/beamspot" in bodies[1]  # the logs' page, not a server path
        and "/b2cal/work/beamspot/1" not in bodies[1]
    )
    assert "Validation passed" in bodies[2] and "beamspot_residuals.png" in bodies[2]
    [attachment] = issue.attachments
    assert attachment["filename"] == "beamspot_residuals.png"
    assert attachment["content_bytes"] == b"\x89PNG fake plot"


def test_reposting_and_reflushing_sends_nothing_twice(sessions, fake_jira):
    outbox = TicketOutbox(sessions, client_for(fake_jira))
    for event in (CREATED, SUBMITTED, FAILED):
        outbox.post(event)
    outbox.flush()
    # a sensor re-tick, a retried step and a restarted daemon all post the same events again
    restarted = TicketOutbox(sessions, client_for(fake_jira))
    for event in (CREATED, SUBMITTED, FAILED, CREATED):
        assert restarted.post(event) is False
    assert restarted.flush().sent == 0
    assert len(fake_jira.issues) == 1
    assert len(comments(fake_jira, "CAL-1")) == 2
    assert len(stored(sessions)) == 3


def test_each_calibration_gets_its_own_ticket(sessions, fake_jira):
    outbox = TicketOutbox(sessions, client_for(fake_jira))
    outbox.post(CREATED)
    outbox.post(Created(PROCESSING, "ecl_energy", expert="carol", deadline=None))
    outbox.post(Submitted(PROCESSING, "ecl_energy", attempt=1, submitted_by="auto"))
    outbox.flush()
    by_summary = {i.fields["summary"]: i for i in fake_jira.created_issues()}
    ecl = by_summary[f"[{PROCESSING}] ecl_energy"]
    assert ecl.fields["assignee"]["name"] == "carol" and "duedate" not in ecl.fields
    assert len(comments(fake_jira, ecl.key)) == 1
    assert comments(fake_jira, by_summary[f"[{PROCESSING}] beamspot"].key) == []


def test_lost_local_ticket_key_finds_the_existing_issue(sessions, fake_jira):
    outbox = TicketOutbox(sessions, client_for(fake_jira))
    outbox.post(CREATED)
    outbox.flush()
    with sessions() as s:  # e.g. the DB restored from a backup taken before the ticket was made
        s.execute(update(TicketMessage).values(ticket_key=""))
        s.commit()
    outbox.post(SUBMITTED)
    outbox.flush()
    assert len(fake_jira.issues) == 1
    assert len(comments(fake_jira, "CAL-1")) == 1
    assert {m.ticket_key for m in stored(sessions)} == {"CAL-1"}


def test_issue_created_but_reply_lost_is_not_created_again(sessions, fake_jira):
    class ReplyLost(JiraTicketClient):
        def create_issue(self, **kwargs):
            super().create_issue(**kwargs)
            raise TicketServiceUnavailable("connection reset while reading the reply")

    TicketOutbox(
        sessions, ReplyLost(fake_jira.url, fake_jira.user, fake_jira.token, "CAL", max_retries=0)
    ).post(CREATED)
    report = TicketOutbox(
        sessions, ReplyLost(fake_jira.url, fake_jira.user, fake_jira.token, "CAL", max_retries=0)
    ).flush()
    assert report.jira_down and report.sent == 0
    assert TicketOutbox(sessions, client_for(fake_jira)).flush().sent == 1
    assert len(fake_jira.issues) == 1


def test_comment_sent_but_reply_lost_is_not_sent_again(sessions, fake_jira):
    class ReplyLost(JiraTicketClient):
        def add_comment(self, key, body):
            super().add_comment(key, body)
            raise TicketServiceUnavailable("timeout reading the reply")

    outbox = TicketOutbox(sessions, client_for(fake_jira))
    outbox.post(CREATED)
    outbox.flush()
    outbox.post(SUBMITTED)
    flaky = TicketOutbox(
        sessions, ReplyLost(fake_jira.url, fake_jira.user, fake_jira.token, "CAL", max_retries=0)
    )
    assert flaky.flush().jira_down
    assert outbox.flush().sent == 1
    assert len(comments(fake_jira, "CAL-1")) == 1


@pytest.mark.parametrize("how", ["refuse", "503"])
def test_jira_down_keeps_messages_then_sends_them_in_order_when_back(sessions, fake_jira, how):
    fake_jira.down(how)
    outbox = TicketOutbox(sessions, client_for(fake_jira))  # made while Jira is down
    for event in (CREATED, SUBMITTED, FAILED):
        outbox.post(event)
    report = outbox.flush()  # never raises to the loop
    assert report.jira_down and report.sent == 0 and report.pending == 3
    first = stored(sessions)[0]
    assert first.sent_at is None
    assert ("503" in first.last_error) if how == "503" else ("unreachable" in first.last_error)
    assert outbox.flush().jira_down  # still down: still waiting, still no exception
    fake_jira.up()
    report = outbox.flush()
    assert (report.sent, report.pending, report.jira_down) == (3, 0, False)
    [issue] = fake_jira.created_issues()
    bodies = comments(fake_jira, issue.key)
    assert len(bodies) == 2 and "submitted" in bodies[0] and "failed" in bodies[1]
    assert all(m.sent_at is not None and m.last_error == "" for m in stored(sessions))


def test_a_refused_ticket_waits_without_blocking_the_others(sessions, fake_jira):
    with sessions() as s:
        update_calibration(s, PROCESSING, "beamspot", expert_username="nobody_in_jira")
        s.commit()
    outbox = TicketOutbox(sessions, client_for(fake_jira))
    outbox.post(CREATED)
    outbox.post(SUBMITTED)
    outbox.post(Created(PROCESSING, "ecl_energy", expert="carol", deadline=None))
    report = outbox.flush()
    assert report.sent == 1 and report.pending == 2 and not report.jira_down
    assert "nobody_in_jira" in report.errors[0]
    [issue] = fake_jira.created_issues()
    assert issue.fields["summary"].endswith("ecl_energy")
    waiting = [m for m in stored(sessions) if m.sent_at is None]
    assert [m.kind for m in waiting] == ["created", "submitted"]
    assert "nobody_in_jira" in waiting[0].last_error and waiting[1].last_error == ""
    with sessions() as s:  # the manager fixes the expert: the next flush catches up
        update_calibration(s, PROCESSING, "beamspot", expert_username="alice")
        s.commit()
    assert outbox.flush().sent == 2
    assert len(fake_jira.issues) == 2


def test_reassignment_moves_the_issue_to_the_new_expert(sessions, fake_jira):
    outbox = TicketOutbox(sessions, client_for(fake_jira))
    outbox.post(CREATED)
    outbox.flush()
    with sessions() as s:
        update_calibration(s, PROCESSING, "beamspot", expert_username="bob")
        s.commit()
    outbox.post(Reassigned(PROCESSING, "beamspot", old_expert="alice", new_expert="bob", by="manager"))
    outbox.flush()
    issue = fake_jira.issues["CAL-1"]
    assert issue.fields["assignee"]["name"] == "bob"
    assert fake_jira.requests_to("PUT", r".*/issue/CAL-1/assignee")[-1].json() == {"name": "bob"}
    assert "reassigned from [~alice] to [~bob]" in comments(fake_jira, "CAL-1")[0]


def test_a_plot_deleted_before_sending_is_reported_not_fatal(sessions, fake_jira, tmp_path):
    plot = tmp_path / "gone.png"
    outbox = TicketOutbox(sessions, client_for(fake_jira))
    outbox.post(Finished(PROCESSING, "beamspot", 1, passed=True, plots=(plot,)))
    assert outbox.flush().sent == 1
    [body] = comments(fake_jira, "CAL-1")
    assert "gone.png could not be attached" in body
    assert fake_jira.issues["CAL-1"].attachments == []


def test_without_jira_messages_are_kept(sessions):
    outbox = TicketOutbox(sessions, None)
    outbox.post(CREATED)
    outbox.post(SUBMITTED)
    report = outbox.flush()
    assert (report.sent, report.pending) == (0, 2)
    assert [m.kind for m in stored(sessions)] == ["created", "submitted"]
    assert all(m.sent_at is None for m in stored(sessions))


def test_wrong_credentials_keep_messages_waiting_with_the_reason(sessions, fake_jira):
    bad = JiraTicketClient(fake_jira.url, fake_jira.user, "wrong-token", "CAL", max_retries=0)
    outbox = TicketOutbox(sessions, bad)
    outbox.post(CREATED)
    report = outbox.flush()
    assert report.sent == 0 and "401" in report.errors[0]
    assert fake_jira.issues == {}
    assert "wrong-token" not in repr(bad)


def test_posting_for_an_unknown_processing_names_it(sessions):
    from b2cal_assets.db.errors import NotFound

    with pytest.raises(NotFound, match="no_such_processing"):
        TicketOutbox(sessions, None).post(
            Created("no_such_processing", "beamspot", "alice", datetime(2024, 1, 1))
        )


def test_attachment_sent_but_reply_lost_is_not_attached_again(sessions, fake_jira, tmp_path):
    class ReplyLost(JiraTicketClient):
        def add_attachment(self, key, path, name):
            super().add_attachment(key, path, name)
            raise TicketServiceUnavailable("timeout reading the reply")

    plot = tmp_path / "residuals.png"
    plot.write_bytes(b"\x89PNG residuals")
    TicketOutbox(sessions, None).post(Finished(PROCESSING, "beamspot", 1, passed=True, plots=(plot,)))
    flaky = TicketOutbox(
        sessions, ReplyLost(fake_jira.url, fake_jira.user, fake_jira.token, "CAL", max_retries=0)
    )
    assert flaky.flush().jira_down
    assert TicketOutbox(sessions, client_for(fake_jira)).flush().sent == 1
    issue = fake_jira.issues["CAL-1"]
    assert [a["filename"] for a in issue.attachments] == ["residuals.png"]
    assert len(issue.comments) == 1
