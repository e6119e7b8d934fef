"""The few HTML pieces the login layer serves: the login page, the logout form, and the strips it adds
to the Dagster UI page (who is logged in; the loud no-login warning). Everything shown is escaped."""

from __future__ import annotations

from html import escape

from b2cal_assets.web.sessions import CSRF_FIELD, SessionUser

CALIBRATION_STATUS_PATH = "/b2cal/status"  # the calibration pages beside the UI (calibration_pages.py)

PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
    "Referrer-Policy": "same-origin",
}

_STYLE = """
body{font-family:system-ui,sans-serif;background:#f4f5f7;margin:0;display:flex;min-height:100vh;
align-items:center;justify-content:center}
main{background:#fff;padding:2rem 2.5rem;border-radius:8px;box-shadow:0 2px 12px rgba(0,0,0,.12);width:22rem}
h1{font-size:1.3rem;margin:0 0 1.2rem}label{display:block;margin:.8rem 0 .3rem;font-size:.9rem}
input[type=text],input[type=password]{width:100%;box-sizing:border-box;padding:.5rem;font-size:1rem}
button{margin-top:1.2rem;width:100%;padding:.6rem;font-size:1rem;background:#4f43dd;color:#fff;border:0;
border-radius:4px;cursor:pointer}.error{background:#fde8e8;color:#9b1c1c;padding:.6rem;border-radius:4px}
.note{color:#555;font-size:.85rem;margin-top:1rem}
"""


def _page(title: str, body: str) -> str:
    return (
        f"<!doctype html><html lang=en><head><meta charset=utf-8><title>{escape(title)}</title>"
        f'<meta name=viewport content="width=device-width"><style>{_STYLE}</style></head>'
        f"<body><main>{body}</main></body></html>"
    )


def login_page(*, csrf_token: str, next_path: str, message: str = "", username: str = "") -> str:
    error = f"<p class=error role=alert id=login-error>{escape(message)}</p>" if message else ""
    return _page(
        "b2cal: log in",
        f"<h1>b2cal calibration: log in</h1>{error}"
        '<form method=post action="/login" id=login-form>'
        f'<input type=hidden name="{CSRF_FIELD}" value="{escape(csrf_token)}">'
        f'<input type=hidden name="next" value="{escape(next_path)}">'
        "<label for=username>User name</label>"
        f'<input type=text id=username name=username autocomplete=username required value="{escape(username)}">'
        "<label for=password>Password</label>"
        "<input type=password id=password name=password autocomplete=current-password required>"
        "<button type=submit>Log in</button></form>"
        "<p class=note>Use your lab (LDAP) account.</p>",
    )


def logout_page(*, csrf_token: str, user: SessionUser) -> str:
    return _page(
        "b2cal: log out",
        f"<h1>Log out {escape(user.username)}?</h1>"
        '<form method=post action="/logout">'
        f'<input type=hidden name="{CSRF_FIELD}" value="{escape(csrf_token)}">'
        "<button type=submit>Log out</button></form>",
    )


def user_strip(user: SessionUser, csrf_token: str) -> str:
    """A small fixed badge on the Dagster page: who is logged in, as what, and a logout button."""
    return (
        '<div id="b2cal-user" style="position:fixed;right:8px;bottom:8px;z-index:2147483647;'
        "background:#1f2937;color:#fff;font:12px system-ui,sans-serif;padding:4px 8px;border-radius:4px;"
        'opacity:.9">'
        f'<span id="b2cal-user-name">{escape(user.username)}</span> '
        f'(<span id="b2cal-user-role">{escape(user.role.label)}</span>) '
        f'<a id="b2cal-calibrations-link" href="{CALIBRATION_STATUS_PATH}" style="color:#93c5fd">calibrations</a> '
        '<form method=post action="/logout" style="display:inline;margin:0">'
        f'<input type=hidden name="{CSRF_FIELD}" value="{escape(csrf_token)}">'
        '<button type=submit style="font:inherit;background:none;border:0;color:#93c5fd;cursor:pointer;'
        'text-decoration:underline;padding:0">log out</button></form></div>'
    )


NO_AUTH_WARNING = (
    "LOGIN IS OFF (b2cal web --no-auth): anyone who can reach this port can launch, change and delete "
    "everything. For a laptop only."
)


def no_auth_strip() -> str:
    return (
        '<div id="b2cal-no-auth-banner" role=alert style="position:fixed;left:0;right:0;bottom:0;'
        "z-index:2147483647;background:#b91c1c;color:#fff;font:bold 13px system-ui,sans-serif;"
        'text-align:center;padding:4px;pointer-events:none">'
        f"{escape(NO_AUTH_WARNING)}</div>"
    )


def inject_before_body_end(page: str, fragment: str) -> str:
    marker = page.rfind("</body>")
    if marker < 0:
        return page + fragment
    return page[:marker] + fragment + page[marker:]
