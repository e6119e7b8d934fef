"""The login and logout pages and what they do: CSRF check, rate limit, LDAP bind, groups to role,
session cookie, audit."""

from __future__ import annotations

import logging
from collections.abc import Callable
from urllib.parse import quote

from starlette.concurrency import run_in_threadpool
from starlette.requests import HTTPConnection, Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from b2cal_assets.loop.authority import RESERVED_USERNAMES, is_reserved_username  # noqa: F401
from b2cal_assets.loop.records import LoopError
from b2cal_assets.web.config import AuthConfig
from b2cal_assets.web.forms import FormRejected, read_form
from b2cal_assets.web.graphql_guard import USER_SCOPE_KEY, AuditSink
from b2cal_assets.web.ldap_auth import AuthFailed, DirectoryUnavailable, DirectoryUser, LdapAuthenticator
from b2cal_assets.web.login_limits import LoginRateLimiter
from b2cal_assets.web.pages import PAGE_HEADERS, login_page, logout_page
from b2cal_assets.web.roles import Role, role_for_groups
from b2cal_assets.web.sessions import CSRF_FIELD, SESSION_COOKIE, SessionCodec, SessionStore, SessionUser

log = logging.getLogger(__name__)

LOGIN_PATH = "/login"
LOGOUT_PATH = "/logout"
HEALTH_PATH = "/healthz"

LOGIN_FORM_MAX_BYTES = 16 * 1024
WRONG_CREDENTIALS = "Wrong user name or password."




LANDING_PATH = "/b2cal"  # a person's work first (calibration_pages: "My work", or a manager's status)


def safe_next(value: str | None) -> str:
    """Only paths on this server are followed after login (no open redirect); none, or the UI's root,
    is the landing page: the expert's work, the manager's status."""
    if not value or value == "/" or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return LANDING_PATH
    if any(ch in value for ch in "\r\n") or value.startswith(LOGIN_PATH):
        return LANDING_PATH
    return value


def login_redirect(conn: HTTPConnection) -> RedirectResponse:
    target = conn.url.path + (f"?{conn.url.query}" if conn.url.query else "")
    return RedirectResponse(f"{LOGIN_PATH}?next={quote(target, safe='/')}", status_code=303)


class LoginService:
    """Owns the login state of one webserver process."""

    def __init__(
        self,
        config: AuthConfig,
        *,
        authenticate: Callable[[str, str], DirectoryUser] | None = None,
        audit: AuditSink | None = None,
        session_store: SessionStore | None = None,
    ):
        self.config = config
        self.codec = SessionCodec(config.secret_key, config.session, session_store)
        self.limiter = LoginRateLimiter(config.limits)
        self.authenticate = authenticate or LdapAuthenticator(config.ldap).authenticate
        self.audit = audit

    def find_user(self, username: str) -> str | None:
        """The directory's spelling of ``username`` (None: no such user, or a reserved name)."""
        if is_reserved_username(username):
            return None
        try:
            return LdapAuthenticator(self.config.ldap).find_user(username)
        except DirectoryUnavailable as exc:
            raise LoopError(
                f"the directory could not be asked whether {username!r} exists, so nothing was changed: {exc}"
            ) from None

    def current_user(self, conn: HTTPConnection) -> SessionUser | None:
        return self.codec.read(conn.cookies.get(SESSION_COOKIE))

    def routes(self) -> list[Route]:
        return [
            Route(LOGIN_PATH, self.login_get, methods=["GET"]),
            Route(LOGIN_PATH, self.login_post, methods=["POST"]),
            Route(LOGOUT_PATH, self.logout_get, methods=["GET"]),
            Route(LOGOUT_PATH, self.logout_post, methods=["POST"]),
            Route(HEALTH_PATH, health, methods=["GET"]),
        ]

    def _login_response(
        self,
        request: Request,
        *,
        message: str = "",
        username: str = "",
        next_path: str = "/",
        status: int = 200,
    ) -> HTMLResponse:
        nonce, new = self.codec.csrf_nonce(request)
        page = login_page(
            csrf_token=self.codec.csrf_token(nonce, request), next_path=next_path, message=message, username=username
        )
        response = HTMLResponse(page, status_code=status, headers=PAGE_HEADERS)
        if new:
            self.codec.set_csrf_cookie(response, request, nonce)
        return response

    async def login_get(self, request: Request) -> Response:
        next_path = safe_next(request.query_params.get("next"))
        if self.current_user(request) is not None:
            return RedirectResponse(next_path, status_code=303)
        return self._login_response(request, next_path=next_path)

    async def login_post(self, request: Request) -> Response:
        try:  # capped while it streams in: a huge body is refused before it is read
            form = await read_form(request, max_bytes=LOGIN_FORM_MAX_BYTES)
        except FormRejected as exc:
            return HTMLResponse(
                "The login request is too large.", status_code=exc.status, headers=PAGE_HEADERS
            )
        username = str(form.get("username") or "")
        password = str(form.get("password") or "")
        next_path = safe_next(str(form.get("next") or ""))
        shown_name = username[:128]
        if not self.codec.csrf_valid(request, str(form.get(CSRF_FIELD) or "")):
            return self._login_response(
                request,
                message="The login form expired; please try again.",
                username=shown_name,
                next_path=next_path,
                status=400,
            )
        address = request.client.host if request.client else "unknown"
        wait, ticket = self.limiter.begin_attempt(username, address)
        if wait > 0:
            minutes = max(1, round(wait / 60))
            log.warning("login refused, too many failures: user %r from %s", shown_name, address)
            return self._login_response(
                request,
                message=f"Too many failed logins. Try again in about {minutes} minute{'s' if minutes > 1 else ''}.",
                username=shown_name,
                next_path=next_path,
                status=429,
            )
        try:
            found = await run_in_threadpool(self.authenticate, username, password)
        except AuthFailed:
            log.warning("failed login: user %r from %s", shown_name, address)
            return self._login_response(
                request, message=WRONG_CREDENTIALS, username=shown_name, next_path=next_path, status=401
            )
        except DirectoryUnavailable as exc:
            self.limiter.cancel_attempt(username, address, ticket)
            log.error("login impossible, LDAP unavailable: %s", exc)
            return self._login_response(
                request,
                message="The login service (LDAP) cannot be reached; try again later or tell the operators.",
                username=shown_name,
                next_path=next_path,
                status=503,
            )
        self.limiter.cancel_attempt(username, address, ticket)  # the password was right
        role = role_for_groups(found.groups, self.config.role_groups)
        if is_reserved_username(found.username):
            log.warning("login refused, reserved user name: %s", found.username)
            return self._login_response(
                request,
                message=f"{found.username} is a name the calibration loop uses for itself; it cannot log in.",
                username=shown_name,
                next_path=next_path,
                status=403,
            )
        if role is None:
            log.warning("login refused, no b2cal group: %s", found.username)
            return self._login_response(
                request,
                message=f"{found.username} is in no group that may use b2cal; ask the calibration managers for access.",
                username=shown_name,
                next_path=next_path,
                status=403,
            )
        self.limiter.record_success(username)
        value, user = self.codec.issue(found.username, role)
        self._audit(user, "web.login", {"role": role.label, "address": address})
        response = RedirectResponse(next_path, status_code=303)
        self.codec.set_session_cookie(response, request, value)
        return response

    async def logout_get(self, request: Request) -> Response:
        user = self.current_user(request)
        if user is None:
            return RedirectResponse(LOGIN_PATH, status_code=303)
        nonce, new = self.codec.csrf_nonce(request)
        response = HTMLResponse(
            logout_page(csrf_token=self.codec.csrf_token(nonce, request), user=user), headers=PAGE_HEADERS
        )
        if new:
            self.codec.set_csrf_cookie(response, request, nonce)
        return response

    async def logout_post(self, request: Request) -> Response:
        try:
            form = await read_form(request, max_bytes=LOGIN_FORM_MAX_BYTES)
        except FormRejected as exc:
            return HTMLResponse(
                "The logout request is too large.", status_code=exc.status, headers=PAGE_HEADERS
            )
        if not self.codec.csrf_valid(request, str(form.get(CSRF_FIELD) or "")):
            return HTMLResponse(
                "The logout form expired; reload the page and try again.",
                status_code=400,
                headers=PAGE_HEADERS,
            )
        user = self.current_user(request)
        if user is not None:
            self.codec.revoke(user)
            self._audit(user, "web.logout", {})
        response = RedirectResponse(LOGIN_PATH, status_code=303)
        self.codec.clear_session_cookie(response, request)
        return response

    def csrf_token_for(self, conn: HTTPConnection) -> tuple[str, str | None]:
        """A CSRF token for a form on a page, and the nonce to set as a cookie if the browser has none."""
        nonce, new = self.codec.csrf_nonce(conn)
        return self.codec.csrf_token(nonce, conn), nonce if new else None

    def _audit(self, user: SessionUser, action: str, details: dict) -> None:
        if self.audit is None:
            return
        try:
            self.audit(user.username, action, "", "", details)
        except Exception:
            log.exception("audit log write failed for %s of %s", action, user.username)


def ldap_role_lookup(config: AuthConfig) -> Callable[[str], Role | None]:
    """The role LDAP gives a user now, for ``DbSessionStore``'s refresh."""
    directory = LdapAuthenticator(config.ldap)

    def lookup(username: str) -> Role | None:
        if is_reserved_username(username):
            return None
        return role_for_groups(directory.groups_of(username), config.role_groups)

    return lookup


async def health(_request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


def user_of(conn: HTTPConnection) -> SessionUser | None:
    user = conn.scope.get(USER_SCOPE_KEY)
    return user if isinstance(user, SessionUser) else None
