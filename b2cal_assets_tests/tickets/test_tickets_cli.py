"""``b2cal tickets`` shows the messages kept in the DB (the only place they are without Jira)."""

import json

from b2cal_assets.cli import main
from b2cal_assets.tickets.messages import Created, Failed, Submitted
from b2cal_assets.tickets.outbox import TicketOutbox
from b2cal_assets_tests.tickets.conftest import DEADLINE, PROCESSING


def post_some(sessions):
    outbox = TicketOutbox(sessions, None)
    outbox.post(Created(PROCESSING, "beamspot", expert="alice", deadline=DEADLINE))
    outbox.post(Submitted(PROCESSING, "beamspot", attempt=1, submitted_by="auto"))
    outbox.post(Failed(PROCESSING, "ecl_energy", 1, "collector_0", "Traceback: boom", "/work/ecl/1"))


def test_text_listing_shows_every_message_and_its_state(sessions, capsys):
    post_some(sessions)
    assert main(["tickets"]) == 0
    out = capsys.readouterr().out
    assert f"[{PROCESSING}] beamspot  created" in out
    assert "2024-05-03 12:00 UTC" in out
    assert "automatically with the default settings" in out
    assert "Traceback: boom" in out and "/b2cal/processing/prompt_2024a/ecl_energy" in out and "/work/ecl/1" not in out
    assert out.count("(not sent)") == 3


def test_filters_and_json(sessions, capsys):
    post_some(sessions)
    assert main(["tickets", "--processing", PROCESSING, "--calibration", "ecl_energy", "--json"]) == 0
    [row] = json.loads(capsys.readouterr().out)
    assert row["kind"] == "failed" and row["calibration"] == "ecl_energy"
    assert row["sent_at"] is None and row["ticket"] is None
    assert "collector_0" in row["body"]


def test_nothing_to_show_says_so(sessions, capsys):
    assert main(["tickets", "--calibration", "beamspot"]) == 0
    assert "no ticket messages for calibration beamspot" in capsys.readouterr().out


def test_without_a_database_the_error_says_what_to_do(b2cal_home, capsys):
    assert main(["tickets"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("b2cal: error:") and "Traceback" not in err
