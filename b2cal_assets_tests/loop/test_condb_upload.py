"""A processing's signed-off payloads go into its staging global tag on the (test) conditions database.

Nothing in the upload path is mocked: the loop's upload talks HTTP to ``fixtures/condb.py``.
"""

import hashlib
from datetime import timedelta
from pathlib import Path

import pytest

from b2cal_assets.cli import main
from b2cal_assets.conditions.condb_client import ConditionsDbClient
from b2cal_assets.db.repo import calibrations, condb
from b2cal_assets.loop.service import AUTO_USER
from b2cal_assets_tests.loop.conftest import T0
from b2cal_assets_tests.loop.helpers import fake_run

TAG = "staging_prompt_now"


@pytest.fixture
def client(condb_server):
    with ConditionsDbClient(condb_server.url, token=condb_server.token, attempts=2, backoff_s=0.01) as c:
        yield c


def sign_off(loop, name, payload):
    loop.tick(now=T0)
    fake_run(loop, "prompt_now", name, {payload: {"value": [1.0]}})
    loop.sign_off("prompt_now", name, decision="accept", by=AUTO_USER, automatic=True)


def skip_cdst(loop):
    loop.tick(now=T0)
    with loop.session() as s:  # the cDST production is not what this test is about
        calibrations.update_calibration(s, "prompt_now", "cdst", state="signed_off")


def finish(loop):
    """Every calibration of ``prompt_now`` signed off: the tick finishes it and marks the upload due."""
    skip_cdst(loop)
    for name, payload in (("toy_a", "ToyA"), ("toy_b", "ToyB"), ("toy_c", "ToyC")):
        sign_off(loop, name, payload)
    report = loop.tick(now=T0 + timedelta(minutes=1))
    assert report.finished_processings == ["prompt_now"]


EXPECTED = [("ToyA", (1, 1, 1, 2)), ("ToyB", (1, 1, 1, 2)), ("ToyC", (1, 1, 1, 2))]


def content(condb_server):
    return [(name, iov) for name, _rev, _md5, iov in condb_server.tag_content(TAG)]


def test_a_finished_processing_lands_in_its_staging_tag_and_a_second_upload_changes_nothing(
    loop, client, condb_server
):
    finish(loop)
    assert loop.condb.due() == ["prompt_now"]
    (result,) = loop.upload_due_condb(client)
    assert result.ok, result.describe()
    assert condb_server.tags[TAG].state == "OPEN"  # created OPEN by the upload
    assert content(condb_server) == EXPECTED
    assert (result.sent_payloads, result.sent_iovs) == (3, 3)
    assert all(r.state == "done" and r.payload_id and r.iov_id for r in result.rows)
    assert loop.upload_due_condb(client) == []  # done: no longer due

    creations = len(condb_server.creations())
    again = loop.upload_condb("prompt_now", client, by="mgr")
    assert again.ok and (again.sent_payloads, again.sent_iovs) == (0, 0)
    assert len(condb_server.creations()) == creations and content(condb_server) == EXPECTED
    assert [(r.payload_id, r.iov_id) for r in again.rows] == [(r.payload_id, r.iov_id) for r in result.rows]


def test_payloads_the_server_already_has_are_not_uploaded_again(loop, client, condb_server, tmp_path):
    finish(loop)
    (toy_a,) = [p for p in loop.inputs.signed_off_payloads("prompt_now") if p.name == "ToyA"]
    client.create_payload("ToyA", toy_a.file, toy_a.checksum)  # e.g. from an earlier tag
    (result,) = loop.upload_due_condb(client)
    assert result.ok and (result.sent_payloads, result.sent_iovs) == (2, 3)
    assert content(condb_server) == EXPECTED


def test_an_upload_cut_half_way_resumes_without_sending_anything_twice(loop, client, condb_server):
    finish(loop)
    condb_server.interrupt_after(2)  # ToyA's payload is stored, ToyA's IoV too but its answer is lost
    (cut,) = loop.upload_due_condb(client)
    assert cut.outcome == "unavailable" and "retrying" in cut.error
    assert cut.due and cut.next_try_at is not None
    assert [r.state for r in cut.rows] == ["sending_iov", "pending", "pending"]  # recorded, not lost
    assert loop.upload_due_condb(client) == []  # the backoff: not before next_try_at

    condb_server.up()
    loop.clock = lambda: cut.next_try_at
    (resumed,) = loop.upload_due_condb(client)
    assert resumed.ok, resumed.describe()
    assert content(condb_server) == EXPECTED  # one IoV each, the cut one not added twice
    assert (resumed.sent_payloads, resumed.sent_iovs) == (2, 2)
    assert len(condb_server.payloads) == 3


def test_an_unreachable_server_does_not_stop_the_loop_and_the_status_says_so(
    loop, client, condb_server, condb_env, capsys
):
    condb_server.down("refuse")
    finish(loop)
    (result,) = loop.upload_due_condb(client)
    assert result.outcome == "unavailable" and "unreachable" in result.error
    loop.tick(now=T0 + timedelta(minutes=2))  # the loop goes on
    assert main(["status", "--no-runs"]) == 0
    out = capsys.readouterr().out
    assert "conditions database" in out and "unreachable" in out and "next try after" in out

    condb_server.up()
    loop.clock = lambda: result.next_try_at
    (again,) = loop.upload_due_condb(client)
    assert again.ok and content(condb_server) == EXPECTED


def test_a_payload_whose_file_changed_is_refused_by_checksum_and_recorded(loop, client, condb_server):
    finish(loop)
    (toy_b,) = [p for p in loop.inputs.signed_off_payloads("prompt_now") if p.name == "ToyB"]
    Path(toy_b.file).write_bytes(b"not what was signed off")
    (result,) = loop.upload_due_condb(client)
    assert result.outcome == "refused" and not result.due
    assert result.error == (
        "payload ToyB revision 1 IoV 1,1,1,2 refused by the conditions database: "
        "Bad Request: checksum mismatch for ToyB: the file's md5 is not " + toy_b.checksum
    )
    states = {r.name: r.state for r in result.rows}
    assert states == {"ToyA": "done", "ToyB": "refused", "ToyC": "done"}
    assert content(condb_server) == [EXPECTED[0], EXPECTED[2]]


def test_an_overlapping_iov_in_the_tag_is_refused_with_the_payload_named(loop, client, condb_server, tmp_path):
    finish(loop)
    tag = client.create_global_tag(TAG, "made by hand", "someone")
    other = tmp_path / "other.root"
    other.write_bytes(b"another ToyC")
    placed = client.create_payload("ToyC", other, hashlib.md5(other.read_bytes()).hexdigest())
    client.create_iov(tag.id, placed.id, (1, 2, 1, 2))
    (result,) = loop.upload_due_condb(client)
    assert result.outcome == "refused"
    assert result.error.startswith("payload ToyC revision 1 IoV 1,1,1,2 refused by the conditions database: ")
    assert "overlaps 1,2,1,2" in result.error


def test_a_tag_that_is_not_open_is_never_written(loop, client, condb_server):
    finish(loop)
    client.create_global_tag(TAG, "", "someone")
    for state in ("TESTING", "VALIDATED", "PUBLISHED"):
        client.set_global_tag_state(TAG, state)
    (result,) = loop.upload_due_condb(client)
    assert result.outcome == "refused" and result.tag_state == "PUBLISHED"
    assert result.error == (
        f"staging tag {TAG} is PUBLISHED in the conditions database: b2cal writes only OPEN tags, "
        "nothing was uploaded"
    )
    assert condb_server.creations() == [] and condb_server.tag_content(TAG) == []


def test_a_tag_with_a_gap_is_not_uploaded(loop, client, condb_server):
    skip_cdst(loop)
    loop.tick(now=T0)
    fake_run(loop, "prompt_now", "toy_a", {"ToyA": {"value": [1.0]}}, iov=(1, 2, 1, 2))
    loop.sign_off("prompt_now", "toy_a", decision="accept", by=AUTO_USER, automatic=True)
    for name, payload in (("toy_b", "ToyB"), ("toy_c", "ToyC")):
        sign_off(loop, name, payload)
    loop.tick(now=T0 + timedelta(minutes=1))
    (result,) = loop.upload_due_condb(client)
    assert result.outcome == "problems"
    assert any("ToyA: gap from the processing's start 1,1" in p for p in result.problems)
    assert condb_server.tags == {}  # nothing sent


def test_at_signoff_each_calibration_goes_up_when_it_is_signed_off(loop, client, condb_server, monkeypatch):
    monkeypatch.setenv("B2CAL_CONDB_UPLOAD_AT", "signoff")
    skip_cdst(loop)
    sign_off(loop, "toy_a", "ToyA")
    (first,) = loop.upload_due_condb(client)
    assert first.ok and content(condb_server) == [EXPECTED[0]]
    sign_off(loop, "toy_b", "ToyB")
    (second,) = loop.upload_due_condb(client)
    assert second.ok and (second.sent_payloads, second.sent_iovs) == (1, 1)
    assert content(condb_server) == EXPECTED[:2]


def test_the_cli_uploads_and_shows_what_was_uploaded(loop, condb_server, condb_env, capsys):
    finish(loop)
    assert main(["payloads", "staging", "prompt_now", "--upload"]) == 0
    out = capsys.readouterr().out
    assert f"staging tag {TAG}: 3 payload IoV(s) in the conditions database" in out
    for name in ("ToyA", "ToyB", "ToyC"):
        assert name in out
    assert "condb payload" in out
    assert main(["payloads", "staging", "prompt_now"]) == 0
    assert "ready for merging" in capsys.readouterr().out


def test_the_cli_without_a_conditions_database_says_how_to_set_one(loop, capsys, monkeypatch):
    monkeypatch.delenv("B2CAL_CONDB_URL", raising=False)
    finish(loop)
    assert main(["payloads", "staging", "prompt_now", "--upload"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith("no conditions database configured: set B2CAL_CONDB_URL (and B2CAL_CONDB_TOKEN)")
    assert len(err.splitlines()) == 1


def test_the_tag_is_named_by_the_configured_pattern(loop, client, condb_server, monkeypatch):
    monkeypatch.setenv("B2CAL_CONDB_TAG_PATTERN", "prompt_{processing}_v1")
    finish(loop)
    (result,) = loop.upload_due_condb(client)
    assert result.ok and result.tag == "prompt_prompt_now_v1"
    assert len(condb_server.tag_content("prompt_prompt_now_v1")) == 3


def test_a_pattern_without_the_processing_is_one_clear_error(loop, condb_env, monkeypatch, capsys):
    monkeypatch.setenv("B2CAL_CONDB_TAG_PATTERN", "staging")
    assert main(["payloads", "staging", "prompt_now", "--upload"]) == 2
    err = capsys.readouterr().err.strip()
    assert "B2CAL_CONDB_TAG_PATTERN='staging'" in err and len(err.splitlines()) == 1
    assert condb_env.tags == {}


def test_a_wrong_token_is_a_clear_refusal_not_a_crash(loop, condb_server):
    finish(loop)
    with ConditionsDbClient(condb_server.url, token="not-the-token", attempts=1) as wrong:
        (result,) = loop.upload_due_condb(wrong)
    assert result.outcome == "refused" and not result.due
    assert result.error == (
        f"staging tag {TAG}: the conditions database refused the upload: "
        "Unauthorized: missing or wrong token"
    )
    assert condb_server.tags == {}


def test_only_a_manager_uploads_from_the_command_line(loop, condb_env, monkeypatch, capsys):
    monkeypatch.setenv("B2CAL_MANAGERS", "somebody_else")
    finish(loop)
    assert main(["payloads", "staging", "prompt_now", "--upload"]) == 2
    err = capsys.readouterr().err
    assert "uploading a staging tag to the conditions database is for calibration managers" in err
    assert condb_env.tags == {}


def test_a_payload_stored_but_unanswered_is_found_again_not_sent_twice(loop, client, condb_server):
    finish(loop)
    condb_server.interrupt_after(1)  # ToyA's payload is stored; its answer never arrives
    (cut,) = loop.upload_due_condb(client)
    assert cut.outcome == "unavailable"
    assert [r.state for r in cut.rows] == ["sending_payload", "pending", "pending"]
    condb_server.up()
    resumed = loop.upload_condb("prompt_now", client, by="mgr")
    assert resumed.ok and (resumed.sent_payloads, resumed.sent_iovs) == (2, 3)
    assert [p.name for p in condb_server.payloads.values()].count("ToyA") == 1
    assert content(condb_server) == EXPECTED


def test_once_the_server_is_found_down_the_other_due_uploads_wait_without_trying(loop, client, condb_server):
    finish(loop)
    with loop.session() as s:
        condb.mark_condb_due(s, "prompt_hold", "staging_prompt_hold")
    condb_server.down("503")
    first, second = loop.upload_due_condb(client)
    assert (first.processing, second.processing) == ("prompt_now", "prompt_hold")
    assert first.outcome == second.outcome == "unavailable" and second.error == first.error
    assert second.next_try_at is not None
    assert len(condb_server.requests) == 2  # the first upload's retries; none for the second
