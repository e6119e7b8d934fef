"""The audit log: who changed what, and when."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from b2cal_assets.db.errors import InvalidValue
from b2cal_assets.db.models import AuditEntry


def record_audit(
    session: Session,
    user: str,
    action: str,
    processing: str = "",
    calibration: str = "",
    details: dict[str, Any] | None = None,
) -> AuditEntry:
    """Append one entry; in the same transaction as the change it describes, so both or neither are kept."""
    if not user or not action:
        raise InvalidValue("an audit entry needs a user and an action")
    entry = AuditEntry(
        user=user[:64],
        action=action[:64],
        processing=processing or "",
        calibration=calibration or "",
        details=dict(details or {}),
    )
    session.add(entry)
    session.flush()
    return entry


def list_audit(
    session: Session,
    *,
    processing: str | None = None,
    calibration: str | None = None,
    user: str | None = None,
    action: str | None = None,
    since: datetime | None = None,
    limit: int = 100,
) -> list[AuditEntry]:
    """The newest entries first, filtered by any of processing, calibration, user, action and time."""
    if limit < 1:
        raise InvalidValue(f"the limit must be at least 1; got {limit}")
    query = select(AuditEntry)
    if processing:
        query = query.where(AuditEntry.processing == processing)
    if calibration:
        query = query.where(AuditEntry.calibration == calibration)
    if user:
        query = query.where(AuditEntry.user == user)
    if action:
        query = query.where(AuditEntry.action == action)
    if since is not None:
        query = query.where(AuditEntry.at >= since)
    return list(session.scalars(query.order_by(AuditEntry.id.desc()).limit(limit)))


def entries_after(session: Session, last_id: int, *, limit: int = 500) -> list[AuditEntry]:
    """Entries with an id above ``last_id``, oldest first: a follower's cursor (the decisions sensor)."""
    if limit < 1:
        raise InvalidValue(f"the limit must be at least 1; got {limit}")
    query = select(AuditEntry).where(AuditEntry.id > last_id).order_by(AuditEntry.id).limit(limit)
    return list(session.scalars(query))
