"""Ticket messages: the outbox table that holds every message until Jira has it (or forever, without Jira)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from b2cal_assets.db.models import Processing, ProcessingCalibration, TicketMessage, utcnow
from b2cal_assets.db.repo.processings import get_processing


def add_message(
    s: Session,
    *,
    processing: str,
    calibration: str,
    kind: str,
    dedup_key: str,
    body: str,
    attachments: list[dict[str, Any]] | None = None,
) -> tuple[TicketMessage, bool]:
    """Store a message once: a second add with the same ``dedup_key`` returns the first (and False).

    An unknown processing raises ``NotFound``.
    """
    existing = s.scalar(select(TicketMessage).where(TicketMessage.dedup_key == dedup_key))
    if existing is not None:
        return existing, False
    message = TicketMessage(
        processing_id=get_processing(s, processing).id,
        calibration=calibration,
        kind=kind,
        dedup_key=dedup_key,
        body=body,
        attachments=list(attachments or []),
        ticket_key=ticket_key_for(s, processing, calibration) or "",
    )
    try:
        with s.begin_nested():
            s.add(message)
    except IntegrityError:  # another process stored the same key between our select and insert
        existing = s.scalar(select(TicketMessage).where(TicketMessage.dedup_key == dedup_key))
        if existing is None:
            raise
        return existing, False
    return message, True


def ticket_key_for(s: Session, processing: str, calibration: str) -> str | None:
    """The Jira key already known for this processing's calibration, if any message carries one."""
    return s.scalar(
        select(TicketMessage.ticket_key)
        .join(Processing, Processing.id == TicketMessage.processing_id)
        .where(Processing.name == processing, TicketMessage.calibration == calibration)
        .where(TicketMessage.ticket_key != "")
        .limit(1)
    )


def set_ticket_key(s: Session, processing_id: int, calibration: str, key: str) -> None:
    s.execute(
        update(TicketMessage)
        .where(TicketMessage.processing_id == processing_id, TicketMessage.calibration == calibration)
        .values(ticket_key=key)
    )


@dataclass(frozen=True)
class PendingMessage:
    id: int
    processing: str
    processing_id: int
    calibration: str
    kind: str
    dedup_key: str
    body: str
    attachments: list[dict[str, Any]]
    ticket_key: str
    last_error: str


def pending_messages(s: Session) -> list[PendingMessage]:
    """Messages not yet sent, oldest first (the order they happened in)."""
    rows = s.execute(
        select(TicketMessage, Processing.name)
        .join(Processing, Processing.id == TicketMessage.processing_id)
        .where(TicketMessage.sent_at.is_(None))
        .order_by(TicketMessage.id)
    ).all()
    return [
        PendingMessage(
            id=m.id,
            processing=name,
            processing_id=m.processing_id,
            calibration=m.calibration,
            kind=m.kind,
            dedup_key=m.dedup_key,
            body=m.body,
            attachments=list(m.attachments or []),
            ticket_key=m.ticket_key,
            last_error=m.last_error,
        )
        for m, name in rows
    ]


def mark_sending(s: Session, message_id: int) -> None:
    """Recorded before the request: if we crash mid-send, the next flush checks Jira before re-sending."""
    s.execute(update(TicketMessage).where(TicketMessage.id == message_id).values(last_error="sending"))


def mark_sent(s: Session, message_id: int, ticket_key: str, at: datetime | None = None) -> None:
    s.execute(
        update(TicketMessage)
        .where(TicketMessage.id == message_id)
        .values(sent_at=at or utcnow(), ticket_key=ticket_key, last_error="")
    )


def mark_failed(s: Session, message_id: int, error: str) -> None:
    s.execute(
        update(TicketMessage)
        .where(TicketMessage.id == message_id)
        .values(last_error=error or "unknown error")
    )


def ticket_owner(s: Session, processing_id: int, calibration: str) -> tuple[str, datetime | None]:
    """The calibration's current expert and deadline: the ticket's assignee and due date."""
    row = s.execute(
        select(ProcessingCalibration.expert_username, ProcessingCalibration.deadline).where(
            ProcessingCalibration.processing_id == processing_id,
            ProcessingCalibration.calibration == calibration,
        )
    ).first()
    return (row[0] or "", row[1]) if row else ("", None)


def list_messages(
    s: Session, *, processing: str | None = None, calibration: str | None = None
) -> list[tuple[TicketMessage, str]]:
    """Messages with their processing name, oldest first, for ``b2cal tickets``."""
    query = select(TicketMessage, Processing.name).join(
        Processing, Processing.id == TicketMessage.processing_id
    )
    if processing is not None:
        query = query.where(Processing.name == processing)
    if calibration is not None:
        query = query.where(TicketMessage.calibration == calibration)
    return [(m, name) for m, name in s.execute(query.order_by(TicketMessage.id)).all()]
