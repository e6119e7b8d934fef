"""The small surface the outbox needs from an issue tracker; ``JiraTicketClient`` is the real one."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Protocol


class TicketServiceError(Exception):
    """The tracker did not do what was asked; the message stays pending and is tried again."""


class TicketServiceUnavailable(TicketServiceError):
    """Connection refused, timeout, 5xx or 429: the tracker is down, stop this flush and retry later."""


class TicketRequestRejected(TicketServiceError):
    """A 4xx answer (bad project, unknown user, ...): this ticket waits, the others are still sent."""


class TicketClient(Protocol):
    def find_issue(self, *, label: str) -> str | None:
        """The key of an existing issue carrying ``label``, or None."""
        ...

    def create_issue(
        self, *, summary: str, description: str, assignee: str, due_date: date | None, label: str
    ) -> str:
        """Create an issue in the configured project and return its key."""
        ...

    def add_comment(self, key: str, body: str) -> None: ...

    def has_comment_containing(self, key: str, text: str) -> bool: ...

    def add_attachment(self, key: str, path: Path, name: str) -> None: ...

    def attachments(self, key: str) -> set[tuple[str, int]]:
        """(file name, size) of the issue's attachments."""
        ...

    def assign(self, key: str, assignee: str) -> None: ...
