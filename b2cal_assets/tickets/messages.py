"""What a calibration's ticket says at each event of the loop, and the key that makes it said only once.

Pure functions: an event in, a ``RenderedMessage`` out. The dedup key names the processing, the
calibration, the event and its attempt (or occurrence), so a sensor re-tick, a Dagster retry or a
daemon restart that posts the same event again maps onto the same stored message.
Bodies use Jira wiki markup, which also reads well as plain text in ``b2cal tickets``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

LOG_TAIL_LINES = 40
LOG_TAIL_CHARS = 6000


@dataclass(frozen=True)
class Created:
    """The calibration joined a processing: its ticket is opened and assigned to the expert."""

    processing: str
    calibration: str
    expert: str
    deadline: datetime | None
    window_hours: float = 48.0


@dataclass(frozen=True)
class WindowOpen:
    """The calibration's inputs are ready: the expert may submit it with their settings until the deadline."""

    processing: str
    calibration: str
    deadline: datetime
    occurrence: int = 1


@dataclass(frozen=True)
class Submitted:
    """An attempt was launched, by a person or by ``auto`` once the deadline passed."""

    processing: str
    calibration: str
    attempt: int
    submitted_by: str
    expert_config: dict[str, Any] = field(default_factory=dict)
    job_config: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Failed:
    """An attempt failed: which subjob, the end of its log, and where the full logs are."""

    processing: str
    calibration: str
    attempt: int
    subjob: str
    log_tail: str
    log_location: str


@dataclass(frozen=True)
class CheckVerdict:
    name: str
    passed: bool
    description: str = ""


@dataclass(frozen=True)
class Finished:
    """An attempt finished: the validation verdict and its plots (sent as attachments)."""

    processing: str
    calibration: str
    attempt: int
    passed: bool
    checks: tuple[CheckVerdict, ...] = ()
    plots: tuple[Path, ...] = ()
    payloads: tuple[str, ...] = ()


@dataclass(frozen=True)
class SignedOff:
    processing: str
    calibration: str
    attempt: int
    by: str
    automatic: bool = False
    comment: str = ""


@dataclass(frozen=True)
class Rejected:
    processing: str
    calibration: str
    attempt: int
    by: str
    comment: str = ""


@dataclass(frozen=True)
class Reassigned:
    """A manager gave the calibration to another expert; the ticket's assignee follows."""

    processing: str
    calibration: str
    old_expert: str
    new_expert: str
    by: str
    occurrence: int = 1


TicketEvent = Created | WindowOpen | Submitted | Failed | Finished | SignedOff | Rejected | Reassigned


@dataclass(frozen=True)
class RenderedMessage:
    processing: str
    calibration: str
    kind: str
    dedup_key: str
    body: str
    attachments: tuple[dict[str, str], ...] = ()


def ticket_summary(processing: str, calibration: str) -> str:
    return f"[{processing}] {calibration}"


def ticket_label(processing: str, calibration: str) -> str:
    """A Jira label (no spaces) that finds this ticket again if the local ticket key was lost."""
    return "b2cal_" + re.sub(r"[^A-Za-z0-9_.\-]", "-", f"{processing}__{calibration}")


def message_marker(dedup_key: str) -> str:
    """A footer put in each comment so a comment sent just before a crash is recognised, not re-sent."""
    return f"b2cal message {dedup_key}"


def dedup_key(processing: str, calibration: str, kind: str, occurrence: int | str | None = None) -> str:
    key = f"{processing}/{calibration}/{kind}"
    return key if occurrence is None else f"{key}/{occurrence}"


def _when(moment: datetime | None) -> str:
    return "no deadline" if moment is None else moment.strftime("%Y-%m-%d %H:%M UTC")


def _config_block(title: str, config: dict[str, Any]) -> str:
    if not config:
        return f"{title}: defaults"
    return f"{title}:\n{{code:json}}\n{json.dumps(config, indent=2, sort_keys=True, default=str)}\n{{code}}"


def tail(text: str, lines: int = LOG_TAIL_LINES, chars: int = LOG_TAIL_CHARS) -> str:
    """The end of a log, short enough for a comment."""
    kept = "\n".join(text.rstrip("\n").splitlines()[-lines:])
    return kept[-chars:]


def render_created(e: Created) -> RenderedMessage:
    who = f"[~{e.expert}]" if e.expert else "no expert assigned yet"
    body = (
        f"Calibration *{e.calibration}* is part of processing *{e.processing}*.\n"
        f"Expert: {who}.\n"
        f"Submission deadline: {_when(e.deadline)}. Until then you may submit it with your own settings "
        f"(window {e.window_hours:g} h); afterwards it runs with the default settings."
    )
    return RenderedMessage(
        e.processing, e.calibration, "created", dedup_key(e.processing, e.calibration, "created"), body
    )


def render_window_open(e: WindowOpen) -> RenderedMessage:
    body = (
        f"The input data of *{e.calibration}* in *{e.processing}* are ready and its upstream calibrations "
        f"are signed off. Submit it with your settings before {_when(e.deadline)}; after that it is "
        "submitted automatically with the defaults."
    )
    key = dedup_key(e.processing, e.calibration, "window_open", e.occurrence)
    return RenderedMessage(e.processing, e.calibration, "window_open", key, body)


def render_submitted(e: Submitted) -> RenderedMessage:
    who = (
        "automatically with the default settings (deadline passed)"
        if e.submitted_by == "auto"
        else (f"by {e.submitted_by}")
    )
    body = "\n".join(
        [
            f"Attempt {e.attempt} of *{e.calibration}* was submitted {who}.",
            _config_block("Expert settings", e.expert_config),
            _config_block("Job settings", e.job_config),
        ]
    )
    key = dedup_key(e.processing, e.calibration, "submitted", e.attempt)
    return RenderedMessage(e.processing, e.calibration, "submitted", key, body)


def render_failed(e: Failed) -> RenderedMessage:
    body = (
        f"Attempt {e.attempt} of *{e.calibration}* failed in {e.subjob}.\n"
        f"Last lines of its log:\n{{noformat}}\n{tail(e.log_tail)}\n{{noformat}}\n"
        f"Full logs: attempt {e.attempt} on the calibration page /b2cal/processing/{e.processing}/{e.calibration}"
    )
    key = dedup_key(e.processing, e.calibration, "failed", e.attempt)
    return RenderedMessage(e.processing, e.calibration, "failed", key, body)


def render_finished(e: Finished) -> RenderedMessage:
    verdict = "passed" if e.passed else "FAILED"
    lines = [f"Attempt {e.attempt} of *{e.calibration}* finished. Validation {verdict}."]
    for check in e.checks:
        mark = "(/)" if check.passed else "(x)"
        lines.append(f"* {mark} {check.name}" + (f": {check.description}" if check.description else ""))
    if e.payloads:
        lines.append("Payloads: " + ", ".join(e.payloads))
    if e.plots:
        lines.append("Validation plots attached: " + ", ".join(p.name for p in e.plots))
    key = dedup_key(e.processing, e.calibration, "finished", e.attempt)
    attachments = tuple({"path": str(p), "name": p.name} for p in e.plots)
    return RenderedMessage(e.processing, e.calibration, "finished", key, "\n".join(lines), attachments)


def render_signed_off(e: SignedOff) -> RenderedMessage:
    how = "automatically (validation passed)" if e.automatic else f"by {e.by}"
    body = f"The payloads of attempt {e.attempt} of *{e.calibration}* were signed off {how}."
    if e.comment:
        body += f"\n{e.comment}"
    body += "\nDownstream calibrations may now start."
    key = dedup_key(e.processing, e.calibration, "signed_off", e.attempt)
    return RenderedMessage(e.processing, e.calibration, "signed_off", key, body)


def render_rejected(e: Rejected) -> RenderedMessage:
    body = f"The payloads of attempt {e.attempt} of *{e.calibration}* were rejected by {e.by}."
    if e.comment:
        body += f"\nReason: {e.comment}"
    body += "\nResubmit the calibration or upload replacement payloads."
    key = dedup_key(e.processing, e.calibration, "rejected", e.attempt)
    return RenderedMessage(e.processing, e.calibration, "rejected", key, body)


def render_reassigned(e: Reassigned) -> RenderedMessage:
    old = f"[~{e.old_expert}]" if e.old_expert else "nobody"
    body = f"*{e.calibration}* was reassigned from {old} to [~{e.new_expert}] by {e.by}."
    key = dedup_key(e.processing, e.calibration, "reassigned", e.occurrence)
    return RenderedMessage(e.processing, e.calibration, "reassigned", key, body)


_RENDERERS = {
    Created: render_created,
    WindowOpen: render_window_open,
    Submitted: render_submitted,
    Failed: render_failed,
    Finished: render_finished,
    SignedOff: render_signed_off,
    Rejected: render_rejected,
    Reassigned: render_reassigned,
}


def render(event: TicketEvent) -> RenderedMessage:
    try:
        renderer = _RENDERERS[type(event)]
    except KeyError:
        raise TypeError(f"no ticket message for {type(event).__name__}") from None
    return renderer(event)  # type: ignore[operator]
