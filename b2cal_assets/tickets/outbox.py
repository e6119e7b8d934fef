"""Ticket messages are stored first and sent later, so Jira being down never stops the calibration loop.

``post`` writes the rendered message to the calibration DB (once per dedup key). ``flush`` sends the
pending ones in order, per ticket: it finds or creates the issue once per (processing, calibration),
then comments, attaches files and reassigns. Each send is recorded as started before the request, so
after a crash the next flush asks Jira whether the comment or attachment is already there instead of
sending it twice. Without a client (no Jira configured) messages simply stay in the DB, where
``b2cal tickets`` shows them.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

from sqlalchemy.orm import Session

from b2cal_assets.db.repo import tickets as repo
from b2cal_assets.redaction import without_server_paths
from b2cal_assets.tickets.client import (
    TicketClient,
    TicketServiceError,
    TicketServiceUnavailable,
)
from b2cal_assets.tickets.messages import (
    RenderedMessage,
    TicketEvent,
    message_marker,
    render,
    ticket_label,
    ticket_summary,
)

log = logging.getLogger(__name__)

SessionFactory = Callable[[], AbstractContextManager[Session]]


@dataclass
class FlushReport:
    sent: int = 0
    pending: int = 0
    errors: list[str] = field(default_factory=list)
    jira_down: bool = False


def store_message(s: Session, msg: RenderedMessage) -> bool:
    """Store a rendered message once per dedup key (False: it was stored before), in the caller's
    transaction; without the server's paths, for tickets are read outside the server."""
    _, created = repo.add_message(
        s,
        processing=msg.processing,
        calibration=msg.calibration,
        kind=msg.kind,
        dedup_key=msg.dedup_key,
        body=without_server_paths(msg.body),
        attachments=[dict(a) for a in msg.attachments],
    )
    return created


class TicketOutbox:
    """``session_factory()`` yields a Session (``lambda: session_scope(engine)`` or a ``sessionmaker``)."""

    def __init__(self, session_factory: SessionFactory, client: TicketClient | None = None) -> None:
        self._sessions = session_factory
        self.client = client

    def post(self, event: TicketEvent) -> bool:
        """Store the event's message; False when the same message (same dedup key) was already stored."""
        with self._sessions() as s:
            created = store_message(s, render(event))
            s.commit()
        return created

    def flush(self) -> FlushReport:
        """Send what is pending. Never raises for the tracker being down or refusing: see ``FlushReport``."""
        with self._sessions() as s:
            pending = repo.pending_messages(s)
        report = FlushReport(pending=len(pending))
        if self.client is None or not pending:
            return report
        groups: dict[tuple[int, str], list[repo.PendingMessage]] = {}
        for m in pending:
            groups.setdefault((m.processing_id, m.calibration), []).append(m)
        for messages in groups.values():
            key = next((m.ticket_key for m in messages if m.ticket_key), "")
            for m in messages:
                try:
                    key = self._send(m, key)
                except TicketServiceError as exc:
                    error = str(exc) or type(exc).__name__
                    self._record_failure(m.id, error)
                    report.errors.append(f"{m.dedup_key}: {error}")
                    if isinstance(exc, TicketServiceUnavailable):
                        report.jira_down = True
                        log.warning("Jira unavailable, %d ticket message(s) wait: %s", report.pending, error)
                        return report
                    break  # keep this ticket's order: its later messages wait for this one
                report.sent += 1
                report.pending -= 1
        return report

    def _record_failure(self, message_id: int, error: str) -> None:
        with self._sessions() as s:
            repo.mark_failed(s, message_id, error)
            s.commit()

    def _client_call(self, fn: Callable[[], object]) -> object:
        """Anything a client raises counts as a tracker error, so a client bug cannot stop the loop."""
        try:
            return fn()
        except TicketServiceError:
            raise
        except Exception as exc:
            raise TicketServiceError(f"{type(exc).__name__}: {exc}") from exc

    def _ensure_issue(self, m: repo.PendingMessage) -> tuple[str, bool]:
        """The issue's key, and whether it was created now (with this message as its description)."""
        client = self.client
        assert client is not None
        label = ticket_label(m.processing, m.calibration)
        found = self._client_call(lambda: client.find_issue(label=label))
        if found:
            return str(found), False
        with self._sessions() as s:
            expert, deadline = repo.ticket_owner(s, m.processing_id, m.calibration)
        description = (
            m.body
            if m.kind == "created"
            else f"Calibration *{m.calibration}* in processing *{m.processing}*."
        )
        key = self._client_call(
            lambda: client.create_issue(
                summary=ticket_summary(m.processing, m.calibration),
                description=description,
                assignee=expert,
                due_date=_due(deadline),
                label=label,
            )
        )
        return str(key), True

    def _send(self, m: repo.PendingMessage, key: str) -> str:
        client = self.client
        assert client is not None
        retrying = bool(m.last_error)
        created_now = False
        if not key:
            key, created_now = self._ensure_issue(m)
            with self._sessions() as s:
                repo.set_ticket_key(s, m.processing_id, m.calibration, key)
                s.commit()
        if m.kind == "created" and (created_now or retrying):
            # its text is the description (now, or on the issue found again after a lost reply)
            with self._sessions() as s:
                repo.mark_sent(s, m.id, key)
                s.commit()
            return key

        with self._sessions() as s:
            repo.mark_sending(s, m.id)
            s.commit()
        notes: list[str] = []
        if m.attachments:
            present = self._client_call(lambda: client.attachments(key)) if retrying else set()
            for att in m.attachments:
                name, path = str(att.get("name") or Path(att["path"]).name), Path(att["path"])
                if not path.is_file():
                    notes.append(f"({name} could not be attached: {path} is gone)")
                    continue
                if (name, path.stat().st_size) in present:  # type: ignore[operator]
                    continue  # sent before a crash or a lost reply
                self._client_call(functools.partial(client.add_attachment, key, path, name))
        if m.kind == "reassigned":
            with self._sessions() as s:
                expert, _ = repo.ticket_owner(s, m.processing_id, m.calibration)
            if expert:
                self._client_call(lambda: client.assign(key, expert))
        marker = message_marker(m.dedup_key)
        if not (retrying and self._client_call(lambda: client.has_comment_containing(key, marker))):
            body = "\n".join([m.body, *notes, "", f"{{color:#97a0af}}{marker}{{color}}"])
            self._client_call(lambda: client.add_comment(key, body))
        with self._sessions() as s:
            repo.mark_sent(s, m.id, key)
            s.commit()
        return key


def _due(deadline: datetime | None) -> date | None:
    return None if deadline is None else deadline.date()
