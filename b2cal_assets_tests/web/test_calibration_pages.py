"""The calibration pages beside the Dagster UI, against the real slapd login and a toy processing:
what each role sees, what each may do (checked on the server), and that refusals are readable pages."""

from __future__ import annotations

import html as html_text
import io
import re
import tarfile

import pytest

from b2cal_assets import home
from b2cal_assets.db.repo import attempts
from b2cal_assets.web.calibration_html import EXCLUDED_NOTE
from b2cal_assets_tests.loop.helpers import audit_actions, snapshot_db, snapshot_files
from b2cal_assets_tests.web.conftest import auth_config, csrf_token, make_pages_app

pytestmark = pytest.mark.ldap

ACTIONS = ("submit", "signoff", "upload", "exclude", "include", "reassign", "restart")


@pytest.fixture
def web_app(web_workspace, ldap_server, audit_log, toy_service):
    """The served app (overrides conftest's) with the calibration pages on the toy loop; the service
    account looks users up (this slapd, like many, hides people from anonymous reads)."""
    config = auth_config(
        ldap_server, bind_dn=ldap_server.service_dn, bind_password=ldap_server.service_password
    )
    return make_pages_app(web_workspace, config, audit_log, toy_service)


def page_path(processing: str, calibration: str, action: str = "") -> str:
    return f"/b2cal/processing/{processing}/{calibration}" + (f"/{action}" if action else "")


def post(client, processing: str, calibration: str, action: str, data: dict | None = None, files=None):
    """Post a form the way the browser does: with the CSRF token of the calibration page."""
    token = csrf_token(client.get(page_path(processing, calibration)).text)
    response = client.post(
        page_path(processing, calibration, action), data={"csrf_token": token, **(data or {})}, files=files
    )
    if response.status_code == 303:  # done: post, redirect, get; the page says what happened, once
        assert response.headers["location"] == page_path(processing, calibration)
        return client.get(response.headers["location"])
    return response


def error_of(html: str) -> str:
    found = re.search(r"<p class=error role=alert id=b2cal-error>(.*?)</p>", html, re.S)
    return found.group(1) if found else ""


def notice_of(html: str) -> str:
    found = re.search(r"<p class=notice role=status id=b2cal-notice>(.*?)</p>", html, re.S)
    return found.group(1) if found else ""


def forms_in(html: str) -> set[str]:
    return set(re.findall(r"id=form-([a-z]+)", html))


def test_status_page_lists_every_processing_and_calibration(login_as):
    victor = login_as("victor")
    page = victor.get("/b2cal/status")
    assert page.status_code == 200
    html = page.text
    for processing in ("p1", "p2"):
        assert f"<h2>Processing {processing}</h2>" in html
        for calibration in ("toy_a", "toy_b", "toy_c"):
            assert f'href="/b2cal/processing/{processing}/{calibration}"' in html
    assert 'href="/assets/payloads/toy_a"' in html
    p2 = html.split('<table id="status-p2">')[1]
    toy_a_row = next(r for r in p2.split("<tr>") if "/p2/toy_a" in r)
    assert "finished" in toy_a_row and "#1 finished" in toy_a_row and "alice" in toy_a_row
    assert '<form method=post action="/b2cal' not in html  # the status page changes nothing
    assert victor.get("/b2cal").headers["location"] == "/b2cal/work"  # a viewer has no work: it is empty


def test_pages_need_a_login(client):
    assert client.get("/b2cal/status").status_code == 401
    assert client.get(page_path("p2", "toy_a", "payloads.tar.gz")).status_code == 401
    assert client.post(page_path("p1", "toy_a", "submit"), data={}).status_code == 401


def test_user_strip_on_the_dagster_page_links_to_the_status(login_as):
    html = login_as("victor").get("/", headers={"accept": "text/html"}).text
    assert 'id="b2cal-calibrations-link" href="/b2cal/status"' in html


def test_each_role_sees_only_the_forms_it_may_use_in_the_state_it_is_in(login_as):
    assert forms_in(login_as("victor").get(page_path("p1", "toy_a")).text) == set()
    assert forms_in(login_as("bob").get(page_path("p1", "toy_a")).text) == set()
    # p1 toy_a: its window is open and nothing ran: submit, nothing to sign off, upload or restart yet
    assert forms_in(login_as("alice").get(page_path("p1", "toy_a")).text) == {"submit"}
    assert forms_in(login_as("mary").get(page_path("p1", "toy_a")).text) == {"submit", "exclude", "reassign"}
    # p2 toy_a finished: sign off (or upload a replacement), no Submit; a manager may restart it
    assert forms_in(login_as("alice").get(page_path("p2", "toy_a")).text) == {"signoff", "upload"}
    assert forms_in(login_as("mary").get(page_path("p2", "toy_a")).text) == {
        "signoff",
        "upload",
        "exclude",
        "reassign",
        "restart",
    }
    # p1 toy_b waits for its inputs: nothing for the expert, a manager may still exclude or reassign
    assert forms_in(login_as("mary").get(page_path("p1", "toy_b")).text) == {"exclude", "reassign"}


def settings_form(**fields: str) -> dict[str, str]:
    """The generated settings form as the browser sends it (an unchecked box is not sent)."""
    return {"settings_form": "1", **{f"cfg.{k}": v for k, v in fields.items()}}


def input_value(html: str, name: str) -> str:
    found = re.search(rf'<input type=(?:number|text)[^>]* name="{re.escape(name)}" value="([^"]*)"', html)
    assert found, f"no input {name}"
    return html_text.unescape(found.group(1))


def test_expert_submits_own_calibration_with_changed_settings(login_as, toy_service):
    alice = login_as("alice")
    html = alice.get(page_path("p1", "toy_a")).text
    # a field per key of the script's defaults, typed by the default: a number and a checkbox
    assert input_value(html, "cfg.scale") == "1.0" and 'type=number step=any id="cfg.scale"' in html
    assert re.search(r'<input type=checkbox id="cfg.fail" name="cfg.fail" value=true>', html)

    response = post(
        alice, "p1", "toy_a", "submit", {**settings_form(scale="2.0"), "max_collector_jobs": "1"}
    )
    assert response.status_code == 200, error_of(response.text)
    assert "attempt 1 submitted" in notice_of(response.text)
    with toy_service.session() as s:
        held = attempts.latest_attempt(s, "p1", "toy_a")
        assert (held.state, held.submitted_by) == ("held", "alice")
        assert held.expert_config == {"scale": 2.0}  # what the expert changed
        assert held.job_config == {"max_collector_jobs": 1}
    user, action, details = audit_actions(toy_service, "p1", "toy_a")[-1]
    # the site starts jobs at once: the attempt is queued for the next tick, and never called held
    assert (user, action) == ("alice", "submit_queued")
    assert details["expert_config"]["scale"] == 2.0
    attempts_table = re.search(r'<table id="attempts">.*?</table>', response.text, re.S).group(0)
    assert "<td>queued</td>" in attempts_table
    assert "<code>scale</code>: <del>1.0</del> → <ins>2.0</ins>" in attempts_table  # the diff to the defaults
    assert "held" not in response.text.replace("hold", "")
    assert input_value(response.text, "cfg.scale") == "2.0"  # the form starts from the last settings
    assert "attempt 1 submitted" not in notice_of(alice.get(page_path("p1", "toy_a")).text)  # said once


def test_bad_settings_are_shown_next_to_their_field_and_kept(login_as, toy_service):
    alice = login_as("alice")
    before = snapshot_db(toy_service)
    response = post(alice, "p1", "toy_a", "submit", settings_form(scale="2.0x", fail="true"))
    assert response.status_code == 400
    field_error = re.search(r'<span class=field-error id="error-scale" role=alert>(.*?)</span>', response.text)
    assert field_error and "must be a number, such as 1.0, not &#39;2.0x&#39;" in field_error.group(1)
    assert input_value(response.text, "cfg.scale") == "2.0x"  # what was typed stays in the field
    assert re.search(r'name="cfg.fail" value=true checked>', response.text)
    response = post(alice, "p1", "toy_a", "submit", {**settings_form(scale="1"), "cfg.scael": "2"})
    assert response.status_code == 400 and "not settings of this script: scael" in response.text
    # a client posting the settings as JSON gets the same checks
    response = post(alice, "p1", "toy_a", "submit", {"expert_config": '{"scale": 2.0,'})
    assert response.status_code == 400
    assert "expert_config is not valid JSON" in error_of(response.text)
    response = post(alice, "p1", "toy_a", "submit", {"expert_config": '{"scael": 2.0}'})
    assert response.status_code == 400
    assert "scael" in error_of(response.text)
    response = post(alice, "p1", "toy_a", "submit", {"expert_config": "{}", "max_collector_jobs": "many"})
    assert "max_collector_jobs must be a whole number" in error_of(response.text)
    assert snapshot_db(toy_service) == before


def test_expert_is_refused_another_experts_calibration(login_as, toy_service):
    bob = login_as("bob")
    before = snapshot_db(toy_service)
    for action in ("submit", "signoff", "upload"):
        response = post(bob, "p1", "toy_a", action, {"expert_config": "{}", "decision": "accept"})
        assert response.status_code == 403, action
        message = error_of(response.text)
        assert "assigned to alice, not to bob" in message and "toy_a" in message
    response = post(bob, "p1", "toy_a", "exclude")
    assert response.status_code == 403
    assert "for calibration managers; bob is expert" in error_of(response.text)
    assert snapshot_db(toy_service) == before


def test_viewer_is_refused_every_post(login_as, toy_service):
    victor = login_as("victor")
    before_db, before_files = snapshot_db(toy_service), snapshot_files(home.b2cal_home())
    token = csrf_token(victor.get(page_path("p2", "toy_a")).text)
    for action in ACTIONS:
        response = victor.post(
            page_path("p2", "toy_a", action),
            data={"csrf_token": token, "expert_config": "{}", "decision": "reject", "expert": "victor"},
            files={"archive": ("x.tar.gz", b"not an archive")} if action == "upload" else None,
        )
        assert response.status_code == 403, action
        assert error_of(response.text).startswith("Not allowed:"), action
        assert "viewers cannot" in error_of(response.text) or "victor is viewer" in error_of(response.text)
    assert snapshot_db(toy_service) == before_db
    assert snapshot_files(home.b2cal_home()) == before_files


def test_a_form_without_its_csrf_token_is_refused(login_as, toy_service):
    alice = login_as("alice")
    before = snapshot_db(toy_service)
    response = alice.post(page_path("p1", "toy_a", "submit"), data={"expert_config": "{}"})
    assert response.status_code == 400
    assert "The form expired" in error_of(response.text)
    forged = alice.post(page_path("p1", "toy_a", "submit"), data={"expert_config": "{}", "csrf_token": "x"})
    assert forged.status_code == 400
    assert snapshot_db(toy_service) == before


def test_manager_excludes_reassigns_and_restarts(login_as, toy_service):
    mary = login_as("mary")
    response = post(mary, "p1", "toy_b", "exclude", {"reason": "<b>no beam</b>"})
    assert response.status_code == 200, error_of(response.text)
    assert "dependents use the global-tag payloads" in notice_of(response.text)
    assert "&lt;b&gt;no beam&lt;/b&gt;" in response.text and "<b>no beam</b>" not in response.text
    assert set(forms_in(response.text)) >= {"include"}
    status = mary.get("/b2cal/status").text.split("<h2>Processing p2</h2>")[0].split('<table id="status-p1">')[1]
    toy_b_row = next(r for r in status.split("<tr>") if "/p1/toy_b" in r)
    assert EXCLUDED_NOTE in toy_b_row
    # the same refusal the CLI gives, shown on the page
    again = post(mary, "p1", "toy_b", "exclude")
    assert again.status_code == 400 and "already excluded" in error_of(again.text)

    response = post(mary, "p2", "toy_a", "restart")
    assert response.status_code == 200, error_of(response.text)
    assert "attempt 2 recorded" in notice_of(response.text)
    assert str(home.b2cal_home()) not in response.text  # the history names no server directory
    with toy_service.session() as s:
        latest = attempts.latest_attempt(s, "p2", "toy_a")
        assert (latest.number, latest.state) == (2, "held")

    response = post(mary, "p1", "toy_a", "reassign", {"expert": "bob"})
    assert response.status_code == 200, error_of(response.text)
    actions = [(u, a) for u, a, _ in audit_actions(toy_service, "p1")] + [
        (u, a) for u, a, _ in audit_actions(toy_service, "p2")
    ]
    assert {("mary", "exclude"), ("mary", "reassign"), ("mary", "restart")} <= set(actions)
    # the rule follows the reassignment: now bob may submit toy_a in p1, alice may not
    assert post(login_as("alice"), "p1", "toy_a", "submit", {"expert_config": "{}"}).status_code == 403
    response = post(login_as("bob"), "p1", "toy_a", "submit", {"expert_config": "{}"})
    assert response.status_code == 200, error_of(response.text)


def test_expert_signs_off_a_finished_calibration(login_as, toy_service):
    response = post(
        login_as("alice"), "p2", "toy_a", "signoff", {"decision": "accept", "comment": "looks fine"}
    )
    assert response.status_code == 200, error_of(response.text)
    assert "accepted by alice" in notice_of(response.text)
    assert toy_service.step_states("p2")["toy_a"] == "signed_off"
    assert audit_actions(toy_service, "p2", "toy_a")[-1][:2] == ("alice", "signoff_accept")
    too_early = post(login_as("alice"), "p1", "toy_a", "signoff", {"decision": "accept"})
    assert too_early.status_code == 400 and "no finished attempt" in error_of(too_early.text)


def test_download_is_the_payloads_as_a_tar_gz(login_as):
    victor = login_as("victor")
    html = victor.get(page_path("p2", "toy_a")).text
    assert 'href="/b2cal/processing/p2/toy_a/payloads.tar.gz"' in html
    payload_row = re.search(r'<table id="payloads">.*?</table>', html, re.S).group(0)
    assert "ToyA" in payload_row and "job" in payload_row

    response = victor.get(page_path("p2", "toy_a", "payloads.tar.gz"))
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/gzip"
    assert 'filename="p2_toy_a.tar.gz"' in response.headers["content-disposition"]
    with tarfile.open(fileobj=io.BytesIO(response.content), mode="r:gz") as tar:
        names = tar.getnames()
        database_txt = tar.extractfile("database.txt").read().decode()
    assert database_txt.startswith("dbstore/ToyA ")
    listed = database_txt.split()[1]
    assert f"dbstore_ToyA_rev_{listed}.root" in names

    none_yet = victor.get(page_path("p1", "toy_a", "payloads.tar.gz"))
    assert none_yet.status_code == 404
    assert "has no payloads in p1 yet" in error_of(none_yet.text)


def test_download_and_upload_again_is_a_new_revision(login_as, toy_service):
    alice = login_as("alice")
    archive = alice.get(page_path("p2", "toy_a", "payloads.tar.gz")).content
    response = post(
        alice, "p2", "toy_a", "upload", files={"archive": ("p2_toy_a.tar.gz", archive, "application/gzip")}
    )
    assert response.status_code == 200, error_of(response.text)
    assert "upload stored as attempt 2: ToyA revision 2" in notice_of(response.text)
    current = toy_service.current_payloads("p2", "toy_a")
    assert [(p.name, p.revision, p.source) for p in current] == [("ToyA", 2, "upload")]
    assert audit_actions(toy_service, "p2", "toy_a")[-1][:2] == ("alice", "upload_payloads")


def _tar_gz(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


@pytest.mark.parametrize(
    "filename, content, reason",
    [
        ("notes.tar.gz", b"just some text", "is not a tar.gz or zip archive"),
        (
            "wrong.tar.gz",
            _tar_gz({"database.txt": b"dbstore/NotToyA 1 3,3,3,4\n", "dbstore_NotToyA_rev_1.root": b"x"}),
            "NotToyA",
        ),
        ("escape.tar.gz", _tar_gz({"../database.txt": b"dbstore/ToyA 1 1,3,1,4\n"}), ".."),
    ],
)
def test_a_bad_upload_shows_the_reason_and_changes_nothing(login_as, toy_service, filename, content, reason):
    alice = login_as("alice")
    before_db, before_files = snapshot_db(toy_service), snapshot_files(home.b2cal_home())
    response = post(alice, "p2", "toy_a", "upload", files={"archive": (filename, content)})
    assert response.status_code == 400
    message = error_of(response.text)
    assert "upload refused, nothing was changed" in message and reason in message, message
    assert snapshot_db(toy_service) == before_db
    assert snapshot_files(home.b2cal_home()) == before_files


def test_an_upload_over_the_size_limit_is_refused(login_as, toy_service, monkeypatch):
    monkeypatch.setenv("B2CAL_UPLOAD_MAX_BYTES", "1000")
    alice = login_as("alice")
    html = alice.get(page_path("p2", "toy_a")).text
    assert "at most 1000 bytes" in html
    before = snapshot_db(toy_service)
    response = post(
        alice, "p2", "toy_a", "upload", files={"archive": ("big.tar.gz", b"\x1f\x8b" + b"0" * 200_000)}
    )
    assert response.status_code == 413
    assert "the archive is larger than the limit of 1000 bytes" in error_of(response.text)
    assert snapshot_db(toy_service) == before


def test_unknown_processing_or_calibration_is_a_readable_page(login_as):
    mary = login_as("mary")
    response = mary.get(page_path("p9", "toy_a"))
    assert response.status_code == 404
    assert "no processing named 'p9'; known: p1, p2" in html_text.unescape(error_of(response.text))
    response = mary.get(page_path("p1", "toy_z"))
    assert response.status_code == 404 and "known: toy_a" in error_of(response.text)
    response = post(mary, "p1", "toy_a", "launch")
    assert response.status_code == 404 and "no action 'launch'" in html_text.unescape(error_of(response.text))
    assert "Traceback" not in response.text


def test_without_login_the_pages_still_want_their_csrf_token(web_workspace, toy_service):
    """``b2cal web --no-auth``: everyone is the local admin, but a form from elsewhere is still refused."""
    from starlette.testclient import TestClient

    from b2cal_assets.web.app import build_app

    app = build_app(web_workspace, login=None, loop=lambda: toy_service)
    with TestClient(app, base_url="http://localhost", follow_redirects=False) as local:
        page = local.get(page_path("p1", "toy_b"))
        assert page.status_code == 200 and "(no-auth)" in page.text
        before = snapshot_db(toy_service)
        assert local.post(page_path("p1", "toy_b", "exclude"), data={}).status_code == 400
        assert snapshot_db(toy_service) == before
        response = post(local, "p1", "toy_b", "exclude", {"reason": "laptop test"})
        assert response.status_code == 200, error_of(response.text)
        assert audit_actions(toy_service, "p1", "toy_b")[-1][1] == "exclude"


def test_after_a_reject_the_expert_and_a_manager_resubmit_with_new_settings(login_as, toy_service):
    alice = login_as("alice")
    response = post(alice, "p2", "toy_a", "signoff", {"decision": "reject", "comment": "offset"})
    assert response.status_code == 200, error_of(response.text)
    assert post(login_as("bob"), "p2", "toy_a", "submit", {"expert_config": "{}"}).status_code == 403

    response = post(alice, "p2", "toy_a", "submit", {"expert_config": '{"scale": 1.5, "fail": false}'})
    assert response.status_code == 200, error_of(response.text)
    assert "attempt 2 submitted" in notice_of(response.text)
    with toy_service.session() as s:
        held = attempts.latest_attempt(s, "p2", "toy_a")
        assert (held.number, held.state, held.submitted_by, held.expert_config["scale"]) == (
            2,
            "held",
            "alice",
            1.5,
        )
    assert toy_service.step_states("p2")["toy_a"] == "window_open"
    assert audit_actions(toy_service, "p2", "toy_a")[-1][:2] == ("alice", "resubmit")

    with toy_service.session() as s:  # that attempt fails too; the manager resubmits with other settings
        attempts.set_attempt_state(s, held.id, "failed")
        from b2cal_assets.db.repo import calibrations

        calibrations.update_calibration(s, "p2", "toy_a", state="failed")
    response = post(
        login_as("mary"), "p2", "toy_a", "submit", {"expert_config": '{"scale": 0.5, "fail": false}'}
    )
    assert response.status_code == 200, error_of(response.text)
    with toy_service.session() as s:
        latest = attempts.latest_attempt(s, "p2", "toy_a")
        assert (latest.number, latest.submitted_by, latest.expert_config["scale"]) == (3, "mary", 0.5)


@pytest.mark.parametrize(
    "name, why", [("ghost", "no user 'ghost' in the directory"), ("auto", "loop's own")]
)
def test_reassign_refuses_a_user_the_directory_does_not_have(login_as, toy_service, name, why):
    before = snapshot_db(toy_service)
    response = post(login_as("mary"), "p1", "toy_a", "reassign", {"expert": name})
    assert response.status_code == 400 and why in html_text.unescape(error_of(response.text))
    assert snapshot_db(toy_service) == before  # still alice's, nothing recorded
    ok = post(login_as("mary"), "p1", "toy_a", "reassign", {"expert": "BOB"})
    assert ok.status_code == 200 and "now assigned to bob" in notice_of(ok.text)  # the directory's spelling


def test_an_error_page_names_the_file_but_no_server_path(login_as, toy_service, b2cal_home):
    from pathlib import Path

    (payload,) = toy_service.current_payloads("p2", "toy_a")
    Path(payload.file).unlink()  # the payload store lost a file
    response = login_as("victor").get(page_path("p2", "toy_a", "payloads.tar.gz"))
    assert response.status_code == 500
    text = response.text
    assert Path(payload.file).name in text  # what is missing, by name
    assert str(b2cal_home) not in text and str(Path(payload.file).parent) not in text
