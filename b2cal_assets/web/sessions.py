"""Signed session cookies and CSRF tokens.

The session is a cookie signed with ``B2CAL_SECRET_KEY`` (itsdangerous): who, which role, a session id
and when it was issued; it expires after ``max_age_seconds``. With a ``SessionStore`` (the served UI
uses the calibration database) every session is recorded: logging out revokes it for every worker and
across restarts, so a copied cookie stops working too, and the role is re-read from LDAP every few
minutes, so a person removed from a group loses the role promptly. CSRF tokens are a random nonce in a cookie of
its own plus the same nonce, signed together with the session id, in every form (double submit bound
to the session).
"""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass, replace
from typing import Protocol

from itsdangerous import BadSignature, URLSafeTimedSerializer
from starlette.requests import HTTPConnection
from starlette.responses import Response

from b2cal_assets.web.config import SessionSettings
from b2cal_assets.web.roles import Role

SESSION_COOKIE = "b2cal_session"
CSRF_COOKIE = "b2cal_csrf"
CSRF_FIELD = "csrf_token"
FLASH_COOKIE = "b2cal_flash"
FLASH_MAX_AGE_SECONDS = 120


@dataclass(frozen=True)
class SessionUser:
    """The logged-in person, as every request after the login sees them."""

    username: str
    role: Role
    session_id: str = ""


class SessionStore(Protocol):
    """Where sessions are recorded; ``current`` is None for a revoked or unknown session, else the
    user with the role as it is now."""

    def record(self, user: SessionUser) -> None: ...

    def revoke(self, session_id: str) -> None: ...

    def current(self, user: SessionUser) -> SessionUser | None: ...


class SessionCodec:
    def __init__(self, secret_key: str, settings: SessionSettings, store: SessionStore | None = None):
        self.settings = settings
        self.store = store
        self._sessions = URLSafeTimedSerializer(secret_key, salt="b2cal-session")
        self._csrf = URLSafeTimedSerializer(secret_key, salt="b2cal-csrf")
        self._flash = URLSafeTimedSerializer(secret_key, salt="b2cal-flash")
        self._revoked: dict[str, float] = {}
        self._lock = threading.Lock()

    # sessions

    def issue(self, username: str, role: Role) -> tuple[str, SessionUser]:
        user = SessionUser(username=username, role=role, session_id=secrets.token_urlsafe(16))
        value = self._sessions.dumps({"u": user.username, "r": user.role.label, "s": user.session_id})
        if self.store is not None:
            self.store.record(user)
        return value, user

    def read(self, value: str | None) -> SessionUser | None:
        """The session's user, or None when the cookie is missing, forged, expired or logged out."""
        if not value:
            return None
        try:
            data = self._sessions.loads(value, max_age=self.settings.max_age_seconds)
            user = SessionUser(
                username=str(data["u"]), role=Role.parse(str(data["r"])), session_id=str(data["s"])
            )
        except (BadSignature, KeyError, TypeError, ValueError):
            return None
        if user.session_id in self._revoked:
            return None
        if self.store is not None:
            return self.store.current(user)
        return user

    def revoke(self, user: SessionUser) -> None:
        now = time.time()
        with self._lock:
            self._revoked = {sid: until for sid, until in self._revoked.items() if until > now}
            self._revoked[user.session_id] = now + self.settings.max_age_seconds
        if self.store is not None:
            self.store.revoke(user.session_id)

    @staticmethod
    def with_role(user: SessionUser, role: Role) -> SessionUser:
        return replace(user, role=role)

    def cookie_secure(self, conn: HTTPConnection) -> bool:
        if self.settings.cookie_secure == "auto":
            return conn.url.scheme in ("https", "wss")
        return self.settings.cookie_secure == "true"

    def set_session_cookie(self, response: Response, conn: HTTPConnection, value: str) -> None:
        response.set_cookie(
            SESSION_COOKIE,
            value,
            max_age=self.settings.max_age_seconds,
            path="/",
            httponly=True,
            samesite="lax",
            secure=self.cookie_secure(conn),
        )

    def clear_session_cookie(self, response: Response, conn: HTTPConnection) -> None:
        response.delete_cookie(
            SESSION_COOKIE, path="/", httponly=True, samesite="lax", secure=self.cookie_secure(conn)
        )

    # CSRF (double submit: nonce in a cookie, signed nonce in the form)

    def csrf_nonce(self, conn: HTTPConnection) -> tuple[str, bool]:
        """The browser's CSRF nonce and whether it is new (then it must be set as a cookie)."""
        nonce = conn.cookies.get(CSRF_COOKIE)
        if nonce and 16 <= len(nonce) <= 64:
            return nonce, False
        return secrets.token_urlsafe(24), True

    def session_id(self, conn: HTTPConnection) -> str:
        """The id in the request's session cookie if its signature holds (else ""), to bind CSRF tokens."""
        value = conn.cookies.get(SESSION_COOKIE)
        if not value:
            return ""
        try:
            return str(self._sessions.loads(value, max_age=self.settings.max_age_seconds)["s"])
        except (BadSignature, KeyError, TypeError, ValueError):
            return ""

    def csrf_token(self, nonce: str, conn: HTTPConnection | None = None) -> str:
        """The signed nonce, bound to the session of ``conn`` (none before login)."""
        return self._csrf.dumps([nonce, self.session_id(conn) if conn is not None else ""])

    def csrf_valid(self, conn: HTTPConnection, token: str | None) -> bool:
        """The token was made for this browser's nonce and this session: another session's token (or a
        planted nonce cookie with an attacker's token) is refused."""
        nonce = conn.cookies.get(CSRF_COOKIE)
        if not nonce or not token:
            return False
        try:
            signed = self._csrf.loads(token, max_age=self.settings.max_age_seconds)
        except BadSignature:
            return False
        if not isinstance(signed, list) or len(signed) != 2:
            return False
        return secrets.compare_digest(str(signed[0]), nonce) and secrets.compare_digest(
            str(signed[1]), self.session_id(conn)
        )

    def set_csrf_cookie(self, response: Response, conn: HTTPConnection, nonce: str) -> None:
        response.set_cookie(
            CSRF_COOKIE, nonce, path="/", httponly=True, samesite="strict", secure=self.cookie_secure(conn)
        )

    # flash messages: what a form did, shown once on the page it redirects to (post, redirect, get)

    def set_flash(self, response: Response, conn: HTTPConnection, kind: str, text: str) -> None:
        value = self._flash.dumps([kind, text[:2000], self.session_id(conn)])
        response.set_cookie(
            FLASH_COOKIE,
            value,
            path="/b2cal",
            max_age=FLASH_MAX_AGE_SECONDS,
            httponly=True,
            samesite="strict",
            secure=self.cookie_secure(conn),
        )

    def read_flash(self, conn: HTTPConnection) -> tuple[str, str]:
        """(kind, text) of this session's flash message, or ("", "")."""
        value = conn.cookies.get(FLASH_COOKIE)
        if not value:
            return "", ""
        try:
            kind, text, session = self._flash.loads(value, max_age=FLASH_MAX_AGE_SECONDS)
        except (BadSignature, TypeError, ValueError):
            return "", ""
        if not secrets.compare_digest(str(session), self.session_id(conn)):
            return "", ""
        return str(kind), str(text)

    @staticmethod
    def clear_flash(response: Response) -> None:
        response.delete_cookie(FLASH_COOKIE, path="/b2cal")
