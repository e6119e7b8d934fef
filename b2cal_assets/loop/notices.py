"""Ticket messages for the managers' actions, held submissions, uploads and the staging tag.

They complete ``tickets.messages`` (the events of a calibration's run) with what a person did to the
loop, so that every step is in the ticket. Each renders to the same ``RenderedMessage`` with a dedup
key naming its occurrence (attempt number or action count), so a repeated call stores it once.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from b2cal_assets.tickets.messages import RenderedMessage, dedup_key


def _when(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC")


@dataclass(frozen=True)
class Held:
    """An expert submitted inside the window at a site that starts jobs only at the deadline."""

    processing: str
    calibration: str
    attempt: int
    submitted_by: str
    deadline: datetime
    expert_config: dict[str, Any] = field(default_factory=dict)

    def rendered(self) -> RenderedMessage:
        settings = json.dumps(self.expert_config, sort_keys=True) if self.expert_config else "the defaults"
        body = (
            f"{self.submitted_by} submitted *{self.calibration}* (attempt {self.attempt}) with {settings}. "
            f"This site starts jobs only when the window closes: it runs at {_when(self.deadline)} with "
            "these settings (a later submission before then replaces them)."
        )
        key = dedup_key(self.processing, self.calibration, "held", self.attempt)
        return RenderedMessage(self.processing, self.calibration, "held", key, body)


@dataclass(frozen=True)
class Queued:
    """An expert submitted outside Dagster at a site that starts jobs at once: it starts at the next tick."""

    processing: str
    calibration: str
    attempt: int
    submitted_by: str
    expert_config: dict[str, Any] = field(default_factory=dict)

    def rendered(self) -> RenderedMessage:
        settings = json.dumps(self.expert_config, sort_keys=True) if self.expert_config else "the defaults"
        body = (
            f"{self.submitted_by} submitted *{self.calibration}* (attempt {self.attempt}) with {settings}. "
            "It starts at the loop's next tick."
        )
        key = dedup_key(self.processing, self.calibration, "queued", self.attempt)
        return RenderedMessage(self.processing, self.calibration, "queued", key, body)


@dataclass(frozen=True)
class Excluded:
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
class Included:
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
class Restarted:
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
class Uploaded:
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


NOTICES = (Held, Queued, Excluded, Included, Restarted, Uploaded)
