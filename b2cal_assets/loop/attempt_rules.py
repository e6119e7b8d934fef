"""Recording attempts under the loop's rules: who may submit when, holds, failures, sign-off."""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from b2cal_assets import home
from b2cal_assets.db.repo import attempts, audit, calibrations, jobs, payloads, processings, signoffs
from b2cal_assets.domain.iov import IoV
from b2cal_assets.files import atomic_copytree
from b2cal_assets.loop.decisions import RUN_ID_KEY
from b2cal_assets.loop.notices import Held, Queued
from b2cal_assets.loop.readiness import (
    missing_inputs,
)
from b2cal_assets.loop.records import (
    AUTO_USER,
    AttemptTicket,
    LoopError,
    SubmissionHeld,
    _payload_view,
)
from b2cal_assets.loop.status import _checkpoint_subjobs
from b2cal_assets.tickets import messages as ticket_events

RESUBMIT_STATES = ("failed", "rejected")  # an expert or a manager may submit again with new settings


class AttemptRules:
    """Mixed into ``LoopService``; uses its ``session``, ``steps``, ``scripts`` and ``notify``."""

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
        held_notice = None
        with self.session() as s:
            created = self.sync_processing(s, processing)
            proc = processings.get_processing(s, processing)
            row = calibrations.get_calibration(s, processing, calibration)
            latest = attempts.latest_attempt(s, processing, calibration)
            self._check_submission(s, processing, calibration, row, latest, submitted_by)
            if (
                submitted_by != AUTO_USER
                and proc.site.hold_until_deadline
                and row.state == "window_open"
                and row.deadline is not None
                and row.deadline > self.clock()
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
                if submitted_by == AUTO_USER and latest is not None and latest.state == "held":
                    attempt = latest
                    submitted_by = attempt.submitted_by
                    expert_config, job_config = dict(attempt.expert_config), dict(attempt.job_config)
                    attempts.set_attempt_state(s, attempt.id, "submitted")
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
                attempts.start_attempt(s, attempt.id, workdir=str(workdir), dagster_run_id=dagster_run_id)
                calibrations.update_calibration(s, processing, calibration, state="running")
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
        self.notify(*created)
        if held_message:
            self.notify(held_notice)
            raise SubmissionHeld(held_message)
        self.notify(
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
        with self.session() as s:
            latest = attempts.latest_attempt(s, processing, calibration)
            if (
                latest is None
                or latest.dagster_run_id not in ids
                or latest.state not in ("failed", "running")
            ):
                return None
            row = calibrations.get_calibration(s, processing, calibration)
            if row.excluded:
                raise LoopError(
                    f"{calibration} is excluded from {processing}; include it before re-executing"
                )
            proc = processings.get_processing(s, processing)
            attempts.set_attempt_state(s, latest.id, "running")
            latest.dagster_run_id = dagster_run_id
            latest.error = ""
            latest.finished_at = None
            calibrations.update_calibration(s, processing, calibration, state="running")
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
        from b2cal_assets.loop.submission import checked_submission

        self._require_calibration(calibration)
        settings = self.scripts.calibrations[calibration].settings
        try:
            checked_submission(settings, expert_config, job_config or {})
        except ValueError as exc:
            raise LoopError(f"{calibration}: the submission was refused: {exc}") from None
        with self.session() as s:
            created = self.sync_processing(s, processing)
            proc = processings.get_processing(s, processing)
            row = calibrations.get_calibration(s, processing, calibration)
            latest = attempts.latest_attempt(s, processing, calibration)
            self._check_submission(s, processing, calibration, row, latest, by)
            resubmission = row.state in RESUBMIT_STATES
            if resubmission:  # a new attempt with new settings, started at once (the window is over)
                reopen_for_start(s, processing, calibration, row, self.clock())
                row = calibrations.get_calibration(s, processing, calibration)
            elif row.state != "window_open":
                raise LoopError(
                    f"{calibration} in {processing} is {row.state}; submissions are taken while its window is open"
                )
            now = self.clock()
            hold = proc.site.hold_until_deadline and row.deadline is not None and row.deadline > now
            # the deadline stays what it was: a queued attempt at a site that does not hold jobs
            # starts at the next loop tick (``AttemptRules.queued_to_start``)
            number = self._hold(
                s,
                processing,
                calibration,
                by,
                dict(expert_config),
                dict(job_config or {}),
                row.deadline or now,
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
            self.notify(*created, Held(processing, calibration, number, by, row.deadline, dict(expert_config)))
            return (
                f"{calibration} in {processing}: attempt {number} recorded; site {proc.site.name} starts jobs when "
                f"the window closes at {row.deadline:%Y-%m-%d %H:%M} UTC"
            )
        self.notify(*created, Queued(processing, calibration, number, by, dict(expert_config)))
        return f"{calibration} in {processing}: attempt {number} submitted; it starts at the next sensor tick"

    def _check_submission(self, s: Session, processing, calibration, row, latest, submitted_by) -> None:
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
        if row.state == "signed_off":
            raise LoopError(
                f"{calibration} is already signed off in {processing}; a manager can restart it to run again"
            )
        if row.state == "running":
            if submitted_by != AUTO_USER and latest is not None and latest.submitted_by == AUTO_USER:
                raise LoopError(
                    f"{calibration} in {processing}: the window closed and the default run (attempt {latest.number}, "
                    "submitted automatically) has already started, so your submission was refused; "
                    "if it fails or is rejected, resubmit it with your settings"
                )
            raise LoopError(
                f"{calibration} is already running in {processing}; wait for it or cancel its run"
            )
        if row.state == "waiting":
            waiting_for = missing_inputs(
                self.steps[calibration], self.statuses(s, processing), self.available_tags(s, processing)
            )
            raise LoopError(
                f"{calibration} cannot be submitted yet in {processing}: its window opens when its inputs are "
                f"ready (waiting for: {', '.join(waiting_for) or 'the next sensor tick'})"
            )
        if submitted_by != AUTO_USER and row.state == "submitted":
            raise LoopError(
                f"{calibration} in {processing} was already submitted with its defaults after the deadline; "
                "if it fails or is rejected, resubmit it with your settings"
            )
        if submitted_by != AUTO_USER and row.state == "finished":
            raise LoopError(
                f"{calibration} in {processing} has finished and awaits sign-off; reject it first to resubmit "
                "with new settings"
            )

    def _hold(
        self,
        s: Session,
        processing,
        calibration,
        submitted_by,
        expert_config,
        job_config,
        deadline,
        *,
        dagster_run_id: str = "",
        queued: bool = False,
    ) -> int:
        """A held attempt with these settings, replacing one held before. ``queued``: it starts at the
        next tick (the site does not hold jobs), so the audit log says ``submit_queued``, not held."""
        held = attempts.latest_attempt(s, processing, calibration)
        if held is not None and held.state == "held":
            attempts.set_attempt_state(s, held.id, "cancelled")
        attempt = attempts.create_attempt(
            s,
            processing,
            calibration,
            submitted_by=submitted_by,
            expert_config=expert_config,
            job_config=job_config,
        )
        attempts.set_attempt_state(s, attempt.id, "held")
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
            if row.state != "window_open" or row.excluded:
                continue
            latest = attempts.latest_attempt(s, processing, row.calibration)
            if latest is not None and latest.state == "held":
                due.append(row.calibration)
        return due

    def fail_attempt(
        self, ticket: AttemptTicket, error: str, iterations: int = 0, *, subjob: str = "", log_tail: str = ""
    ) -> None:
        with self.session() as s:
            attempts.finish_attempt(s, ticket.attempt_id, "failed", iterations=iterations, error=error)
            calibrations.update_calibration(s, ticket.processing, ticket.calibration, state="failed")
        self.notify(
            ticket_events.Failed(
                ticket.processing,
                ticket.calibration,
                ticket.number,
                subjob or "(the calibration itself)",
                log_tail or error,
                str(ticket.workdir),
            )
        )

    def finish_attempt(self, ticket: AttemptTicket, outputdb: Path, entries: list, iterations: int) -> list:
        """Copy the outputdb into the payload store and record its payloads as new revisions."""
        target = ticket.payload_dir / "outputdb"
        # whole files or none (a full disk leaves the old copy and names the path); and a copy the
        # database did not record is removed, so no payload on disk is unaccounted for
        atomic_copytree(outputdb, target)
        rows = [(e.name, e.checksum, tuple(e.iov), str(target / Path(e.file).name)) for e in entries]
        try:
            with self.session() as s:
                recorded = payloads.record_payloads(
                    s, ticket.processing, ticket.calibration, ticket.attempt_id, rows, source="job"
                )
                attempts.finish_attempt(s, ticket.attempt_id, "finished", iterations=iterations)
                calibrations.update_calibration(s, ticket.processing, ticket.calibration, state="finished")
                return [_payload_view(p) for p in recorded]
        except BaseException:
            shutil.rmtree(target, ignore_errors=True)
            raise

    def complete_step(self, ticket: AttemptTicket) -> None:
        """A step without payloads or sign-off (the cDST production) is done when its attempt finishes."""
        with self.session() as s:
            attempts.finish_attempt(s, ticket.attempt_id, "finished")
            calibrations.update_calibration(s, ticket.processing, ticket.calibration, state="signed_off")

    def mark_step(self, processing: str, step: str, state: str) -> None:
        with self.session() as s:
            calibrations.update_calibration(s, processing, step, state=state)

    def fail_run(self, dagster_run_id: str, message: str) -> list[tuple[str, str]]:
        """A Dagster run ended badly (crash, cancel): attempts it left running are failed, not stuck."""
        ended: list[tuple[str, str, int]] = []
        with self.session() as s:
            for attempt in attempts.attempts_of_run(s, dagster_run_id):
                if attempt.state not in ("submitted", "running"):
                    continue
                processing = processings.get_processing_by_id(s, attempt.processing_id).name
                attempts.finish_attempt(s, attempt.id, "failed", error=message)
                calibrations.update_calibration(s, processing, attempt.calibration, state="failed")
                ended.append((processing, attempt.calibration, attempt.number))
        for processing, calibration, number in ended:
            self.notify(
                ticket_events.Failed(
                    processing, calibration, number, "(the Dagster run)", message, dagster_run_id
                )
            )
        return [(p, c) for p, c, _ in ended]

    # --- jobs --------------------------------------------------------------------------------
    def record_subjobs(
        self, ticket: AttemptTicket, backend: str, subjobs: list[dict[str, Any]] | None = None
    ) -> int:
        """Record the attempt's collector subjobs (from the runner's outcome, else its checkpoint file)."""
        if subjobs is None:
            subjobs = _checkpoint_subjobs(ticket.workdir)
        rows = [
            {
                "name": f"{sj['calibration']}/iteration_{sj['iteration']}/{sj['name']}",
                "state": str(sj["state"])[:16],
                "exit_code": sj.get("exit_code"),
                "tries": int(sj.get("tries", 1)),
                "workdir": str(sj.get("workdir", "")),
            }
            for sj in subjobs
        ]
        if rows:
            with self.session() as s:
                jobs.record_jobs(s, ticket.attempt_id, backend, rows)
        return len(rows)

    def notify_finished(
        self, processing: str, calibration: str, *, passed: bool, checks, plots, payloads
    ) -> None:
        with self.session() as s:
            latest = attempts.latest_attempt(s, processing, calibration)
            number = latest.number if latest else 0
        self.notify(
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

    # --- sign-off ----------------------------------------------------------------------------
    def sign_off(
        self,
        processing: str,
        calibration: str,
        *,
        decision: str,
        by: str,
        comment: str = "",
        automatic: bool,
        dagster_run_id: str = "",
    ) -> str:
        """Accept or reject the latest finished attempt; returns the new state.

        ``dagster_run_id``: the run of the sign-off asset that made the decision (it is in Dagster then);
        without it the decisions sensor reports it to Dagster (``loop/decisions.py``).
        """
        if decision not in ("accept", "reject"):
            raise LoopError(f"a sign-off decision is 'accept' or 'reject', not {decision!r}")
        with self.session() as s:
            row = calibrations.get_calibration(s, processing, calibration)
            if row.state not in ("finished", "signed_off", "rejected"):
                raise LoopError(
                    f"{calibration} in {processing} has no finished attempt to sign off (state: {row.state})"
                )
            latest = attempts.latest_attempt(s, processing, calibration)
            signoffs.record_signoff(
                s,
                processing,
                calibration,
                decision,
                by,
                comment=comment,
                automatic=automatic,
                attempt_id=latest.id if latest else None,
            )
            state = "signed_off" if decision == "accept" else "rejected"
            calibrations.update_calibration(s, processing, calibration, state=state)
            if not automatic:
                details = {"comment": comment, **({RUN_ID_KEY: dagster_run_id} if dagster_run_id else {})}
                audit.record_audit(s, by, f"signoff_{decision}", processing, calibration, details)
            number = latest.number if latest else 0
        if decision == "accept":
            self.notify(ticket_events.SignedOff(processing, calibration, number, by, automatic, comment))
        else:
            self.notify(ticket_events.Rejected(processing, calibration, number, by, comment))
        return state


def reopen_for_start(s: Session, processing: str, calibration: str, row, now) -> None:
    """A step that ran opens again for an attempt that starts at once (a resubmission, a restart).

    Its deadline is history and stays as it was; one it never had (the cDST step) is now.
    """
    calibrations.update_calibration(
        s,
        processing,
        calibration,
        state="window_open",
        window_opened_at=now,
        **({} if row.deadline is not None else {"deadline": now}),
    )
