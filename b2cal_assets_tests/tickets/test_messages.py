"""Each event renders the message an expert needs, under a key that is the same every time it is posted."""

from datetime import datetime

from b2cal_assets.tickets.messages import (
    CheckVerdict,
    Created,
    Failed,
    Finished,
    Reassigned,
    Rejected,
    SignedOff,
    Submitted,
    WindowOpen,
    render,
    ticket_label,
)

P, C = "prompt_2024a", "beamspot"


def test_created_names_expert_and_deadline():
    msg = render(Created(P, C, expert="alice", deadline=datetime(2024, 5, 3, 12, 0), window_hours=48))
    assert msg.kind == "created"
    assert "[~alice]" in msg.body
    assert "2024-05-03 12:00 UTC" in msg.body
    assert msg.dedup_key == f"{P}/{C}/created"


def test_window_open_gives_the_deadline():
    msg = render(WindowOpen(P, C, deadline=datetime(2024, 5, 3, 12, 0)))
    assert "before 2024-05-03 12:00 UTC" in msg.body


def test_submitted_says_who_and_which_settings():
    by_expert = render(Submitted(P, C, attempt=2, submitted_by="alice", expert_config={"min_events": 5000}))
    assert "by alice" in by_expert.body
    assert '"min_events": 5000' in by_expert.body
    assert "Job settings: defaults" in by_expert.body
    auto = render(Submitted(P, C, attempt=1, submitted_by="auto"))
    assert "automatically with the default settings" in auto.body
    assert "Expert settings: defaults" in auto.body


def test_failed_shows_subjob_log_tail_and_where_the_logs_are():
    log = "\n".join(f"line {i}" for i in range(200))
    msg = render(
        Failed(P, C, attempt=1, subjob="collector_3", log_tail=log, log_location="/b2cal/work/x/logs")
    )
    assert "collector_3" in msg.body
    assert "line 199" in msg.body
    assert "line 100" not in msg.body  # only the tail goes into the comment
    # where the logs are, as a page of the web UI, not a server path
    assert "/b2cal/processing/" in msg.body and "/b2cal/work/x/logs" not in msg.body


def test_finished_gives_verdict_checks_and_plots_as_attachments(tmp_path):
    plot = tmp_path / "beamspot_x.png"
    msg = render(
        Finished(
            P,
            C,
            attempt=1,
            passed=False,
            checks=(CheckVerdict("validity", True), CheckVerdict("residuals", False, "mean 3.2 sigma off")),
            plots=(plot,),
        )
    )
    assert "Validation FAILED" in msg.body
    assert "(x) residuals: mean 3.2 sigma off" in msg.body
    assert "(/) validity" in msg.body
    assert msg.attachments == ({"path": str(plot), "name": "beamspot_x.png"},)


def test_signoff_reject_and_reassign_messages():
    assert "automatically" in render(SignedOff(P, C, attempt=1, by="auto", automatic=True)).body
    rejected = render(Rejected(P, C, attempt=1, by="alice", comment="drift in run 12"))
    assert "rejected by alice" in rejected.body and "drift in run 12" in rejected.body
    moved = render(Reassigned(P, C, old_expert="alice", new_expert="bob", by="manager"))
    assert "[~alice] to [~bob] by manager" in moved.body


def test_dedup_keys_are_stable_and_distinguish_attempts_and_occurrences():
    def key(e):
        return render(e).dedup_key

    assert key(Submitted(P, C, 1, "alice")) == key(Submitted(P, C, 1, "alice", expert_config={"a": 1}))
    assert key(Submitted(P, C, 1, "alice")) != key(Submitted(P, C, 2, "alice"))
    assert key(Failed(P, C, 1, "c", "", "")) != key(Failed(P, "other", 1, "c", "", ""))
    assert key(Reassigned(P, C, "a", "b", "m", occurrence=1)) != key(
        Reassigned(P, C, "b", "a", "m", occurrence=2)
    )
    assert key(SignedOff(P, C, 1, "x")) != key(Rejected(P, C, 1, "x"))


def test_label_has_no_blanks_and_differs_per_calibration():
    assert " " not in ticket_label("prompt 2024", "beam spot")
    assert ticket_label(P, "a") != ticket_label(P, "b")
