"""A real browser on the calibration pages: a manager opens the status, then a calibration, and restarts it
through the form (CSRF cookie, page security headers and all). Screenshots go to test-artifacts/browser/."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from b2cal_assets_tests.web.conftest import auth_config, make_pages_app
from b2cal_assets_tests.web.test_browser import UI_TIMEOUT_MS, log_in, serving, shot
from b2cal_assets_tests.web.test_browser import browser as browser  # the fixture

pytestmark = [pytest.mark.ldap, pytest.mark.browser, pytest.mark.slow]


@pytest.fixture
def served_pages(web_workspace, ldap_server, audit_log, toy_service) -> Iterator[str]:
    with serving(make_pages_app(web_workspace, auth_config(ldap_server), audit_log, toy_service)) as base:
        yield base


def test_manager_restarts_a_calibration_from_its_page(served_pages, browser, ldap_server, toy_service):
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    page.set_default_timeout(UI_TIMEOUT_MS)
    log_in(page, served_pages, "mary", ldap_server.password("mary"), "/b2cal/status", "calibrations")
    page.locator("#status-p2").wait_for()
    shot(page, "calibrations-02-status")

    page.locator('#status-p2 a[href="/b2cal/processing/p2/toy_a"]').click()
    page.locator("#form-restart").wait_for()
    assert page.locator("#calibration-state").inner_text() == "finished"
    shot(page, "calibrations-03-calibration")

    page.locator("#form-restart button[type=submit]").click()
    notice = page.locator("#b2cal-notice")
    notice.wait_for()
    assert "attempt 2 recorded" in notice.inner_text()
    assert page.locator("#calibration-state").inner_text() == "window_open"
    shot(page, "calibrations-04-restarted")
    with toy_service.session() as s:
        from b2cal_assets.db.repo import audit

        assert [(e.user, e.action) for e in audit.list_audit(s, processing="p2", action="restart")] == [
            ("mary", "restart")
        ]
