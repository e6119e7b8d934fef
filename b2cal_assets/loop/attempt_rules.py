"""Recording attempts under the loop's rules: who may submit when, holds, failures, the end of a job."""

from __future__ import annotations

import dataclasses
import json
import shutil
from collections.abc import Iterable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, TypedDict, Unpack

from sqlalchemy.orm import Session

from b2cal_assets import home
from b2cal_assets.caf.localdb import StoredPayload
from b2cal_assets.caf.runner import STATE_FILE
from b2cal_assets.db.models import Attempt, ProcessingCalibration
from b2cal_assets.db.repo import attempts, audit, calibrations, jobs, payloads, processings
from b2cal_assets.domain.iov import IoV
from b2cal_assets.domain.states import RESUBMIT_STATES, AttemptState, CalibrationState
from b2cal_assets.files import atomic_copytree
from b2cal_assets.loop.context import LoopContext
from b2cal_assets.loop.decisions import RUN_ID_KEY
from b2cal_assets.loop.disk_room import record_no_room, short_of_room
from b2cal_assets.loop.notices import Held, Queued
from b2cal_assets.loop.readiness import missing_inputs
from b2cal_assets.loop.reconcile import Recovered
from b2cal_assets.loop.records import (
    AUTO_USER,
    AttemptTicket,
    LoopError,
    PayloadView,
    SubmissionHeld,
    payload_view,
)
from b2cal_assets.loop.step_states import StepStates
from b2cal_assets.loop.submission import checked_submission
from b2cal_assets.loop.transitions import end_attempt, move_attempt, move_calibration, start_attempt
from b2cal_assets.tickets import messages as ticket_events


class FailureDetail(TypedDict, total=False):
    """What a failure may tell beside its message: the subjob that failed, the end of its log, and the
    exception (``cause``), which says whether the attempt ran out of room."""

    subjob: str
    log_tail: str
    cause: BaseException | None


class AttemptRules:
    """Begins, holds, fails and finishes attempts; the one place for who may submit when."""

    def __init__(self, ctx: LoopContext, states: StepStates) -> None:
        self.ctx = ctx
        self.states = states

    # --- attempts ----------------------------------------------------------------------------
    def begin_attempt(
        self,
        processing: str,
        calibration: str,
        *,
        submitted_by: str,
        expert_config: dict[str, Any],
        job_config: dict[str, Any],
        dagster_run_id: str = "",
        resume_run_ids: Sequence[str] = (),
    ) -> AttemptTicket:
        """Record a new attempt if the rules allow it; raise ``LoopError`` saying why not.

        A launch by the loop (``auto``) takes over a held attempt (an expert's settings kept until
        the deadline, or a manager's restart) so the attempt keeps its submitter and settings.
        A re-execution of the run that started the latest attempt (``resume_run_ids``: the run's
        parent and root) resumes that attempt in its work directory, so finished subjobs are not
        run again and jobs still in the batch system are followed instead of submitted twice.
        """
        resumed = self._resume(processing, calibration, dagster_run_id, resume_run_ids)
        if resumed is not None:
            return resumed
        held_message = ""
        held_notice: Held | None = None
        with self.ctx.session() as s:
            created = self.states.sync(s, processing)
            proc = processings.get_processing(s, processing)
            row = calibrations.get_calibration(s, processing, calibration)
            latest = attempts.latest_attempt(s, processing, calibration)
            self._check_submission(s, processing, calibration, row, latest, submitted_by)
            if (
                submitted_by != AUTO_USER
                and proc.site.hold_until_deadline
                and row.state == CalibrationState.WINDOW_OPEN
                and row.deadline is not None
                and row.deadline > self.ctx.clock()
            ):
                number = self._hold(
                    s,
                    processing,
                    calibration,
                    submitted_by,
                    expert_config,
                    job_config,
                    row.deadline,
                    dagster_run_id=dagster_run_id,
                )
                held_notice = Held(
                    processing, calibration, number, submitted_by, row.deadline, dict(expert_config)
                )
                held_message = (
                    f"{calibration} in {processing}: your settings are recorded; site {proc.site.name} starts "
                    f"jobs only when the window closes at {row.deadline:%Y-%m-%d %H:%M} UTC"
                )
            else:
                if submitted_by == AUTO_USER and latest is not None and latest.state == AttemptState.HELD:
                    attempt = latest
                    submitted_by = attempt.submitted_by
                    expert_config, job_config = dict(attempt.expert_config), dict(attempt.job_config)
                    move_attempt(s, attempt.id, AttemptState.SUBMITTED)
                else:
                    attempt = attempts.create_attempt(
                        s,
                        processing,
                        calibration,
                        submitted_by=submitted_by,
                        expert_config=expert_config,
                        job_config=job_config,
                        dagster_run_id=dagster_run_id,
                    )
                # a restart with unchanged settings runs where the failed attempt left its checkpoint
                workdir = (
                    Path(attempt.workdir)
                    if attempt.workdir
                    else home.attempt_work_dir(processing, calibration, attempt.number)
                )
                start_attempt(s, attempt.id, workdir=str(workdir), dagster_run_id=dagster_run_id)
                move_calibration(s, processing, calibration, CalibrationState.RUNNING)
                if submitted_by != AUTO_USER:
                    audit.record_audit(
                        s,
                        submitted_by,
                        "submit",
                        processing,
                        calibration,
                        {"expert_config": expert_config, "job_config": job_config, "attempt": attempt.number},
                    )
                ticket = AttemptTicket(
                    attempt_id=attempt.id,
                    number=attempt.number,
                    processing=processing,
                    calibration=calibration,
                    submitted_by=submitted_by,
                    expert_config=dict(expert_config),
                    job_config=dict(job_config),
                    requested_iov=IoV(proc.exp_low, proc.run_low, proc.exp_high, proc.run_high),
                    workdir=workdir,
                    payload_dir=home.payload_dir(processing, calibration, attempt.number),
                )
        self.ctx.notify(*created)
        if held_notice is not None:
            self.ctx.notify(held_notice)
            raise SubmissionHeld(held_message)
        self.ctx.notify(
            ticket_events.Submitted(
                processing, calibration, ticket.number, submitted_by, dict(expert_config), dict(job_config)
            )
        )
        return ticket

    def _resume(
        self, processing: str, calibration: str, dagster_run_id: str, resume_run_ids: Sequence[str]
    ) -> AttemptTicket | None:
        ids = {r for r in resume_run_ids if r}
        if not ids:
            return None
        with self.ctx.session() as s:
            latest = attempts.latest_attempt(s, processing, calibration)
            if (
                latest is None
                or latest.dagster_run_id not in ids
                or latest.state not in (AttemptState.FAILED, AttemptState.RUNNING)
            ):
                return None
            row = calibrations.get_calibration(s, processing, calibration)
            if row.excluded:
                raise LoopError(
                    f"{calibration} is excluded from {processing}; include it before re-executing"
                )
            proc = processings.get_processing(s, processing)
            move_attempt(s, latest.id, AttemptState.RUNNING)
            latest.dagster_run_id = dagster_run_id
            latest.error = ""
            latest.finished_at = None
            move_calibration(s, processing, calibration, CalibrationState.RUNNING)
            return AttemptTicket(
                attempt_id=latest.id,
                number=latest.number,
                processing=processing,
                calibration=calibration,
                submitted_by=latest.submitted_by,
                expert_config=dict(latest.expert_config),
                job_config=dict(latest.job_config),
                requested_iov=IoV(proc.exp_low, proc.run_low, proc.exp_high, proc.run_high),
                workdir=Path(latest.workdir)
                if latest.workdir
                else home.attempt_work_dir(processing, calibration, latest.number),
                payload_dir=home.payload_dir(processing, calibration, latest.number),
            )

    def submit(
        self,
        processing: str,
        calibration: str,
        *,
        by: str,
        expert_config: dict[str, Any],
        job_config: dict[str, Any] | None = None,
    ) -> str:
        """An expert's submission from outside Dagster (CLI, web page): checked, kept as a held attempt.

        The loop sensor launches it at its next tick, or at the deadline where the site holds every
        job until then; returns a sentence saying which.
        """
        self.ctx.require_calibration(calibration)
        settings = self.ctx.scripts.calibrations[calibration].settings
        try:
            checked_submission(settings, expert_config, job_config or {})
        except ValueError as exc:
            raise LoopError(f"{calibration}: the submission was refused: {exc}") from None
        with self.ctx.session() as s:
            created = self.states.sync(s, processing)
            proc = processings.get_processing(s, processing)
            row = calibrations.get_calibration(s, processing, calibration)
            latest = attempts.latest_attempt(s, processing, calibration)
            self._check_submission(s, processing, calibration, row, latest, by)
            resubmission = row.state in RESUBMIT_STATES
            if resubmission:  # a new attempt with new settings, started at once (the window is over)
                reopen_for_start(s, processing, calibration, row, self.ctx.clock())
                row = calibrations.get_calibration(s, processing, calibration)
            elif row.state != CalibrationState.WINDOW_OPEN:
                raise LoopError(
                    f"{calibration} in {processing} is {row.state}; submissions are taken while its window is open"
                )
            now = self.ctx.clock()
            hold = proc.site.hold_until_deadline and row.deadline is not None and row.deadline > now
            # the deadline stays what it was: a queued attempt at a site that does not hold jobs
            # starts at the next loop tick (``AttemptRules.queued_to_start``)
            deadline = row.deadline or now
            number = self._hold(
                s,
                processing,
                calibration,
                by,
                dict(expert_config),
                dict(job_config or {}),
                deadline,
                queued=not hold,
            )
            if resubmission:
                audit.record_audit(
                    s,
                    by,
                    "resubmit",
                    processing,
                    calibration,
                    {
                        "attempt": number,
                        "previous": latest.number if latest else None,
                        "after": latest.state if latest else "",
                        "expert_config": dict(expert_config),
                        "job_config": dict(job_config or {}),
                    },
                )
        if hold:
            self.ctx.notify(
                *created, Held(processing, calibration, number, by, deadline, dict(expert_config))
            )
            return (
                f"{calibration} in {processing}: attempt {number} recorded; site {proc.site.name} starts jobs when "
                f"the window closes at {deadline:%Y-%m-%d %H:%M} UTC"
            )
        self.ctx.notify(*created, Queued(processing, calibration, number, by, dict(expert_config)))
        return f"{calibration} in {processing}: attempt {number} submitted; it starts at the next sensor tick"

    def _check_submission(
        self,
        s: Session,
        processing: str,
        calibration: str,
        row: ProcessingCalibration,
        latest: Attempt | None,
        submitted_by: str,
    ) -> None:
        """Who may submit when: the one place for these rules (the page and the CLI both call ``submit``).

        - while the window is open: the expert's settings (or the defaults by the loop at the deadline);
        - after a failure or a reject (``RESUBMIT_STATES``): a resubmission with new settings, a new attempt
          that starts at once; the page lets the assigned expert and managers do it;
        - never while it waits for inputs, runs, awaits sign-off (``finished``) or is signed off / excluded.
        """
        if row.excluded:
            raise LoopError(
                f"{calibration} is excluded from processing {processing} by a manager; include it again first"
            )
        if row.state == CalibrationState.SIGNED_OFF:
            raise LoopError(
                f"{calibration} is already signed off in {processing}; a manager can restart it to run again"
            )
        if row.state == CalibrationState.RUNNING:
            if submitted_by != AUTO_USER and latest is not None and latest.submitted_by == AUTO_USER:
                raise LoopError(
                    f"{calibration} in {processing}: the window closed and the default run (attempt {latest.number}, "
                    "submitted automatically) has already started, so your submission was refused; "
                    "if it fails or is rejected, resubmit it with your settings"
                )
            raise LoopError(
                f"{calibration} is already running in {processing}; wait for it or cancel its run"
            )
        if row.state == CalibrationState.WAITING:
            waiting_for = missing_inputs(
                self.ctx.steps[calibration],
                self.states.statuses(s, processing),
                self.states.available_tags(s, processing),
            )
            raise LoopError(
                f"{calibration} cannot be submitted yet in {processing}: its window opens when its inputs are "
                f"ready (waiting for: {', '.join(waiting_for) or 'the next sensor tick'})"
            )
        if submitted_by != AUTO_USER and row.state == CalibrationState.SUBMITTED:
            raise LoopError(
                f"{calibration} in {processing} was already submitted with its defaults after the deadline; "
                "if it fails or is rejected, resubmit it with your settings"
            )
        if submitted_by != AUTO_USER and row.state == CalibrationState.FINISHED:
            raise LoopError(
                f"{calibration} in {processing} has finished and awaits sign-off; reject it first to resubmit "
                "with new settings"
            )

    def _hold(
        self,
        s: Session,
        processing: str,
        calibration: str,
        submitted_by: str,
        expert_config: dict[str, Any],
        job_config: dict[str, Any],
        deadline: datetime,
        *,
        dagster_run_id: str = "",
        queued: bool = False,
    ) -> int:
        """A held attempt with these settings, replacing one held before. ``queued``: it starts at the
        next tick (the site does not hold jobs), so the audit log says ``submit_queued``, not held."""
        held = attempts.latest_attempt(s, processing, calibration)
        if held is not None and held.state == AttemptState.HELD:
            move_attempt(s, held.id, AttemptState.CANCELLED)
        attempt = attempts.create_attempt(
            s,
            processing,
            calibration,
            submitted_by=submitted_by,
            expert_config=expert_config,
            job_config=job_config,
        )
        move_attempt(s, attempt.id, AttemptState.HELD)
        audit.record_audit(
            s,
            submitted_by,
            "submit_queued" if queued else "submit_held",
            processing,
            calibration,
            {
                "expert_config": expert_config,
                "job_config": job_config,
                "until": deadline.isoformat(),
                "attempt": attempt.number,
                **({RUN_ID_KEY: dagster_run_id} if dagster_run_id else {}),
            },
        )
        return attempt.number

    def queued_to_start(self, s: Session, processing: str) -> list[str]:
        """Open-window steps whose held attempt waits for nothing: the site does not hold jobs until the
        deadline, so an expert's submission, a resubmission or a restart starts at this tick."""
        if processings.get_processing(s, processing).site.hold_until_deadline:
            return []
        due = []
        for row in calibrations.list_calibrations(s, processing):
            if row.state != CalibrationState.WINDOW_OPEN or row.excluded:
                continue
            latest = attempts.latest_attempt(s, processing, row.calibration)
            if latest is not None and latest.state == AttemptState.HELD:
                due.append(row.calibration)
        return due

    def fail_attempt(
        self,
        ticket: AttemptTicket,
        error: str,
        iterations: int = 0,
        **detail: Unpack[FailureDetail],
    ) -> None:
        """The attempt failed; one that ran out of room (``cause``, the log, a full directory now) is
        marked ``loop_no_room`` in the same transaction, for the loop to resume it once there is room."""
        subjob, log_tail = detail.get("subjob", ""), detail.get("log_tail", "")
        watched = (ticket.workdir, ticket.payload_dir)
        no_room = short_of_room(f"{error}\n{log_tail}", detail.get("cause"), watched)
        with self.ctx.session() as s:
            end_attempt(s, ticket.attempt_id, AttemptState.FAILED, iterations=iterations, error=error)
            move_calibration(s, ticket.processing, ticket.calibration, CalibrationState.FAILED)
            note = ""
            if no_room is not None:
                note = record_no_room(
                    s, ticket.processing, ticket.calibration, ticket.number, no_room, watched
                )
        self.ctx.notify(
            ticket_events.Failed(
                ticket.processing,
                ticket.calibration,
                ticket.number,
                subjob or "(the calibration itself)",
                log_tail or error,
                str(ticket.workdir),
            )
        )
        if note:
            self.ctx.notify(
                Recovered(ticket.processing, ticket.calibration, "no_room", note, str(ticket.number))
            )

    def finish_attempt(
        self, ticket: AttemptTicket, outputdb: Path, entries: Sequence[StoredPayload], iterations: int
    ) -> list[PayloadView]:
        """Copy the outputdb into the payload store and record its payloads as new revisions."""
        target = ticket.payload_dir / "outputdb"
        # whole files or none (a full disk leaves the old copy and names the path); and a copy the
        # database did not record is removed, so no payload on disk is unaccounted for
        atomic_copytree(outputdb, target)
        rows = [(e.name, e.checksum, tuple(e.iov), str(target / Path(e.file).name)) for e in entries]
        try:
            with self.ctx.session() as s:
                recorded = payloads.record_payloads(
                    s, ticket.processing, ticket.calibration, ticket.attempt_id, rows, source="job"
                )
                end_attempt(s, ticket.attempt_id, AttemptState.FINISHED, iterations=iterations)
                move_calibration(s, ticket.processing, ticket.calibration, CalibrationState.FINISHED)
                return [payload_view(p) for p in recorded]
        except BaseException:
            shutil.rmtree(target, ignore_errors=True)
            raise

    def complete_step(self, ticket: AttemptTicket) -> None:
        """A step without payloads or sign-off (the cDST production) is done when its attempt finishes."""
        with self.ctx.session() as s:
            end_attempt(s, ticket.attempt_id, AttemptState.FINISHED)
            move_calibration(s, ticket.processing, ticket.calibration, CalibrationState.SIGNED_OFF)

    # --- jobs --------------------------------------------------------------------------------
    def record_subjobs(
        self, ticket: AttemptTicket, backend: str, subjobs: list[dict[str, Any]] | None = None
    ) -> int:
        """Record the attempt's collector subjobs (from the runner's outcome, else its checkpoint file)."""
        if subjobs is None:
            subjobs = checkpoint_subjobs(ticket.workdir)
        rows = [
            {
                "name": f"{sj['calibration']}/iteration_{sj['iteration']}/{sj['name']}",
                "state": str(sj["state"])[:16],
                "exit_code": sj.get("exit_code"),
                "tries": int(sj.get("tries", 1)),
                "workdir": str(sj.get("workdir", "")),
                "started_at": jobs.utc_from_epoch(sj.get("started_at")),
                "finished_at": jobs.utc_from_epoch(sj.get("finished_at")),
            }
            for sj in subjobs
        ]
        if rows:
            with self.ctx.session() as s:
                jobs.record_jobs(s, ticket.attempt_id, backend, rows)
        return len(rows)

    def notify_finished(
        self,
        processing: str,
        calibration: str,
        *,
        passed: bool,
        checks: Iterable[tuple[str, bool, str]],
        plots: Iterable[Path | str],
        payloads: Iterable[str],
    ) -> None:
        """The ticket message of the latest attempt's checks: their verdicts, plots and payloads."""
        with self.ctx.session() as s:
            latest = attempts.latest_attempt(s, processing, calibration)
            number = latest.number if latest else 0
        self.ctx.notify(
            ticket_events.Finished(
                processing,
                calibration,
                number,
                passed,
                tuple(ticket_events.CheckVerdict(*c) for c in checks),
                tuple(Path(p) for p in plots),
                tuple(payloads),
            )
        )

    # --- for the running attempt -----------------------------------------------------------------
    def attempt_state(self, attempt_id: int) -> AttemptState:
        with self.ctx.session() as s:
            return attempts.get_attempt(s, attempt_id).state

    def move_attempt_workdir(self, ticket: AttemptTicket, workdir: Path) -> AttemptTicket:
        """The attempt runs in ``workdir`` instead (its checkpoint elsewhere was of another job)."""
        with self.ctx.session() as s:
            attempts.get_attempt(s, ticket.attempt_id).workdir = str(workdir)
        return dataclasses.replace(ticket, workdir=workdir)


def reopen_for_start(
    s: Session, processing: str, calibration: str, row: ProcessingCalibration, now: datetime
) -> None:
    """A step that ran opens again for an attempt that starts at once (a resubmission, a restart).

    Its deadline is history and stays as it was; one it never had (the cDST step) is now.
    """
    move_calibration(
        s,
        processing,
        calibration,
        CalibrationState.WINDOW_OPEN,
        window_opened_at=now,
        **({} if row.deadline is not None else {"deadline": now}),
    )


def checkpoint_subjobs(workdir: Path) -> list[dict[str, Any]]:
    """The subjobs the runner checkpointed in ``workdir/state.json`` (what a failed attempt leaves)."""
    try:
        data = json.loads((Path(workdir) / STATE_FILE).read_text())
    except (OSError, ValueError):
        return []
    return [sj for cs in data.get("calibrations", {}).values() for sj in cs.get("subjobs", [])]
