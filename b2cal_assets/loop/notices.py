"""Ticket messages for the managers' actions, held submissions, uploads and the staging tag.

They complete ``tickets.messages`` (the events of a calibration's run) with what a person did to the
loop, so that every step is in the ticket. Each renders to the same ``RenderedMessage`` with a dedup
key naming its occurrence (attempt number or action count), so a repeated call stores it once.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from b2cal_assets.loop.steps import CDST_STEP
from b2cal_assets.tickets import messages as ticket_events
from b2cal_assets.tickets.messages import RenderedMessage, TicketEvent, dedup_key
from b2cal_assets.tickets.outbox import store_message


class LoopEvent(ABC):
    """A ticket message of the loop's own (the run's events are ``tickets.messages``): renders itself."""

    processing: str
    calibration: str

    @abstractmethod
    def rendered(self) -> RenderedMessage:
        """The message and its dedup key."""


def post_in_session(s: Session, events: Iterable[LoopEvent | TicketEvent]) -> None:
    """Store the ticket messages of a decision in the decision's own transaction."""
    for event in events:
        if event.calibration == CDST_STEP:
            continue
        msg = event.rendered() if isinstance(event, LoopEvent) else ticket_events.render(event)
        store_message(s, msg)


def _when(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC")


@dataclass(frozen=True)
class Held(LoopEvent):
    """An expert submitted inside the window at a site that starts jobs only at the deadline."""

    processing: str
    calibration: str
    attempt: int
    submitted_by: str
    deadline: datetime
    expert_config: dict[str, Any] = field(default_factory=dict)

    def rendered(self) -> RenderedMessage:
        settings = _settings_text(self.expert_config)
        body = (
            f"{self.submitted_by} submitted *{self.calibration}* (attempt {self.attempt}) with {settings}. "
            f"This site starts jobs only when the window closes: it runs at {_when(self.deadline)} with "
            "these settings (a later submission before then replaces them)."
        )
        key = dedup_key(self.processing, self.calibration, "held", self.attempt)
        return RenderedMessage(self.processing, self.calibration, "held", key, body)


def _settings_text(expert_config: dict[str, Any]) -> str:
    """How a submission's settings read in a ticket: the overrides as JSON, else "the defaults"."""
    return json.dumps(expert_config, sort_keys=True) if expert_config else "the defaults"


@dataclass(frozen=True)
class Queued(LoopEvent):
    """An expert submitted outside Dagster at a site that starts jobs at once: it starts at the next tick."""

    processing: str
    calibration: str
    attempt: int
    submitted_by: str
    expert_config: dict[str, Any] = field(default_factory=dict)

    def rendered(self) -> RenderedMessage:
        settings = _settings_text(self.expert_config)
        body = (
            f"{self.submitted_by} submitted *{self.calibration}* (attempt {self.attempt}) with {settings}. "
            "It starts at the loop's next tick."
        )
        key = dedup_key(self.processing, self.calibration, "queued", self.attempt)
        return RenderedMessage(self.processing, self.calibration, "queued", key, body)


@dataclass(frozen=True)
class Excluded(LoopEvent):
    processing: str
    calibration: str
    by: str
    reason: str
    occurrence: int
    dependents: tuple[str, ...] = ()

    def rendered(self) -> RenderedMessage:
        body = f"*{self.calibration}* was excluded from *{self.processing}* by {self.by}."
        if self.reason:
            body += f"\nReason: {self.reason}"
        if self.dependents:
            body += (
                f"\nIts dependents ({', '.join(self.dependents)}) use the payloads already in the "
                "processing's global-tag chain instead of new ones."
            )
        key = dedup_key(self.processing, self.calibration, "excluded", self.occurrence)
        return RenderedMessage(self.processing, self.calibration, "excluded", key, body)


@dataclass(frozen=True)
class Included(LoopEvent):
    processing: str
    calibration: str
    by: str
    occurrence: int

    def rendered(self) -> RenderedMessage:
        body = (
            f"*{self.calibration}* was included in *{self.processing}* again by {self.by}; its window "
            "opens when its inputs are ready."
        )
        key = dedup_key(self.processing, self.calibration, "included", self.occurrence)
        return RenderedMessage(self.processing, self.calibration, "included", key, body)


@dataclass(frozen=True)
class Restarted(LoopEvent):
    processing: str
    calibration: str
    attempt: int
    previous: int | None
    by: str
    previous_workdir: str = ""

    def rendered(self) -> RenderedMessage:
        body = f"{self.by} restarted *{self.calibration}*: attempt {self.attempt} runs with the same settings"
        if self.previous:
            body += f" as attempt {self.previous}"
        body += "."
        if self.previous_workdir:
            body += f"\nThe logs of attempt {self.previous} are kept (the calibration page has them)."
        key = dedup_key(self.processing, self.calibration, "restarted", self.attempt)
        return RenderedMessage(self.processing, self.calibration, "restarted", key, body)


@dataclass(frozen=True)
class Uploaded(LoopEvent):
    """An expert replaced the payloads: new revisions, the old ones kept, the checks run again."""

    processing: str
    calibration: str
    attempt: int
    by: str
    archive: str
    payloads: tuple[str, ...]
    replaced: tuple[str, ...] = ()

    def rendered(self) -> RenderedMessage:
        lines = [
            f"{self.by} uploaded replacement payloads for *{self.calibration}* ({self.archive}), "
            f"stored as attempt {self.attempt}.",
            "New: " + ", ".join(self.payloads),
        ]
        if self.replaced:
            lines.append("Kept as earlier revisions: " + ", ".join(self.replaced))
        lines.append("The payload checks run again; sign-off follows the site's policy.")
        key = dedup_key(self.processing, self.calibration, "uploaded", self.attempt)
        return RenderedMessage(self.processing, self.calibration, "uploaded", key, "\n".join(lines))
