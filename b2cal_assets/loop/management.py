"""The managers' actions and the payload replacement, shared by the CLI and the web pages."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from b2cal_assets.db.models import Attempt
from b2cal_assets.db.repo import attempts, audit, calibrations, processings
from b2cal_assets.domain.iov import IoV
from b2cal_assets.domain.states import LIVE_ATTEMPT_STATES, AttemptState, CalibrationState, ProcessingState
from b2cal_assets.loop.attempt_rules import reopen_for_start
from b2cal_assets.loop.context import LoopContext
from b2cal_assets.loop.job_inputs import JobInputs
from b2cal_assets.loop.notices import Excluded, Included, Restarted
from b2cal_assets.loop.records import AUTO_USER, LoopError, is_reserved_username
from b2cal_assets.loop.staging import StagingResult, export_staging
from b2cal_assets.loop.steps import CDST_STEP
from b2cal_assets.loop.transitions import end_attempt, move_attempt, move_calibration
from b2cal_assets.loop.uploads import UploadResult, is_upload, replace_payloads
from b2cal_assets.tickets import messages as ticket_events


class Management:
    """Exclude, include, reassign, restart, replace payloads, export the staging tag."""

    def __init__(self, ctx: LoopContext, inputs: JobInputs) -> None:
        self.ctx = ctx
        self.inputs = inputs

    def exclude(self, processing: str, calibration: str, *, by: str, reason: str = "") -> None:
        """Leave a calibration out; its dependents use the payloads already in the global-tag chain."""
        self.ctx.require_calibration(calibration)
        with self.ctx.session() as s:
            row = calibrations.get_calibration(s, processing, calibration)
            if row.excluded:
                raise LoopError(f"{calibration} is already excluded from {processing}")
            # a live attempt is cancelled: the loop terminates its run, and nothing of it is recorded
            cancelled = _cancel_live_attempt(s, processing, calibration, f"cancelled: excluded by {by}")
            calibrations.update_calibration(s, processing, calibration, excluded=True)
            details: dict[str, Any] = {"reason": reason}
            if cancelled is not None:
                details["cancelled_attempt"] = cancelled
            audit.record_audit(s, by, "exclude", processing, calibration, details)
            occurrence = self._count_audit(s, processing, calibration, "exclude")
        dependents = tuple(sorted(self.ctx.dependents(calibration) - {CDST_STEP}))
        self.ctx.notify(Excluded(processing, calibration, by, reason, occurrence, dependents))

    def include(self, processing: str, calibration: str, *, by: str) -> None:
        self.ctx.require_calibration(calibration)
        with self.ctx.session() as s:
            row = calibrations.get_calibration(s, processing, calibration)
            if not row.excluded:
                raise LoopError(f"{calibration} is not excluded from {processing}")
            if row.state != CalibrationState.SIGNED_OFF:
                move_calibration(
                    s,
                    processing,
                    calibration,
                    CalibrationState.WAITING,
                    excluded=False,
                    deadline=None,
                    window_opened_at=None,
                )
                _reopen(s, processing)
            else:
                calibrations.update_calibration(s, processing, calibration, excluded=False)
            audit.record_audit(s, by, "include", processing, calibration, {})
            occurrence = self._count_audit(s, processing, calibration, "include")
        self.ctx.notify(Included(processing, calibration, by, occurrence))

    def reassign(
        self,
        processing: str,
        calibration: str,
        *,
        expert: str,
        by: str,
        find_user: Callable[[str], str | None] | None = None,
    ) -> None:
        """Give the calibration another expert. ``find_user`` (the directory: a name -> its stored
        spelling, or None) refuses someone who cannot log in; the page and the CLI pass it."""
        self.ctx.require_calibration(calibration)
        expert = expert.strip()
        if not expert:
            raise LoopError("the new expert's user name is empty")
        if is_reserved_username(expert):
            raise LoopError(f"{expert!r} is the loop's own user name, not a person; name the expert's login")
        if find_user is not None:
            found = find_user(expert)
            if found is None:
                raise LoopError(
                    f"no user {expert!r} in the directory; give the user name the expert logs in with "
                    "(nothing was changed)"
                )
            expert = found
        with self.ctx.session() as s:
            row = calibrations.get_calibration(s, processing, calibration)
            old = row.expert_username
            if old == expert:
                raise LoopError(f"{expert} is already the expert of {calibration} in {processing}")
            calibrations.update_calibration(s, processing, calibration, expert_username=expert)
            audit.record_audit(s, by, "reassign", processing, calibration, {"from": old, "to": expert})
            occurrence = self._count_audit(s, processing, calibration, "reassign")
        self.ctx.notify(ticket_events.Reassigned(processing, calibration, old, expert, by, occurrence))

    def restart(self, processing: str, calibration: str, *, by: str) -> int:
        """Run a calibration again with the same settings, as a new attempt, in any state but signed off.

        The loop sensor launches the new one. After a failure it runs in the failed attempt's work
        directory, so it resumes from the checkpoint (only failed subjobs run again); otherwise the old
        attempt and its logs stay where they are. A live attempt (submitted or running: its run may be
        stuck) is cancelled first and the loop terminates its run.

        To run it with new settings, resubmit it instead (``submit``; the rules are ``_check_submission``).
        The cDST step (``cdst``) is restarted the same way; its jobs whose cDSTs are registered do not run again.
        """
        if calibration != CDST_STEP or CDST_STEP not in self.ctx.steps:
            self.ctx.require_calibration(calibration)
        with self.ctx.session() as s:
            event = self.restart_in(s, processing, calibration, by=by)
        self.ctx.notify(event)
        return event.attempt

    def restart_in(self, s: Session, processing: str, calibration: str, *, by: str) -> Restarted:
        """``restart`` in the caller's transaction (the loop's own restart after a full disk); returns
        the ticket message, for the caller to post once the transaction is committed or in it."""
        row = calibrations.get_calibration(s, processing, calibration)
        if row.excluded:
            raise LoopError(f"{calibration} is excluded from {processing}; include it first")
        if row.state in (CalibrationState.SIGNED_OFF, CalibrationState.WAITING):
            raise LoopError(
                f"{calibration} in {processing} is {row.state}: "
                + (
                    "a signed-off calibration is not restarted"
                    if row.state == CalibrationState.SIGNED_OFF
                    else "it has not run yet; its window opens when its inputs are ready"
                )
            )
        _cancel_live_attempt(s, processing, calibration, f"cancelled: restarted by {by}")
        latest = attempts.latest_attempt(s, processing, calibration)
        # the settings of the last attempt that ran a job (an upload has no job to repeat)
        ran = [
            a
            for a in attempts.list_attempts(s, processing, calibration)
            if not is_upload(a) and a.state != AttemptState.HELD
        ]
        source = ran[-1] if ran else None
        attempt = attempts.create_attempt(
            s,
            processing,
            calibration,
            submitted_by=source.submitted_by if source else AUTO_USER,
            expert_config=dict(source.expert_config) if source else {},
            job_config=dict(source.job_config) if source else {},
        )
        if source is not None and source is latest and _resumable(source):
            attempt.workdir = source.workdir  # resume from its checkpoint
        move_attempt(s, attempt.id, AttemptState.HELD)
        _reopen(s, processing)
        reopen_for_start(s, processing, calibration, row, self.ctx.clock())
        previous = latest.number if latest else None
        previous_workdir = latest.workdir if latest else ""
        audit.record_audit(
            s,
            by,
            "restart",
            processing,
            calibration,
            {"attempt": attempt.number, "previous": previous, "previous_workdir": previous_workdir},
        )
        return Restarted(processing, calibration, attempt.number, previous, by, previous_workdir)

    def _count_audit(self, s: Session, processing: str, calibration: str, action: str) -> int:
        return len(
            audit.list_audit(s, processing=processing, calibration=calibration, action=action, limit=10_000)
        )

    # --- payload replacement and the staging tag ---------------------------------------------
    def upload_payloads(
        self,
        processing: str,
        calibration: str,
        archive: Path | str,
        *,
        by: str,
        max_bytes: int | None = None,
    ) -> UploadResult:
        """Replace the calibration's payloads by an expert's upload (see ``loop/uploads.py``)."""
        return replace_payloads(self.ctx, processing, calibration, Path(archive), by=by, max_bytes=max_bytes)

    def export_staging(self, processing: str, *, by: str) -> StagingResult:
        """Collect the signed-off payloads into the staging global tag and export it; problems are reported."""
        with self.ctx.session() as s:
            p = processings.get_processing(s, processing)
            iov = IoV(p.exp_low, p.run_low, p.exp_high, p.run_high)
        result = export_staging(processing, self.inputs.signed_off_payloads(processing), iov)
        with self.ctx.session() as s:
            audit.record_audit(
                s,
                by,
                "staging_export" if result.ok else "staging_refused",
                processing,
                "",
                {
                    "tag": result.tag,
                    "directory": str(result.directory or ""),
                    "entries": len(result.entries),
                    "problems": result.problems,
                },
            )
        return result


def _cancel_live_attempt(s: Session, processing: str, calibration: str, why: str) -> int | None:
    """End the latest attempt if it is still held, submitted or running; returns its number."""
    latest = attempts.latest_attempt(s, processing, calibration)
    if latest is None or latest.state not in LIVE_ATTEMPT_STATES:
        return None
    end_attempt(s, latest.id, AttemptState.CANCELLED, iterations=latest.iterations, error=why)
    return latest.number


def _resumable(attempt: Attempt) -> bool:
    """A failed attempt that left a checkpoint: a restart with its settings continues from it."""
    return (
        attempt.state == AttemptState.FAILED
        and not is_upload(attempt)
        and bool(attempt.workdir)
        and (Path(attempt.workdir) / "state.json").is_file()
    )


def _reopen(s: Session, processing: str) -> None:
    """A finished processing has work again (a restart, an inclusion): the loop ticks it again."""
    if processings.get_processing(s, processing).state == ProcessingState.FINISHED:
        processings.set_processing_state(s, processing, ProcessingState.OPEN)
