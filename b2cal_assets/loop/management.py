"""The managers' actions and the payload replacement, shared by the CLI and the web pages."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from b2cal_assets.db.repo import attempts, audit, calibrations
from b2cal_assets.loop.attempt_rules import reopen_for_start
from b2cal_assets.loop.notices import Excluded, Included, Restarted
from b2cal_assets.loop.records import (
    AUTO_USER,
    LoopError,
)
from b2cal_assets.loop.staging import StagingResult
from b2cal_assets.loop.steps import CDST_STEP
from b2cal_assets.loop.uploads import is_upload
from b2cal_assets.tickets import messages as ticket_events


class Management:
    """Mixed into ``LoopService``; uses its ``session``, ``steps``, ``scripts`` and ``notify``."""

    # --- management ----------------------------------------------------------------------------
    def exclude(self, processing: str, calibration: str, *, by: str, reason: str = "") -> None:
        """Leave a calibration out; its dependents use the payloads already in the global-tag chain."""
        self._require_calibration(calibration)
        with self.session() as s:
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
        dependents = tuple(sorted(self.dependents(calibration) - {CDST_STEP}))
        self.notify(Excluded(processing, calibration, by, reason, occurrence, dependents))

    def include(self, processing: str, calibration: str, *, by: str) -> None:
        self._require_calibration(calibration)
        with self.session() as s:
            row = calibrations.get_calibration(s, processing, calibration)
            if not row.excluded:
                raise LoopError(f"{calibration} is not excluded from {processing}")
            fields: dict[str, Any] = {"excluded": False}
            if row.state != "signed_off":
                fields.update(state="waiting", deadline=None, window_opened_at=None)
                _reopen(s, processing)
            calibrations.update_calibration(s, processing, calibration, **fields)
            audit.record_audit(s, by, "include", processing, calibration, {})
            occurrence = self._count_audit(s, processing, calibration, "include")
        self.notify(Included(processing, calibration, by, occurrence))

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
        from b2cal_assets.loop.authority import is_reserved_username

        self._require_calibration(calibration)
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
        with self.session() as s:
            row = calibrations.get_calibration(s, processing, calibration)
            old = row.expert_username
            if old == expert:
                raise LoopError(f"{expert} is already the expert of {calibration} in {processing}")
            calibrations.update_calibration(s, processing, calibration, expert_username=expert)
            audit.record_audit(s, by, "reassign", processing, calibration, {"from": old, "to": expert})
            occurrence = self._count_audit(s, processing, calibration, "reassign")
        self.notify(ticket_events.Reassigned(processing, calibration, old, expert, by, occurrence))

    def restart(self, processing: str, calibration: str, *, by: str) -> int:
        """Run a calibration again with the same settings, as a new attempt, in any state but signed off.

        The loop sensor launches the new one. After a failure it runs in the failed attempt's work
        directory, so it resumes from the checkpoint (only failed subjobs run again); otherwise the old
        attempt and its logs stay where they are. A live attempt (submitted or running: its run may be
        stuck) is cancelled first and the loop terminates its run.

        To run it with new settings, resubmit it instead (``submit``; the rules are ``_check_submission``).
        """
        self._require_calibration(calibration)
        with self.session() as s:
            row = calibrations.get_calibration(s, processing, calibration)
            if row.excluded:
                raise LoopError(f"{calibration} is excluded from {processing}; include it first")
            if row.state in ("signed_off", "waiting"):
                raise LoopError(
                    f"{calibration} in {processing} is {row.state}: "
                    + (
                        "a signed-off calibration is not restarted"
                        if row.state == "signed_off"
                        else "it has not run yet; its window opens when its inputs are ready"
                    )
                )
            _cancel_live_attempt(s, processing, calibration, f"cancelled: restarted by {by}")
            latest = attempts.latest_attempt(s, processing, calibration)
            # the settings of the last attempt that ran a job (an upload has no job to repeat)
            ran = [
                a
                for a in attempts.list_attempts(s, processing, calibration)
                if not is_upload(a) and a.state != "held"
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
            attempts.set_attempt_state(s, attempt.id, "held")
            _reopen(s, processing)
            reopen_for_start(s, processing, calibration, row, self.clock())
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
            number = attempt.number
        self.notify(Restarted(processing, calibration, number, previous, by, previous_workdir))
        return number

    def _count_audit(self, s: Session, processing: str, calibration: str, action: str) -> int:
        return len(
            audit.list_audit(s, processing=processing, calibration=calibration, action=action, limit=10_000)
        )

    def dependents(self, calibration: str) -> set[str]:
        """Every step downstream of ``calibration`` (directly or through others)."""
        seen: set[str] = set()
        todo = [calibration]
        while todo:
            current = todo.pop()
            for name, step in self.steps.items():
                if current in step.depends_on and name not in seen:
                    seen.add(name)
                    todo.append(name)
        return seen

    # --- payload replacement and the staging tag ---------------------------------------------
    def upload_payloads(
        self, processing: str, calibration: str, archive: Path | str, *, by: str, max_bytes: int | None = None
    ):
        """Replace the calibration's payloads by an expert's upload (see ``loop/uploads.py``)."""
        from b2cal_assets.loop.uploads import replace_payloads

        return replace_payloads(self, processing, calibration, Path(archive), by=by, max_bytes=max_bytes)

    def export_staging(self, processing: str, *, by: str) -> StagingResult:
        """Collect the signed-off payloads into the staging global tag and export it; problems are reported."""
        from b2cal_assets.loop.staging import export_staging

        result = export_staging(
            processing, self.signed_off_payloads(processing), self.processing_iov(processing)
        )
        with self.session() as s:
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
    if latest is None or latest.state not in ("held", "submitted", "running"):
        return None
    attempts.finish_attempt(s, latest.id, "cancelled", iterations=latest.iterations, error=why)
    return latest.number


def _resumable(attempt) -> bool:
    """A failed attempt that left a checkpoint: a restart with its settings continues from it."""
    return (
        attempt.state == "failed"
        and not is_upload(attempt)
        and bool(attempt.workdir)
        and (Path(attempt.workdir) / "state.json").is_file()
    )


def _reopen(s: Session, processing: str) -> None:
    """A finished processing has work again (a restart, an inclusion): the loop ticks it again."""
    from b2cal_assets.db.repo import processings

    if processings.get_processing(s, processing).state == "finished":
        processings.set_processing_state(s, processing, "open")
