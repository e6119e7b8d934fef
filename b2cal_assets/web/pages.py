"""The few HTML pieces the login layer serves: the login page, the logout form, and the strips it adds
to the Dagster UI page (who is logged in; the loud no-login warning), from the templates in
``web/templates/`` (autoescaped)."""

from __future__ import annotations

import base64
import hashlib
from importlib import resources

from b2cal_assets.web.rendering import render
from b2cal_assets.web.sessions import CSRF_FIELD, SessionUser

CALIBRATION_STATUS_PATH = "/b2cal/status"  # the calibration pages beside the UI (calibration_pages.py)
# the one script of the pages (the settings form's checks before sending), allowed by its hash only
SETTINGS_SCRIPT = resources.files("b2cal_assets.web").joinpath("templates/settings_check.js").read_text()
SETTINGS_SCRIPT_HASH = base64.b64encode(hashlib.sha256(SETTINGS_SCRIPT.encode()).digest()).decode()

PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; "
    f"script-src 'sha256-{SETTINGS_SCRIPT_HASH}'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
    "Referrer-Policy": "same-origin",
}

def login_page(*, csrf_token: str, next_path: str, message: str = "", username: str = "") -> str:
    return render(
        "login.html",
        title="b2cal: log in",
        csrf_field=CSRF_FIELD,
        csrf_token=csrf_token,
        next_path=next_path,
        message=message,
        username=username,
    )


def logout_page(*, csrf_token: str, user: SessionUser) -> str:
    return render("logout.html", title="b2cal: log out", csrf_field=CSRF_FIELD, csrf_token=csrf_token, user=user)


def user_strip(user: SessionUser, csrf_token: str) -> str:
    """A small fixed badge on the Dagster page: who is logged in, as what, and a logout button."""
    return render(
        "user_strip.html",
        user=user,
        csrf_field=CSRF_FIELD,
        csrf_token=csrf_token,
        status_path=CALIBRATION_STATUS_PATH,
    )


NO_AUTH_WARNING = (
    "LOGIN IS OFF (b2cal web --no-auth): anyone who can reach this port can launch, change and delete "
    "everything. For a laptop only."
)


def no_auth_strip() -> str:
    return render("no_auth_strip.html", warning=NO_AUTH_WARNING)


def inject_before_body_end(page: str, fragment: str) -> str:
    marker = page.rfind("</body>")
    if marker < 0:
        return page + fragment
    return page[:marker] + fragment + page[marker:]
