"""The loop's actions on the calibration database, shared by sensors, assets, the CLI and the web pages."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from b2cal_assets import home
from b2cal_assets.backends.commands import prefixed
from b2cal_assets.conditions.staging import SignedOffPayload
from b2cal_assets.db import engine as db_engine
from b2cal_assets.db.models import utcnow
from b2cal_assets.db.repo import attempts, audit, calibrations, catalog, jobs, payloads, processings, signoffs
from b2cal_assets.db.repo import tickets as ticket_repo
from b2cal_assets.domain.filters import RunInfo, run_matches
from b2cal_assets.domain.iov import IoV
from b2cal_assets.loop.notices import Excluded, Held, Included, Restarted
from b2cal_assets.loop.readiness import (
    StepStatus,
    blocked_by_rejection,
    missing_inputs,
    processing_finished,
    steps_past_deadline,
    steps_to_open,
)
from b2cal_assets.loop.staging import StagingResult
from b2cal_assets.loop.steps import CDST_STEP, DONE_STATES, StepInfo, build_steps, step_graph
from b2cal_assets.loop.uploads import is_upload
from b2cal_assets.tickets import messages as ticket_events
from b2cal_assets.tickets.outbox import TicketOutbox

AUTO_USER = "auto"


class LoopError(Exception):
    """A request the loop's rules refuse; the message says why and what to do instead."""


class SubmissionHeld(LoopError):
    """Not an error: the site holds every job until the deadline; the settings wait in a held attempt."""


@dataclass(frozen=True)
class Launch:
    """A step the loop wants a Dagster run for."""

    processing: str
    step: str
    reason: str  # deadline | ready | restart | signoff (checks, then sign-off) | checks (checks only)
    run_key: str
    expert_config: dict[str, Any] = field(default_factory=dict)
    job_config: dict[str, Any] = field(default_factory=dict)
    automatic_signoff: bool = False
    attempt: int = 0
    attempt_run_id: str = ""  # the Dagster run that produced the attempt (signoff/checks launches)

    @property
    def checks_only(self) -> bool:
        """The payloads exist already (an upload, or an expert's run without sign-off): only check them."""
        return self.reason in ("signoff", "checks")


@dataclass(frozen=True)
class TickReport:
    launches: list[Launch]
    opened: list[tuple[str, str]]
    finished_processings: list[str]
    staging: list[StagingResult] = field(default_factory=list)


@dataclass(frozen=True)
class StepRow:
    processing: str
    step: str
    stage: str
    state: str
    expert: str
    attempts: int
    iterations: int
    payloads: int
    wall_seconds: float | None
    deadline: datetime | None
    error: str
    blocked_by: str
    excluded: bool = False
    submitted_by: str = ""
    attempt_state: str = ""
    jobs: str = ""  # "3 done, 1 failed" for the latest attempt's collector subjobs
    uses_global_tag: bool = False  # excluded: dependents use the global-tag payloads instead


@dataclass(frozen=True)
class JobRow:
    processing: str
    calibration: str
    attempt: int
    name: str
    backend: str
    state: str
    exit_code: int | None
    tries: int
    workdir: str


@dataclass(frozen=True)
class AttemptTicket:
    """What an asset needs to run an attempt it was allowed to start."""

    attempt_id: int
    number: int
    processing: str
    calibration: str
    submitted_by: str
    expert_config: dict[str, Any]
    job_config: dict[str, Any]
    requested_iov: IoV
    workdir: Path
    payload_dir: Path


class LoopService:
    """Applies the loop's rules for every processing; one instance per database and script set."""

    def __init__(self, database_url: str, scripts, clock: Callable[[], datetime] = utcnow) -> None:
        self.database_url = database_url
        self.scripts = scripts
        self.clock = clock
        self.steps: dict[str, StepInfo] = build_steps(scripts.calibrations)
        self.order: list[str] = step_graph(self.steps).order()
        self.outbox = TicketOutbox(self.session)

    def notify(self, *events) -> None:
        """Ticket messages, stored once each (dedup keys) and sent to Jira by the ticket sensor.

        Called after the state change has been committed, never inside an open session.
        """
        for event in events:
            if event.calibration == CDST_STEP:
                continue
            if hasattr(event, "rendered"):  # the loop's own notices (loop/notices.py)
                msg = event.rendered()
                with self.session() as s:
                    ticket_repo.add_message(
                        s,
                        processing=msg.processing,
                        calibration=msg.calibration,
                        kind=msg.kind,
                        dedup_key=msg.dedup_key,
                        body=msg.body,
                        attachments=[dict(a) for a in msg.attachments],
                    )
            else:
                self.outbox.post(event)

    @contextmanager
    def session(self) -> Iterator[Session]:
        with db_engine.session_scope(db_engine.make_engine(self.database_url)) as session:
            yield session

    # --- processings -------------------------------------------------------------------------
    def open_processing_names(self) -> list[str]:
        with self.session() as s:
            return [p.name for p in processings.list_processings(s, state="open")]

    def all_processing_names(self) -> list[str]:
        with self.session() as s:
            return [p.name for p in processings.list_processings(s)]

    def processing_iovs(self, state: str | None = "open") -> dict[str, IoV]:
        with self.session() as s:
            return {
                p.name: IoV(p.exp_low, p.run_low, p.exp_high, p.run_high)
                for p in processings.list_processings(s, state=state)
            }

    def catalog_after(self, last_id: int, limit: int = 5000) -> list[dict[str, Any]]:
        """Catalog files registered after ``last_id`` (the data-arrival sensor's cursor), oldest first."""
        with self.session() as s:
            return [
                {
                    "id": f.id,
                    "data_tag": f.data_tag,
                    "data_format": f.data_format,
                    "exp": f.run.exp,
                    "run": f.run.run,
                    "n_events": f.n_events,
                    "processing_id": f.processing_id,
                }
                for f in catalog.files_after(s, last_id, limit)
            ]

    def sync_processing(self, s: Session, processing: str) -> list:
        """Make sure every step has its row; new scripts join open processings as waiting.

        Existing rows are left alone (a manager may have reassigned the expert). Returns the
        ticket events of the new rows, to post once the session is committed.
        """
        existing = {row.calibration for row in calibrations.list_calibrations(s, processing)}
        missing = {name: step.expert_username for name, step in self.steps.items() if name not in existing}
        if not missing:
            return []
        calibrations.ensure_calibrations(s, processing, missing)
        window = processings.get_processing(s, processing).window_hours
        return [
            ticket_events.Created(processing, name, expert, None, window) for name, expert in missing.items()
        ]

    def statuses(self, s: Session, processing: str) -> dict[str, StepStatus]:
        rows = {row.calibration: row for row in calibrations.list_calibrations(s, processing)}
        return {
            name: StepStatus(
                state="excluded" if rows[name].excluded else rows[name].state,
                excluded=rows[name].excluded,
                deadline=rows[name].deadline,
            )
            for name in self.order
            if name in rows
        }

    def available_tags(self, s: Session, processing: str) -> set[str]:
        proc = processings.get_processing(s, processing)
        files = catalog.files_for(
            s,
            exp_low=proc.exp_low,
            run_low=proc.run_low,
            exp_high=proc.exp_high,
            run_high=proc.run_high,
            data_tags=None,
            data_format="raw",
        )
        return {f.data_tag for f, _run, _url in files}

    # --- the tick ----------------------------------------------------------------------------
    def tick(self, now: datetime | None = None) -> TickReport:
        """Open windows whose inputs are ready, launch what passed its deadline, close finished processings."""
        now = now or self.clock()
        launches: list[Launch] = []
        opened: list[tuple[str, str]] = []
        finished: list[str] = []
        events: list = []
        for name in self.open_processing_names():
            with self.session() as s:
                events += self.sync_processing(s, name)
                proc = processings.get_processing(s, name)
                tags = self.available_tags(s, name)
                statuses = self.statuses(s, name)
                for step in steps_to_open(self.steps, statuses, tags):
                    if step == CDST_STEP:
                        calibrations.update_calibration(s, name, step, state="submitted")
                        launches.append(self._launch(s, name, step, "ready"))
                        continue
                    deadline = now + timedelta(hours=proc.window_hours)
                    calibrations.update_calibration(
                        s, name, step, state="window_open", window_opened_at=now, deadline=deadline
                    )
                    opened.append((name, step))
                    events.append(ticket_events.WindowOpen(name, step, deadline))
                statuses = self.statuses(s, name)
                for step in steps_past_deadline(statuses, now):
                    calibrations.update_calibration(s, name, step, state="submitted")
                    launches.append(self._launch(s, name, step, "deadline"))
                statuses = self.statuses(s, name)
                launches += self._check_launches(s, name, statuses)
                if processing_finished(statuses):
                    processings.set_processing_state(s, name, "finished")
                    finished.append(name)
        self.notify(*events)
        staging = [self.export_staging(name, by=AUTO_USER) for name in finished]
        return TickReport(launches=launches, opened=opened, finished_processings=finished, staging=staging)

    def _check_launches(self, s: Session, processing: str, statuses: dict[str, StepStatus]) -> list[Launch]:
        """Finished attempts whose payloads still need their checks (and, at automatic sites, the sign-off).

        An expert's run from the UI or an upload leaves the calibration ``finished`` without a sign-off.
        One launch per attempt (its run key); the sensor skips attempts whose own run is still going or
        already included the sign-off.
        """
        from b2cal_assets.loop.uploads import is_upload

        automatic = processings.get_processing(s, processing).site.signoff_policy == "automatic"
        out = []
        for step, status in statuses.items():
            if step == CDST_STEP or status.state != "finished" or status.excluded:
                continue
            latest = attempts.latest_attempt(s, processing, step)
            if latest is None or latest.state != "finished":
                continue
            if automatic:
                reason = "signoff"
            elif is_upload(latest):
                reason = "checks"
            else:
                continue  # a manual site: the expert signs off
            out.append(
                Launch(
                    processing=processing,
                    step=step,
                    reason=reason,
                    run_key=f"{processing}|{step}|{latest.number}|{reason}",
                    automatic_signoff=automatic,
                    attempt=latest.number,
                    attempt_run_id=latest.dagster_run_id,
                )
            )
        return out

    def _launch(self, s: Session, processing: str, step: str, reason: str) -> Launch:
        proc = processings.get_processing(s, processing)
        number = len(attempts.list_attempts(s, processing, step)) + 1
        held = attempts.latest_attempt(s, processing, step)
        expert_config: dict[str, Any] = {}
        job_config: dict[str, Any] = {}
        if held is not None and held.state == "held":
            expert_config, job_config = dict(held.expert_config), dict(held.job_config)
        return Launch(
            processing=processing,
            step=step,
            reason=reason,
            run_key=f"{processing}|{step}|{number}|{reason}",
            expert_config=expert_config,
            job_config=job_config,
            automatic_signoff=proc.site.signoff_policy == "automatic" and step != CDST_STEP,
            attempt=number,
        )

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
    ) -> AttemptTicket:
        """Record a new attempt if the rules allow it; raise ``LoopError`` saying why not.

        A launch by the loop (``auto``) takes over a held attempt (an expert's settings kept until
        the deadline, or a manager's restart) so the attempt keeps its submitter and settings.
        """
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
                    s, processing, calibration, submitted_by, expert_config, job_config, row.deadline
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
                workdir = home.attempt_work_dir(processing, calibration, attempt.number)
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
            if row.state != "window_open":
                raise LoopError(f"{calibration} in {processing} is {row.state}; submissions are taken while its window is open")
            now = self.clock()
            hold = proc.site.hold_until_deadline and row.deadline is not None and row.deadline > now
            deadline = row.deadline if hold else now
            number = self._hold(s, processing, calibration, by, dict(expert_config), dict(job_config or {}), deadline)
            if not hold:
                calibrations.update_calibration(s, processing, calibration, deadline=now)
        self.notify(*created, Held(processing, calibration, number, by, deadline, dict(expert_config)))
        if hold:
            return (
                f"{calibration} in {processing}: attempt {number} recorded; site {proc.site.name} starts jobs when "
                f"the window closes at {deadline:%Y-%m-%d %H:%M} UTC"
            )
        return f"{calibration} in {processing}: attempt {number} submitted; it starts at the next sensor tick"

    def _check_submission(self, s: Session, processing, calibration, row, latest, submitted_by) -> None:
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
                    "ask a manager to restart it with your settings once it ends"
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
                "ask a manager to restart it with your settings"
            )
        if submitted_by != AUTO_USER and row.state in ("failed", "finished", "rejected"):
            raise LoopError(
                f"{calibration} in {processing} has already run (state {row.state}); "
                "ask a manager to restart it"
            )

    def _hold(
        self, s: Session, processing, calibration, submitted_by, expert_config, job_config, deadline
    ) -> int:
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
            "submit_held",
            processing,
            calibration,
            {"expert_config": expert_config, "job_config": job_config, "until": deadline.isoformat()},
        )
        return attempt.number

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
        if target.exists():
            shutil.rmtree(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(outputdb, target)
        rows = [(e.name, e.checksum, tuple(e.iov), str(target / Path(e.file).name)) for e in entries]
        with self.session() as s:
            recorded = payloads.record_payloads(
                s, ticket.processing, ticket.calibration, ticket.attempt_id, rows, source="job"
            )
            attempts.finish_attempt(s, ticket.attempt_id, "finished", iterations=iterations)
            calibrations.update_calibration(s, ticket.processing, ticket.calibration, state="finished")
            return [_payload_view(p) for p in recorded]

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

    # --- inputs of a job ---------------------------------------------------------------------
    def input_data(
        self, processing: str, calibration: str, filter_overrides: dict[str, list[str]] | None = None
    ) -> dict[str, dict[str, IoV]]:
        """``{data_name: {path_or_url: IoV of its run}}`` for the calibration's data, filters applied."""
        settings = self.scripts.calibrations[calibration].settings
        formats = [f.lower() for f in settings.input_data_formats]
        filters = dict(settings.input_data_filters or {})
        filters.update(filter_overrides or {})
        data_format = "cdst" if "cdst" in formats else formats[0]
        with self.session() as s:
            proc = processings.get_processing(s, processing)
            rows = catalog.files_for(
                s,
                exp_low=proc.exp_low,
                run_low=proc.run_low,
                exp_high=proc.exp_high,
                run_high=proc.run_high,
                data_tags=sorted(settings.input_data_names),
                data_format=data_format,
                processing_name=processing if data_format == "cdst" else None,
            )
            site = proc.site
            result: dict[str, dict[str, IoV]] = {name: {} for name in sorted(settings.input_data_names)}
            for f, run, location in rows:
                info = RunInfo(
                    exp=run.exp,
                    run=run.run,
                    run_type=run.run_type,
                    magnet=run.magnet,
                    beam_energy=run.beam_energy,
                    data_quality=run.data_quality,
                    duration_minutes=run.duration_minutes,
                    data_tag=f.data_tag,
                )
                if run_matches(filters.get(f.data_tag, []), info):
                    result[f.data_tag][site_location(location, site.storage_root, site.path_prefix)] = IoV(
                        run.exp, run.run, run.exp, run.run
                    )
            return result

    def raw_files_by_run(self, processing: str, data_tag: str) -> dict[tuple[int, int], list[str]]:
        with self.session() as s:
            proc = processings.get_processing(s, processing)
            rows = catalog.files_for(
                s,
                exp_low=proc.exp_low,
                run_low=proc.run_low,
                exp_high=proc.exp_high,
                run_high=proc.run_high,
                data_tags=[data_tag],
                data_format="raw",
            )
            by_run: dict[tuple[int, int], list[str]] = {}
            for _f, run, location in rows:
                by_run.setdefault((run.exp, run.run), []).append(location)  # read here, by this process
            return by_run

    def register_cdst(
        self, processing: str, *, path: str, data_tag: str, exp: int, run: int, n_events: int
    ) -> None:
        with self.session() as s:
            catalog.register_file(
                s,
                path=path,
                data_tag=data_tag,
                data_format="cdst",
                exp=exp,
                run=run,
                run_info={},
                n_events=n_events,
                size_bytes=Path(path).stat().st_size if Path(path).exists() else 0,
                processing_name=processing,
            )

    def database_chain(self, processing: str, calibration: str) -> list[Path]:
        """Global tags first, then the signed-off payloads of every calibration before this one."""
        with self.session() as s:
            proc = processings.get_processing(s, processing)
            chain = [home.globaltag_dir(tag) for tag in proc.global_tags]
            done = {
                row.calibration
                for row in calibrations.list_calibrations(s, processing)
                if row.state == "signed_off" and not row.excluded
            }
            ancestors = self._ancestors(calibration)
            for name in self.order:
                if name in ancestors and name in done:
                    current = payloads.current_payloads(s, processing, name)
                    dirs = sorted({str(Path(p.file).parent) for p in current})
                    chain.extend(Path(d) for d in dirs)
            return [p for p in chain if p.exists()]

    def _ancestors(self, name: str) -> set[str]:
        seen: set[str] = set()
        todo = list(self.steps[name].depends_on)
        while todo:
            dep = todo.pop()
            if dep not in seen and dep in self.steps:
                seen.add(dep)
                todo.extend(self.steps[dep].depends_on)
        return seen

    def current_payloads(self, processing: str, calibration: str) -> list[dict[str, Any]]:
        with self.session() as s:
            return [_payload_view(p) for p in payloads.current_payloads(s, processing, calibration)]

    def processing_iov(self, processing: str) -> IoV:
        with self.session() as s:
            p = processings.get_processing(s, processing)
            return IoV(p.exp_low, p.run_low, p.exp_high, p.run_high)

    def site_of(self, processing: str) -> dict[str, Any]:
        with self.session() as s:
            site = processings.get_processing(s, processing).site
            return {
                "name": site.name,
                "backend": site.backend,
                "backend_args": dict(site.backend_args or {}),
                "signoff_policy": site.signoff_policy,
                "hold_until_deadline": site.hold_until_deadline,
                "path_prefix": site.path_prefix,
            }

    # --- management ----------------------------------------------------------------------------
    def exclude(self, processing: str, calibration: str, *, by: str, reason: str = "") -> None:
        """Leave a calibration out; its dependents use the payloads already in the global-tag chain."""
        self._require_calibration(calibration)
        with self.session() as s:
            row = calibrations.get_calibration(s, processing, calibration)
            if row.state in ("submitted", "running"):
                raise LoopError(
                    f"{calibration} in {processing} is {row.state}; wait for it to end before excluding it"
                )
            if row.excluded:
                raise LoopError(f"{calibration} is already excluded from {processing}")
            calibrations.update_calibration(s, processing, calibration, excluded=True)
            audit.record_audit(s, by, "exclude", processing, calibration, {"reason": reason})
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
            calibrations.update_calibration(s, processing, calibration, **fields)
            audit.record_audit(s, by, "include", processing, calibration, {})
            occurrence = self._count_audit(s, processing, calibration, "include")
        self.notify(Included(processing, calibration, by, occurrence))

    def reassign(self, processing: str, calibration: str, *, expert: str, by: str) -> None:
        self._require_calibration(calibration)
        if not expert.strip():
            raise LoopError("the new expert's user name is empty")
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
        """Run a failed (or rejected) calibration again with the same settings, as a new attempt.

        The old attempt and its logs stay where they are; the loop sensor launches the new one.
        """
        self._require_calibration(calibration)
        with self.session() as s:
            row = calibrations.get_calibration(s, processing, calibration)
            if row.excluded:
                raise LoopError(f"{calibration} is excluded from {processing}; include it first")
            if row.state not in ("failed", "rejected", "finished"):
                raise LoopError(
                    f"only a failed, rejected or finished calibration can be restarted; {calibration} in "
                    f"{processing} is {row.state}"
                )
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
            attempts.set_attempt_state(s, attempt.id, "held")
            now = self.clock()
            calibrations.update_calibration(
                s, processing, calibration, state="window_open", window_opened_at=now, deadline=now
            )
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

    def signed_off_payloads(self, processing: str) -> list[SignedOffPayload]:
        with self.session() as s:
            done = [
                row.calibration
                for row in calibrations.list_calibrations(s, processing)
                if row.state == "signed_off" and not row.excluded and row.calibration != CDST_STEP
            ]
            return [
                SignedOffPayload(
                    p.name,
                    p.revision,
                    p.checksum,
                    IoV(p.exp_low, p.run_low, p.exp_high, p.run_high),
                    Path(p.file),
                    name,
                )
                for name in done
                for p in payloads.current_payloads(s, processing, name)
            ]

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

    def job_rows(self, processing: str, calibration: str | None = None) -> list[JobRow]:
        """The collector subjobs of each calibration's latest attempt that ran jobs."""
        with self.session() as s:
            names = [calibration] if calibration else [n for n in self.order if n in self.steps]
            out = []
            for name in names:
                latest = attempts.latest_attempt(s, processing, name)
                if latest is None:
                    continue
                for job in jobs.list_jobs(s, latest.id):
                    out.append(
                        JobRow(
                            processing,
                            name,
                            latest.number,
                            job.name,
                            job.backend,
                            job.state,
                            job.exit_code,
                            job.tries,
                            job.workdir,
                        )
                    )
            return out

    def _require_calibration(self, calibration: str) -> None:
        if calibration not in self.scripts.calibrations:
            known = ", ".join(sorted(self.scripts.calibrations))
            raise LoopError(f"no calibration {calibration!r}; known: {known}")

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
        self, processing: str, calibration: str, *, decision: str, by: str, comment: str = "", automatic: bool
    ) -> str:
        """Accept or reject the latest finished attempt; returns the new state."""
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
                audit.record_audit(
                    s, by, f"signoff_{decision}", processing, calibration, {"comment": comment}
                )
            number = latest.number if latest else 0
        if decision == "accept":
            self.notify(ticket_events.SignedOff(processing, calibration, number, by, automatic, comment))
        else:
            self.notify(ticket_events.Rejected(processing, calibration, number, by, comment))
        return state

    def status_rows(self, processing: str) -> list[StepRow]:
        """One row per step, in run order: what a manager's status view and the demo table show."""
        with self.session() as s:
            statuses = self.statuses(s, processing)
            rows = {row.calibration: row for row in calibrations.list_calibrations(s, processing)}
            blocked = blocked_by_rejection(self.order, self.steps, statuses)
            result = []
            for name in self.order:
                if name not in statuses:
                    continue
                latest = attempts.latest_attempt(s, processing, name)
                current = payloads.current_payloads(s, processing, name) if name != CDST_STEP else []
                wall = None
                if latest is not None and latest.started_at and latest.finished_at:
                    wall = (latest.finished_at - latest.started_at).total_seconds()
                job_states = [j.state for j in jobs.list_jobs(s, latest.id)] if latest is not None else []
                result.append(
                    StepRow(
                        processing=processing,
                        step=name,
                        stage=self.steps[name].stage.value,
                        state=statuses[name].state,
                        expert=rows[name].expert_username,
                        attempts=latest.number if latest else 0,
                        iterations=latest.iterations if latest else 0,
                        payloads=len(current),
                        wall_seconds=wall,
                        deadline=statuses[name].deadline,
                        error=(latest.error if latest and latest.state == "failed" else ""),
                        blocked_by=blocked.get(name, ""),
                        excluded=rows[name].excluded,
                        submitted_by=latest.submitted_by if latest else "",
                        attempt_state=latest.state if latest else "",
                        jobs=_jobs_summary(job_states),
                        uses_global_tag=rows[name].excluded,
                    )
                )
            return result

    def step_states(self, processing: str) -> dict[str, str]:
        with self.session() as s:
            return {name: st.state for name, st in self.statuses(s, processing).items()}

    def blocked(self, processing: str) -> dict[str, str]:
        with self.session() as s:
            return blocked_by_rejection(self.order, self.steps, self.statuses(s, processing))

    def is_done(self, processing: str, step: str) -> bool:
        return self.step_states(processing).get(step) in DONE_STATES


def _checkpoint_subjobs(workdir: Path) -> list[dict[str, Any]]:
    """The subjobs the runner checkpointed in ``workdir/state.json`` (what a failed attempt leaves)."""
    import json

    from b2cal_assets.caf.runner import STATE_FILE

    try:
        data = json.loads((Path(workdir) / STATE_FILE).read_text())
    except (OSError, ValueError):
        return []
    return [sj for cs in data.get("calibrations", {}).values() for sj in cs.get("subjobs", [])]


def _jobs_summary(states: list[str]) -> str:
    counts: dict[str, int] = {}
    for state in states:
        counts[state] = counts.get(state, 0) + 1
    return ", ".join(f"{n} {state}" for state, n in sorted(counts.items()))


def site_location(path: str, storage_root: str, prefix: str) -> str:
    """Where a job opens a catalog file: behind the site's ``path_prefix``, relative to its storage root.

    ``/data/calib/f.root`` at storage root ``/data`` behind ``root://h:1094/`` is
    ``root://h:1094//calib/f.root``. A file outside the storage root (a cDST this installation made)
    is read where it is, on the shared file system; without a prefix every path is used as it is.
    """
    if not prefix or "://" in path:
        return path
    if storage_root:
        root = Path(storage_root)
        if not Path(path).is_relative_to(root):
            return path
        path = "/" + str(Path(path).relative_to(root))
    return prefixed(path, prefix)


def _payload_view(p) -> dict[str, Any]:
    return {
        "name": p.name,
        "revision": p.revision,
        "checksum": p.checksum,
        "iov": IoV(p.exp_low, p.run_low, p.exp_high, p.run_high),
        "file": p.file,
        "source": p.source,
    }
