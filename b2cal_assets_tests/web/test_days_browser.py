"""An expert's day and a manager's, in a real browser (Playwright driving Debian's Chromium) on the pages
they land on. The loop's runs between the clicks are the real runner over the toy calibration (local
process pool, real collector subjobs and their logs) and the real validation script, recorded the way
the loop's Dagster run records them. Each step asserts what the page shows; screenshots go to
test-artifacts/browser/ (days-expert-*, days-manager-*)."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from b2cal_assets.backends.local import LocalBackend
from b2cal_assets.caf.runner import (
    CalibrationFailed,
    CalibrationJob,
    RetryPolicy,
    SubmitPolicy,
    run_calibration_job,
)
from b2cal_assets.loop.submission import checked_submission
from b2cal_assets.loop.validation import run_validation_script
from b2cal_assets_tests.web.conftest import auth_config, make_pages_app
from b2cal_assets_tests.web.test_browser import UI_TIMEOUT_MS, serving, shot
from b2cal_assets_tests.web.test_browser import browser as browser  # the fixture

pytestmark = [pytest.mark.ldap, pytest.mark.browser, pytest.mark.slow]


@pytest.fixture
def served(web_workspace, ldap_server, audit_log, toy_service) -> Iterator[str]:
    config = auth_config(
        ldap_server, bind_dn=ldap_server.service_dn, bind_password=ldap_server.service_password
    )
    with serving(make_pages_app(web_workspace, config, audit_log, toy_service)) as base:
        yield base


def run_like_the_loop(service, processing: str, calibration: str, run_id: str) -> bool:
    """What the loop's run does with the attempt an expert queued: take it over, run the calibration,
    record its subjobs and the failure or the payloads, then the validation check. True if it finished."""
    ticket = service.begin_attempt(
        processing, calibration, submitted_by="auto", expert_config={}, job_config={}, dagster_run_id=run_id
    )
    script = service.scripts.calibrations[calibration]
    expert_config, job_config = checked_submission(script.settings, ticket.expert_config, ticket.job_config)
    job = CalibrationJob(
        script_file=script.file,
        calibrations_dir=script.file.parent,
        calibration_script_name=script.module_name,
        input_data=service.input_data(processing, calibration, None),
        requested_iov=ticket.requested_iov,
        expert_config=expert_config,
        database_chain=service.database_chain(processing, calibration),
        workdir=ticket.workdir,
        max_collector_jobs=job_config.get("max_collector_jobs"),
    )
    try:
        outcome = run_calibration_job(
            job,
            LocalBackend(max_processes=2),
            submit_policy=SubmitPolicy(poll_interval_s=0.05),
            retry_policy=RetryPolicy(max_retries=0),
        )
    except CalibrationFailed as exc:
        service.record_subjobs(ticket, "local")  # from the runner's checkpoint, as the loop does
        service.fail_attempt(ticket, str(exc), subjob=exc.subjob or "", log_tail=exc.log_tail or "")
        return False
    service.record_subjobs(ticket, "local", [s.to_json() for s in outcome.subjobs])
    service.finish_attempt(
        ticket, outcome.outputdb, outcome.payloads, max(outcome.iterations.values(), default=0)
    )
    run_validation_script(service, processing, calibration, script)
    return True


def log_in_and_land(page, base: str, username: str, password: str, prefix: str) -> None:
    page.goto(base + "/")
    page.wait_for_url(re.compile(r".*/login\?next=.*"))
    page.fill("#username", username)
    page.fill("#password", password)
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(re.escape(base) + r"/b2cal/(work|status)$"))
    shot(page, f"{prefix}-01-landed")


def send(page, action: str) -> str:
    """Send the page's form of ``action``; the notice on the page it redirects to."""
    page.locator(f"#form-{action} button[type=submit]").click()
    page.locator("#b2cal-notice").wait_for()
    return page.locator("#b2cal-notice").inner_text()


def todo_row(page, processing: str, calibration: str):
    return page.locator(f'#todo tr:has(a[href^="/b2cal/processing/{processing}/{calibration}"])')


def test_an_experts_day(served, browser, ldap_server, toy_service):
    run_validation_script(toy_service, "p2", "toy_a", toy_service.scripts.calibrations["toy_a"])
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.set_default_timeout(UI_TIMEOUT_MS)
    log_in_and_land(page, served, "alice", ldap_server.password("alice"), "days-expert")
    # the landing page says what to do: submit in p1 before the deadline, sign off in p2
    assert page.url.endswith("/b2cal/work")
    submit_row = todo_row(page, "p1", "toy_a")
    assert re.search(r"Submit your settings before .* UTC, in \d", submit_row.inner_text())
    assert "sign off" in todo_row(page, "p2", "toy_a").inner_text()

    # one click to the form; the form has a field per setting, typed; no sign-off before an attempt
    submit_row.locator("a").click()
    page.locator("#form-submit").wait_for()
    assert page.locator("#calibration-state").inner_text() == "window_open"
    assert page.locator("#form-signoff").count() == 0 and page.locator("#form-restart").count() == 0
    page.fill('[name="cfg.scale"]', "1.02")
    page.check('[name="cfg.fail"]')
    shot(page, "days-expert-02-settings")
    assert "attempt 1 submitted" in send(page, "submit")
    changed = page.locator("#attempts tbody tr").first.locator("td.diff").inner_text()
    assert "fail: false → true" in changed and "scale: 1.0 → 1.02" in changed
    shot(page, "days-expert-03-submitted")

    assert not run_like_the_loop(toy_service, "p1", "toy_a", "run-expert-1-0000-failed")

    # the failure is on the landing page; one click shows its log tail and the failing subjob
    page.click("header >> text=my work")
    failed_row = todo_row(page, "p1", "toy_a")
    assert "failed: look at the failure and resubmit" in failed_row.inner_text()
    failed_row.locator("a").click()
    page.locator("#failure").wait_for()
    failure = page.locator("#failure").inner_text()
    assert "Attempt 1 failed" in failure and "asked to fail by expert_config" in failure
    assert "collector subjob toy_a.0.0 failed" in page.locator("#failure-summary").inner_text()
    assert "Attempt 1 failed: look at the failure and resubmit" in page.locator("#todo-now").inner_text()
    assert page.locator("#failure pre.log").count() >= 2  # the attempt's log and the failing subjob's
    assert page.locator("#dagster-run").get_attribute("href") == "/runs/run-expert-1-0000-failed"
    assert page.locator("#form-signoff").count() == 0
    shot(page, "days-expert-04-failure")

    # resubmit from the same page, the failed settings filled in: turn "fail" off
    assert page.locator("#form-submit h3").inner_text() == "Resubmit"
    assert page.is_checked('[name="cfg.fail"]') and page.input_value('[name="cfg.scale"]') == "1.02"
    page.uncheck('[name="cfg.fail"]')
    assert "attempt 2 submitted" in send(page, "submit")
    shot(page, "days-expert-05-resubmitted")

    assert run_like_the_loop(toy_service, "p1", "toy_a", "run-expert-2-0000-finished")

    # the plots are in sight with their verdict, and the sign-off is one click away
    page.click("header >> text=my work")
    assert "starts at the loop's next tick" not in page.locator("#todo").inner_text()
    ready = todo_row(page, "p1", "toy_a")
    assert "look at the plots and sign off" in ready.inner_text()
    ready.locator("a").click()
    page.locator("#plots img").first.wait_for()
    assert "validation passed" in page.locator("#plots").inner_text()
    loaded = page.locator("#plots img").first.evaluate("img => img.complete && img.naturalWidth > 0")
    assert loaded, "the plot did not load from the payload store"
    assert page.locator("#form-submit").count() == 0  # finished: nothing to submit
    assert page.locator("#timeline .bar").count() >= 1
    shot(page, "days-expert-06-plots")
    page.fill("#comment", "mean within 1 %")
    assert "accepted by alice" in send(page, "signoff")
    assert page.locator("#calibration-state").inner_text() == "signed_off"
    shot(page, "days-expert-07-signed-off")
    page.reload()  # a reload shows the page again; it does not sign off twice
    assert page.locator("#b2cal-notice").count() == 0
    assert toy_service.step_states("p1")["toy_a"] == "signed_off"

    # p2's toy_a, still to sign off: its plots beside p1's, the one just signed off
    page.click("header >> text=my work")
    todo_row(page, "p2", "toy_a").locator("a").click()
    page.locator("#plots img").nth(1).wait_for()
    columns = page.locator("#plots .plotcol")
    assert "This processing (p2)" in columns.nth(0).inner_text()
    assert "validation failed" in columns.nth(0).inner_text()  # 2.5, not 3.0
    assert "Previous processing (p1)" in columns.nth(1).inner_text()
    assert "validation passed" in columns.nth(1).inner_text()
    shot(page, "days-expert-08-beside-the-previous")
    page.locator("#timeline").scroll_into_view_if_needed()
    assert "exp 1 runs 3-4" in page.locator("#timeline .bar").inner_text()
    shot(page, "days-expert-09-payloads-and-history")


def open_from_status(page, processing: str, calibration: str) -> None:
    """Two clicks: the status, then the calibration's row."""
    page.click("header >> text=status")
    page.locator(f'#status-{processing} a[href="/b2cal/processing/{processing}/{calibration}"]').click()
    page.locator("#calibration-state").wait_for()


def test_a_managers_day(served, browser, ldap_server, toy_service):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.set_default_timeout(UI_TIMEOUT_MS)
    log_in_and_land(page, served, "mary", ldap_server.password("mary"), "days-manager")
    assert page.url.endswith("/b2cal/status")
    assert "1 finished" in page.locator("#counts-p2").inner_text()
    assert "toy_a → toy_b → cdst → toy_c" in page.locator("#critical-p2").inner_text()
    assert "waiting for alice's sign-off" in page.locator("#blockers-p2").inner_text()
    assert "alice submits" in page.locator("#blockers-p1").inner_text()

    # filter: what is finished in p2 (a link: the filters are in the URL)
    page.select_option("#filter-processing", "p2")
    page.select_option("#filter-state", "finished")
    page.locator("#filters button[type=submit]").click()
    page.wait_for_url(re.compile(r".*/b2cal/status\?processing=p2&stage=&state=finished&expert=$"))
    assert page.locator("#status-p1").count() == 0
    assert page.locator("#status-p2 tbody tr").count() == 1
    shot(page, "days-manager-02-filtered")

    # exclude toy_b in p1: its dependents use the global tag; the page then offers Include instead
    open_from_status(page, "p1", "toy_b")
    page.fill("#reason", "no good runs for toy_b in p1")
    assert "is excluded from p1" in send(page, "exclude")
    assert page.locator("#form-include").count() == 1 and page.locator("#form-exclude").count() == 0
    shot(page, "days-manager-03-excluded")

    # reassign toy_a in p1 to bob (the directory's user)
    open_from_status(page, "p1", "toy_a")
    page.fill("#expert", "bob")
    assert "now assigned to bob" in send(page, "reassign")
    assert page.locator("#calibration-expert").inner_text() == "bob"
    assert page.locator("#todo-now").inner_text().startswith("bob's next step: Submit your settings before")
    shot(page, "days-manager-04-reassigned")

    # restart the finished toy_a in p2 with its last settings
    open_from_status(page, "p2", "toy_a")
    assert page.locator("#form-restart").count() == 1
    assert "attempt 2 recorded" in send(page, "restart")
    assert page.locator("#calibration-state").inner_text() == "window_open"
    assert "Attempt 2 (the defaults) starts at the loop's next tick" in page.locator("#todo-now").inner_text()
    shot(page, "days-manager-05-restarted")

    page.click("header >> text=status")
    assert "excluded" in page.locator("#counts-p1").inner_text()
    shot(page, "days-manager-06-status-after")


def test_the_settings_form_checks_json_before_it_is_sent(browser, toy_service):
    """A nested setting is a JSON field; the page's one script (allowed by its hash in the page's CSP)
    refuses what the server would refuse, next to the field, and sends the form once it is right."""
    import dataclasses

    from b2cal_assets.web.calibration_html import Allowed, calibration_page
    from b2cal_assets.web.calibration_views import calibration_view
    from b2cal_assets.web.pages import PAGE_HEADERS
    from b2cal_assets.web.roles import Role
    from b2cal_assets.web.sessions import SessionUser

    view = calibration_view(toy_service, "p1", "toy_a")
    view = dataclasses.replace(view, defaults={"scale": 1.0, "cuts": {"pt": 0.2}})
    html = calibration_page(
        view,
        user=SessionUser("alice", Role.EXPERT),
        csrf_token="t",
        allowed=Allowed(expert=True, manage=False, upload_limit_bytes=1000),
    )
    base = "http://b2cal.test"
    sent: list[str] = []

    def answer(route) -> None:
        if route.request.method == "POST":
            sent.append(route.request.post_data or "")
            route.fulfill(status=200, body="sent", headers={"content-type": "text/plain"})
        else:
            route.fulfill(status=200, body=html, headers={**PAGE_HEADERS, "content-type": "text/html"})

    page = browser.new_page(viewport={"width": 1400, "height": 900})
    page.set_default_timeout(UI_TIMEOUT_MS)
    page.route(base + "/**", answer)
    page.goto(base + "/b2cal/processing/p1/toy_a")
    page.fill('[name="cfg.cuts"]', "[0.3]")
    page.locator("#form-submit button[type=submit]").click()
    error = page.locator("#form-submit .field-error")
    error.wait_for()
    assert error.inner_text() == "JSON of the default's type (dict), not list"
    page.fill('[name="cfg.cuts"]', '{"pt": 0.3')
    page.locator("#form-submit button[type=submit]").click()
    assert "not valid JSON" in error.inner_text()
    shot(page, "days-settings-json-refused")
    assert sent == []
    page.fill('[name="cfg.cuts"]', '{"pt": 0.3}')
    page.locator("#form-submit button[type=submit]").click()
    page.wait_for_url(base + "/b2cal/processing/p1/toy_a/submit")
    assert len(sent) == 1 and "cfg.cuts=%7B%22pt%22%3A+0.3%7D" in sent[0]
