"""What the calibration pages show, read through the loop service: plain frozen rows, no HTML, no HTTP.

The status rows, jobs and payloads come from ``LoopService`` itself (the CLI shows the same); the
attempt list and the recent audit entries are read from the calibration database next to it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from b2cal_assets.db.errors import NotFound
from b2cal_assets.db.repo import attempts as attempt_repo
from b2cal_assets.db.repo import audit as audit_repo
from b2cal_assets.db.repo import calibrations as calibration_repo
from b2cal_assets.domain.iov import IoV
from b2cal_assets.domain.names import real_name
from b2cal_assets.loop.decisions import shown_attempt_state
from b2cal_assets.loop.records import PayloadView, SiteView
from b2cal_assets.loop.service import JobRow, LoopError, LoopService, StepRow
from b2cal_assets.loop.uploads import UPLOAD_KEY

HISTORY_LENGTH = 25


@dataclass(frozen=True)
class AttemptView:
    number: int
    state: str
    submitted_by: str
    submitted_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    iterations: int
    expert_config: dict[str, Any]
    job_config: dict[str, Any]
    error: str
    workdir: str

    @property
    def is_upload(self) -> bool:
        return UPLOAD_KEY in self.job_config


@dataclass(frozen=True)
class AuditView:
    at: datetime
    user: str
    action: str
    details: dict[str, Any]


@dataclass(frozen=True)
class CalibrationView:
    """Everything the page of one calibration (step) in one processing shows."""

    processing: str
    calibration: str
    row: StepRow
    is_calibration: bool  # False for the cDST production step: nothing to submit, sign off or upload
    iov: IoV
    site: SiteView
    defaults: dict[str, Any]  # the script's expert_config
    attempts: list[AttemptView]
    jobs: list[JobRow]
    payloads: list[PayloadView]
    history: list[AuditView]


def status_by_processing(service: LoopService) -> list[tuple[str, list[StepRow]]]:
    return [(name, service.status_rows(name)) for name in service.all_processing_names()]


def assigned_expert(service: LoopService, processing: str, calibration: str) -> str | None:
    """The expert the calibration database names for this calibration in this processing
    (``calibration`` may be the Dagster name an asset key carries)."""
    calibration = real_name(calibration, service.scripts.calibrations)
    with service.session() as s:
        try:
            return calibration_repo.get_calibration(s, processing, calibration).expert_username or None
        except NotFound:
            return None


def calibration_view(service: LoopService, processing: str, calibration: str) -> CalibrationView:
    """The page's content; ``LoopError`` names what exists when the processing or step does not."""
    names = service.all_processing_names()
    if processing not in names:
        raise LoopError(f"no processing named {processing!r}; known: {', '.join(names) or 'none'}")
    rows = {row.step: row for row in service.status_rows(processing)}
    if calibration not in rows:
        known = ", ".join(rows) or "none yet (the loop has not looked at this processing)"
        raise LoopError(f"no calibration {calibration!r} in processing {processing}; known: {known}")
    script = service.scripts.calibrations.get(calibration)
    site = service.site_of(processing)
    with service.session() as s:
        attempts = [
            AttemptView(
                a.number,
                shown_attempt_state(a.state, site_holds_jobs=site.hold_until_deadline),
                a.submitted_by,
                a.submitted_at,
                a.started_at,
                a.finished_at,
                a.iterations,
                dict(a.expert_config or {}),
                dict(a.job_config or {}),
                a.error or "",
                a.workdir or "",
            )
            for a in attempt_repo.list_attempts(s, processing, calibration)
        ]
        history = [
            AuditView(e.at, e.user, e.action, dict(e.details or {}))
            for e in audit_repo.list_audit(
                s, processing=processing, calibration=calibration, limit=HISTORY_LENGTH
            )
        ]
    return CalibrationView(
        processing=processing,
        calibration=calibration,
        row=rows[calibration],
        is_calibration=script is not None,
        iov=service.processing_iov(processing),
        site=site,
        defaults=dict(script.settings.expert_config or {}) if script is not None else {},
        attempts=list(reversed(attempts)),  # newest first
        jobs=service.job_rows(processing, calibration) if script is not None else [],
        payloads=service.current_payloads(processing, calibration) if script is not None else [],
        history=history,
    )
