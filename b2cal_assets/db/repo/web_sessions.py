"""The served UI's sessions: recorded at login, revoked at logout, their role refreshed."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from b2cal_assets.db.models import WebSession, utcnow


def record_session(s: Session, session_id: str, username: str, role: str) -> WebSession:
    now = utcnow()
    row = WebSession(session_id=session_id, username=username, role=role, issued_at=now, checked_at=now)
    s.add(row)
    s.flush()
    return row


def get_session(s: Session, session_id: str) -> WebSession | None:
    return s.get(WebSession, session_id)


def revoke_session(s: Session, session_id: str, at: datetime | None = None) -> None:
    """Revoked for good (logout, or the user lost every b2cal group); unknown ids are ignored."""
    row = s.get(WebSession, session_id)
    if row is not None and row.revoked_at is None:
        row.revoked_at = at or utcnow()


def refresh_role(s: Session, session_id: str, role: str, at: datetime | None = None) -> None:
    row = s.get(WebSession, session_id)
    if row is not None:
        row.role = role
        row.checked_at = at or utcnow()
