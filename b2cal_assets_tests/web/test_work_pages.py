"""The pages a person lands on and the calibration page that follows the state, against the real slapd
login and the toy loop: an expert's work, a manager's status with its filters and critical path, a
failure with its log tail, the validation plots from the payload store, and post-redirect-get."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from b2cal_assets.loop.validation import run_validation_script
from b2cal_assets_tests.loop.helpers import fake_run
from b2cal_assets_tests.web.conftest import auth_config, make_pages_app
from b2cal_assets_tests.web.test_calibration_pages import error_of, notice_of, page_path, post

pytestmark = pytest.mark.ldap

RUN_ID = "3f2a9c1e-0000-4000-8000-00000000abcd"


@pytest.fixture
def web_app(web_workspace, ldap_server, audit_log, toy_service):
    config = auth_config(
        ldap_server, bind_dn=ldap_server.service_dn, bind_password=ldap_server.service_password
    )
    return make_pages_app(web_workspace, config, audit_log, toy_service)


def fail_with_subjob(service, processing: str, calibration: str, b2cal_home: Path) -> None:
    """An attempt whose collector subjob died, recorded the way the runner records it."""
    ticket = service.begin_attempt(
        processing,
        calibration,
        submitted_by="alice",
        expert_config={"fail": True},
        job_config={},
        dagster_run_id=RUN_ID,
    )
    subjob = b2cal_home / "work" / "subjob_0"
    subjob.mkdir(parents=True)
    (subjob / "stdout").write_text("reading hadron_calib run 1\n")
    (subjob / "stderr").write_text(
        "Traceback (most recent call last):\n"
        f'  File "{b2cal_home}/scripts/toy_a.py", line 30, in collect\n'
        "RuntimeError: asked to fail by expert_config\n"
    )
    service.record_subjobs(
        ticket,
        "local",
        [
            {
                "calibration": calibration,
                "iteration": 0,
                "name": "0",
                "state": "failed",
                "exit_code": 1,
                "workdir": str(subjob),
            },
            {
                "calibration": calibration,
                "iteration": 0,
                "name": "1",
                "state": "completed",
                "exit_code": 0,
                "workdir": "",
            },
        ],
    )
    service.fail_attempt(
        ticket,
        f"collector subjob 0 failed (exit code 1); its log: {subjob}/stderr\nRuntimeError: asked to fail",
    )


def link_to(html: str, table: str, calibration: str) -> str:
    body = re.search(rf"<table id={table}>.*?</table>", html, re.S)
    assert body, f"no table {table}"
    row = next((r for r in body.group(0).split("<tr") if f"/{calibration}" in r), "")
    return row


def test_an_expert_lands_on_their_work_what_to_do_first(login_as, toy_service, b2cal_home):
    fail_with_subjob(toy_service, "p1", "toy_a", b2cal_home)  # p1 toy_a failed, p2 toy_a finished
    alice = login_as("alice")
    landing = alice.get("/b2cal")
    assert landing.status_code == 303 and landing.headers["location"] == "/b2cal/work"
    html = alice.get("/b2cal/work").text
    failed = link_to(html, "todo", "p1/toy_a")
    assert "look at the failure and resubmit" in failed
    assert 'href="/b2cal/processing/p1/toy_a#failure"' in failed  # one click to the failure
    finished = link_to(html, "todo", "p2/toy_a")
    assert (
        "look at the plots and sign off" in finished and 'href="/b2cal/processing/p2/toy_a#plots"' in finished
    )
    assert "toy_b" not in html  # bob's


def test_an_open_window_says_submit_before_the_deadline_with_a_countdown(login_as):
    html = login_as("alice").get("/b2cal/work").text
    row = link_to(html, "todo", "p1/toy_a")
    assert re.search(
        r"Submit your settings before \d{4}-\d\d-\d\d \d\d:\d\d UTC, in (1 d 23 h|2 d 0 h|1 d \d+ h)", row
    )
    assert 'href="/b2cal/processing/p1/toy_a#form-submit"' in row
    assert "<span class=countdown>in " in row


def test_a_manager_lands_on_the_status_with_counts_critical_path_and_blockers(login_as):
    mary = login_as("mary")
    assert mary.get("/b2cal").headers["location"] == "/b2cal/status"
    html = mary.get("/b2cal/status").text
    counts = re.search(r'<p class=counts id="counts-p2">(.*?)</p>', html, re.S).group(1)
    assert ">1 finished<" in counts and ">3 waiting<" in counts  # toy_b, the cDST production, toy_c
    path = re.search(r'<p class=path id="critical-p2">(.*?)</p>', html, re.S).group(1)
    assert re.sub(r"<[^>]+>", "", path).endswith("toy_a → toy_b → cdst → toy_c")
    blockers = re.search(r'<ul class=blockers id="blockers-p2">(.*?)</ul>', html, re.S).group(1)
    assert "toy_a" in blockers and "waiting for alice&#39;s sign-off" in blockers


def test_status_filters_are_query_parameters(login_as):
    mary = login_as("mary")
    html = mary.get("/b2cal/status?processing=p2&state=finished").text
    assert 'id="status-p2"' in html and 'id="status-p1"' not in html
    rows = re.search(r'<table id="status-p2">.*?</table>', html, re.S).group(0)
    assert "/p2/toy_a" in rows and "/p2/toy_b" not in rows
    assert "<option selected>finished</option>" in html  # the filter shows what it is set to
    by_expert = mary.get("/b2cal/status?expert=bob").text
    assert (
        "/p1/toy_b" in by_expert.split('<table id="status-p1">')[1]
        and '/p1/toy_a"' not in by_expert.split('<table id="status-p1">')[1].split("</table>")[0]
    )
    nothing = mary.get("/b2cal/status?stage=analysis").text
    assert "No calibration matches the filters." in nothing
    unknown = mary.get("/b2cal/status?processing=p9")
    assert unknown.status_code == 200 and "no processing named &#39;p9&#39;" in error_of(unknown.text)


def test_a_failure_shows_its_log_tail_failing_subjob_and_dagster_run(login_as, toy_service, b2cal_home):
    fail_with_subjob(toy_service, "p1", "toy_a", b2cal_home)
    html = login_as("alice").get(page_path("p1", "toy_a")).text
    failure = re.search(r"<section id=failure.*?</section>", html, re.S).group(0)
    assert "Attempt 1 failed" in failure
    assert f'href="/runs/{RUN_ID}"' in failure
    assert "Failing subjob <code>toy_a/iteration_0/0</code> (failed, exit code 1)" in failure
    assert "RuntimeError: asked to fail by expert_config" in failure
    assert "toy_a/iteration_0/1" not in failure  # the subjob that worked is not a suspect
    assert str(b2cal_home) not in html  # no server path on the page
    # the state decides the forms: a failure is resubmitted (with the failed settings shown), not signed off
    assert re.search(r"<h3>Resubmit</h3>", html) and "id=form-signoff" not in html
    assert 'name="cfg.fail" value=true checked>' in html
    assert "<code>fail</code>: <del>false</del> → <ins>true</ins>" in html


def test_plots_beside_the_previous_processing_served_only_to_a_login(login_as, toy_service, client):
    script = toy_service.scripts.calibrations["toy_a"]
    fake_run(toy_service, "p1", "toy_a", {"ToyA": {"mean": [3.05]}})
    run_validation_script(toy_service, "p1", "toy_a", script)
    run_validation_script(toy_service, "p2", "toy_a", script)
    victor = login_as("victor")
    html = victor.get(page_path("p2", "toy_a")).text
    plots = re.search(r"<section id=plots>.*?</section>", html, re.S).group(0)
    this, previous = plots.split("<div class=plotcol>")[1:3]
    assert "This processing (p2)" in this and "validation failed" in this and "mean 2.500" in this
    assert '<img src="/b2cal/processing/p2/toy_a/plots/toy_a_mean.png"' in this
    assert "Previous processing (p1)" in previous and "validation passed" in previous
    assert '<img src="/b2cal/processing/p1/toy_a/plots/toy_a_mean.png"' in previous

    image = victor.get(page_path("p2", "toy_a", "plots/toy_a_mean.png"))
    assert image.status_code == 200 and image.headers["content-type"] == "image/png"
    assert image.content.startswith(b"\x89PNG")
    assert client.get(page_path("p2", "toy_a", "plots/toy_a_mean.png")).status_code == 401
    for other in (
        "validation.log",
        "..%2foutputdb%2fdatabase.txt",
        "b2cal_verdict.json",
        "%2e%2e/%2e%2e/b2cal.db",
    ):
        refused = victor.get(page_path("p2", "toy_a", f"plots/{other}"))
        assert refused.status_code == 404, other
        assert "has no plot" in error_of(refused.text), other


def test_the_payload_timeline_draws_each_iov_over_the_runs(login_as):
    html = login_as("victor").get(page_path("p2", "toy_a")).text
    timeline = re.search(r"<div class=timeline id=timeline.*?</div>\n<table", html, re.S).group(0)
    assert "ToyA r1" in timeline and "exp 1 runs 3-4 (1,3,1,4)" in timeline
    assert 'style="left:0.0%;width:100.0%"' in timeline  # the job's payload covers runs 3-4 of p2


def test_a_form_redirects_and_a_reload_does_not_repeat_it(login_as, toy_service):
    from b2cal_assets.web.calibration_html import calibration_path

    mary = login_as("mary")
    token = re.search(r'name="csrf_token" value="([^"]+)"', mary.get(page_path("p2", "toy_a")).text).group(1)
    response = mary.post(page_path("p2", "toy_a", "restart"), data={"csrf_token": token})
    assert response.status_code == 303 and response.headers["location"] == calibration_path("p2", "toy_a")
    shown = mary.get(response.headers["location"]).text
    assert "attempt 2 recorded" in notice_of(shown)
    again = mary.get(response.headers["location"]).text  # a reload: the page, no second restart, no notice
    assert notice_of(again) == ""
    with toy_service.session() as s:
        from b2cal_assets.db.repo import attempts

        assert attempts.latest_attempt(s, "p2", "toy_a").number == 2
    assert post(mary, "p2", "toy_a", "restart").status_code == 200  # a second one is a second click


def test_a_submitted_attempt_moves_from_to_do_to_watch(login_as):
    alice = login_as("alice")
    assert post(alice, "p1", "toy_a", "submit", {"settings_form": "1", "cfg.scale": "1.5"}).status_code == 200
    html = alice.get("/b2cal/work").text
    assert "/p1/toy_a" not in re.search(r"<table id=todo>.*?</table>", html, re.S).group(0)
    row = link_to(html, "watch", "p1/toy_a")
    assert (
        "Attempt 1 (alice&#39;s settings) starts at the loop&#39;s next tick; submitting again replaces it"
        in row
    )
    status = login_as("mary").get("/b2cal/status").text
    blockers = re.search(r'<ul class=blockers id="blockers-p1">(.*?)</ul>', status, re.S).group(1)
    assert "attempt 1 queued: it starts at the loop&#39;s next tick" in blockers


def test_without_a_database_the_pages_say_what_to_run(web_workspace, b2cal_home):
    """`make dev` before `make demo`: the pages name the command, not an internal error or a path."""
    from starlette.testclient import TestClient

    from b2cal_assets.web.app import build_app

    app = build_app(web_workspace, login=None)  # the deployment's own loop, from B2CAL_HOME
    with TestClient(app, base_url="http://localhost", follow_redirects=False) as local:
        response = local.get("/b2cal/status")
        assert response.status_code == 503
        message = error_of(response.text)
        assert "the calibration database has no b2cal tables yet: run `b2cal db upgrade`" in message
        assert "make demo" in message and str(b2cal_home) not in response.text
        assert not (b2cal_home / "b2cal.db").exists()  # looking created nothing


def test_the_pages_run_no_script_but_the_settings_check_by_its_hash(login_as):
    response = login_as("alice").get(page_path("p1", "toy_a"))
    policy = response.headers["content-security-policy"]
    assert "script-src 'sha256-" in policy
    assert "script-src 'unsafe" not in policy and "img-src 'self'" in policy
    assert "<script>" not in response.text  # toy_a has no nested setting: nothing to check in the page
