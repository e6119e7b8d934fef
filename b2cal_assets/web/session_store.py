"""Sessions in the calibration database (``web_session``): one record per login, shared by every
webserver process and kept across restarts; the role is re-read from LDAP every ``refresh_seconds``."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta

from b2cal_assets.db.engine import database_url, make_engine, session_scope
from b2cal_assets.db.models import utcnow
from b2cal_assets.db.repo import web_sessions
from b2cal_assets.web.roles import Role
from b2cal_assets.web.sessions import SessionUser

log = logging.getLogger(__name__)

DEFAULT_REFRESH_SECONDS = 300.0

# user name -> the role LDAP gives them now (None: no b2cal group any more); raises when LDAP is down
RoleLookup = Callable[[str], Role | None]


class DbSessionStore:
    def __init__(
        self,
        engine=None,
        *,
        refresh: RoleLookup | None = None,
        refresh_seconds: float = DEFAULT_REFRESH_SECONDS,
    ):
        self._engine = engine
        self.refresh = refresh
        self.refresh_seconds = refresh_seconds

    @property
    def engine(self):
        if self._engine is None:
            self._engine = make_engine(database_url())
        return self._engine

    def record(self, user: SessionUser) -> None:
        with session_scope(self.engine) as s:
            web_sessions.record_session(s, user.session_id, user.username, user.role.label)

    def revoke(self, session_id: str) -> None:
        with session_scope(self.engine) as s:
            web_sessions.revoke_session(s, session_id)

    def current(self, user: SessionUser) -> SessionUser | None:
        with session_scope(self.engine) as s:
            row = web_sessions.get_session(s, user.session_id)
            if row is None or row.revoked_at is not None or row.username != user.username:
                return None
            role = Role.parse(row.role)
            now = utcnow()
            if self.refresh is not None and now - row.checked_at >= timedelta(seconds=self.refresh_seconds):
                try:
                    fresh = self.refresh(user.username)
                except Exception as exc:  # LDAP down: keep the role it had, try again next request
                    log.warning("could not re-read the groups of %s: %s", user.username, exc)
                    return SessionUser(user.username, role, user.session_id)
                if fresh is None:
                    log.warning("%s is in no b2cal group any more: session ended", user.username)
                    web_sessions.revoke_session(s, user.session_id, now)
                    return None
                web_sessions.refresh_role(s, user.session_id, fresh.label, now)
                role = fresh
        return SessionUser(user.username, role, user.session_id)
