"""A real browser (Playwright driving Debian's Chromium) through the login and the Dagster UI: an expert
launches their calibration from the asset page and sees the run; a viewer finds the launch refused.
Screenshots of each step go to test-artifacts/browser/ at the repository root."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from b2cal_assets_tests.fixtures.home import skip_or_fail
from b2cal_assets_tests.web.conftest import auth_config, launch_params, make_app

pytestmark = [pytest.mark.ldap, pytest.mark.browser, pytest.mark.slow]

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "browser"
CHROMIUM = os.environ.get("B2CAL_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
UI_TIMEOUT_MS = 60_000


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def serving(app) -> Iterator[str]:
    """``app`` served by uvicorn on a loopback port, as `b2cal web` serves it; yields its base URL."""
    import uvicorn

    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            pytest.fail("uvicorn did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)


@pytest.fixture
def served(web_workspace, ldap_server, audit_log) -> Iterator[str]:
    """The app behind the login."""
    with serving(make_app(web_workspace, auth_config(ldap_server), audit_log)) as base:
        yield base


@pytest.fixture
def browser():
    if not shutil.which(CHROMIUM) and not os.path.exists(CHROMIUM):
        skip_or_fail(f"Chromium not found at {CHROMIUM}: run .ci/services/chromium.sh")
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def shot(page, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"))


def log_in(page, base: str, username: str, password: str, path: str, prefix: str) -> None:
    page.goto(base + path)
    page.wait_for_url(re.compile(r".*/login\?next=.*"))
    page.fill("#username", username)
    page.fill("#password", password)
    shot(page, f"{prefix}-01-login")
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(re.escape(base + path) + "$"))


def runs_by(instance, username: str) -> list:
    from dagster import RunsFilter

    return list(instance.get_runs(filters=RunsFilter(tags={"b2cal/user": username})))


def test_expert_launches_from_the_ui_and_sees_the_run(served, browser, ldap_server, web_workspace):
    instance = web_workspace.instance
    before = {r.run_id for r in runs_by(instance, "alice")}
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    page.set_default_timeout(UI_TIMEOUT_MS)
    log_in(page, served, "alice", ldap_server.password("alice"), "/assets/payloads/caf_x", "expert")

    materialize = page.get_by_role("button", name="Materialize")
    materialize.first.wait_for()
    page.wait_for_selector("#b2cal-user-name")
    shot(page, "expert-02-asset")
    materialize.first.click()
    dialog = page.locator("[role=dialog]")
    dialog.get_by_text("Select a partition or create one").click()
    page.keyboard.type("p1")
    page.get_by_text("p1", exact=True).filter(visible=True).first.click()
    page.keyboard.press("Escape")
    launch_button = dialog.get_by_role("button", name=re.compile(r"^Launch"))
    launch_button.wait_for()
    shot(page, "expert-03-launch-dialog")
    launch_button.click()

    deadline = time.monotonic() + 60
    while not (new := [r for r in runs_by(instance, "alice") if r.run_id not in before]):
        if time.monotonic() > deadline:
            shot(page, "expert-99-no-run")
            pytest.fail("no run was launched from the UI")
        time.sleep(0.3)
    run = new[0]
    assert run.tags["dagster/partition"] == "p1"
    assert {tuple(k.path) for k in run.asset_selection} == {("payloads", "caf_x")}

    page.goto(served + "/runs")
    page.get_by_text(run.run_id[:8]).first.wait_for()
    shot(page, "expert-04-runs")


def hover_until_shown(page, target, text: str, attempts: int = 5) -> None:
    """Hover ``target`` until its tooltip ``text`` shows, moving away between tries.

    A hover while the page still lays itself out (a loaded machine) can land on a button being
    re-rendered, or before the tooltip's listener exists; a user would move the mouse again.
    """
    from playwright.sync_api import Error as PlaywrightError  # only where Playwright is installed

    for _ in range(attempts):
        try:
            target.wait_for(state="visible")
            target.hover(force=True)
            page.get_by_text(text).first.wait_for(timeout=UI_TIMEOUT_MS // attempts)
            return
        except PlaywrightError:  # re-rendered under the pointer, or not shown yet
            page.mouse.move(0, 0)
    raise AssertionError(f"the tooltip {text!r} never showed after {attempts} hovers")


def test_viewer_finds_the_launch_refused(served, browser, ldap_server, web_workspace):
    instance = web_workspace.instance
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    page.set_default_timeout(UI_TIMEOUT_MS)
    log_in(page, served, "victor", ldap_server.password("victor"), "/assets/payloads/caf_x", "viewer")

    materialize = page.get_by_role("button", name="Materialize").first
    materialize.wait_for()
    assert materialize.is_disabled()
    hover_until_shown(page, materialize, "You do not have permission")
    shot(page, "viewer-02-asset-read-only")

    # going around the greyed-out button, straight to the API with the browser's session, is refused too
    before = len(runs_by(instance, "victor"))
    result = page.evaluate(
        """async ([query, variables]) => {
            const r = await fetch('/graphql', {method: 'POST', headers: {'Content-Type': 'application/json'},
                                               body: JSON.stringify({query, variables})});
            return await r.json();
        }""",
        [
            "mutation L($executionParams: ExecutionParams!) { launchPipelineExecution(executionParams: $executionParams)"
            " { __typename ... on Error { message } } }",
            launch_params(["payloads", "caf_x"], "p1"),
        ],
    )
    outcome = result["data"]["launchPipelineExecution"]
    assert outcome["__typename"] == "UnauthorizedError", outcome
    assert "viewers cannot launch" in outcome["message"]
    assert len(runs_by(instance, "victor")) == before
    shot(page, "viewer-03-after-refused-launch")
