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
from b2cal_assets.db import engine as db_engine
from b2cal_assets.db.models import utcnow
from b2cal_assets.db.repo import attempts, audit, calibrations, catalog, payloads, processings, signoffs
from b2cal_assets.domain.filters import RunInfo, run_matches
from b2cal_assets.domain.iov import IoV
from b2cal_assets.loop.readiness import (
    StepStatus,
    blocked_by_rejection,
    missing_inputs,
    processing_finished,
    steps_past_deadline,
    steps_to_open,
)
from b2cal_assets.loop.steps import CDST_STEP, DONE_STATES, StepInfo, build_steps, step_graph

AUTO_USER = "auto"


class LoopError(Exception):
    """A request the loop's rules refuse; the message says why and what to do instead."""


@dataclass(frozen=True)
class Launch:
    """A step the loop wants a Dagster run for."""

    processing: str
    step: str
    reason: str  # deadline | ready | restart
    run_key: str
    expert_config: dict[str, Any] = field(default_factory=dict)
    job_config: dict[str, Any] = field(default_factory=dict)
    automatic_signoff: bool = False


@dataclass(frozen=True)
class TickReport:
    launches: list[Launch]
    opened: list[tuple[str, str]]
    finished_processings: list[str]


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

    def sync_processing(self, s: Session, processing: str) -> None:
        """Make sure every step has its row; new scripts join open processings as waiting."""
        calibrations.ensure_calibrations(
            s, processing, {name: step.expert_username for name, step in self.steps.items()}
        )

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
        for name in self.open_processing_names():
            with self.session() as s:
                self.sync_processing(s, name)
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
                statuses = self.statuses(s, name)
                for step in steps_past_deadline(statuses, now):
                    calibrations.update_calibration(s, name, step, state="submitted")
                    launches.append(self._launch(s, name, step, "deadline"))
                statuses = self.statuses(s, name)
                if processing_finished(statuses):
                    processings.set_processing_state(s, name, "finished")
                    finished.append(name)
        return TickReport(launches=launches, opened=opened, finished_processings=finished)

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
        """Record a new attempt if the rules allow it; raise ``LoopError`` saying why not."""
        with self.session() as s:
            self.sync_processing(s, processing)
            proc = processings.get_processing(s, processing)
            row = calibrations.get_calibration(s, processing, calibration)
            statuses = self.statuses(s, processing)
            if row.excluded:
                raise LoopError(
                    f"{calibration} is excluded from processing {processing} by a manager; include it again first"
                )
            if row.state in ("signed_off",):
                raise LoopError(
                    f"{calibration} is already signed off in {processing}; a manager can restart it to run again"
                )
            if row.state == "running":
                raise LoopError(f"{calibration} is already running in {processing}; wait for it or cancel its run")
            if row.state == "waiting":
                waiting_for = missing_inputs(self.steps[calibration], statuses, self.available_tags(s, processing))
                raise LoopError(
                    f"{calibration} cannot be submitted yet in {processing}: its window opens when its inputs are "
                    f"ready (waiting for: {', '.join(waiting_for) or 'the next sensor tick'})"
                )
            if submitted_by != AUTO_USER and row.state == "submitted":
                latest = attempts.latest_attempt(s, processing, calibration)
                if latest is None or latest.submitted_by == AUTO_USER or latest.state != "held":
                    raise LoopError(
                        f"{calibration} in {processing} was already submitted with its defaults after the deadline; "
                        "ask a manager to restart it with your settings"
                    )
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
            attempts.start_attempt(s, attempt.id, workdir=str(workdir))
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
            return AttemptTicket(
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

    def fail_attempt(self, ticket: AttemptTicket, error: str, iterations: int = 0) -> None:
        with self.session() as s:
            attempts.finish_attempt(s, ticket.attempt_id, "failed", iterations=iterations, error=error)
            calibrations.update_calibration(s, ticket.processing, ticket.calibration, state="failed")

    def finish_attempt(self, ticket: AttemptTicket, outputdb: Path, entries: list, iterations: int) -> list:
        """Copy the outputdb into the payload store and record its payloads as new revisions."""
        target = ticket.payload_dir / "outputdb"
        if target.exists():
            shutil.rmtree(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(outputdb, target)
        rows = [
            (e.name, e.checksum, tuple(e.iov), str(target / Path(e.file).name))
            for e in entries
        ]
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
            prefix = proc.site.path_prefix or ""
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
                    result[f.data_tag][_with_prefix(location, prefix)] = IoV(run.exp, run.run, run.exp, run.run)
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
            prefix = proc.site.path_prefix or ""
            by_run: dict[tuple[int, int], list[str]] = {}
            for _f, run, location in rows:
                by_run.setdefault((run.exp, run.run), []).append(_with_prefix(location, prefix))
            return by_run

    def register_cdst(self, processing: str, *, path: str, data_tag: str, exp: int, run: int, n_events: int) -> None:
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
                audit.record_audit(s, by, f"signoff_{decision}", processing, calibration, {"comment": comment})
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


def _with_prefix(location: str, prefix: str) -> str:
    """``root://host:port/`` + ``/abs/path`` gives ``root://host:port//abs/path`` (XRootD's absolute form)."""
    if not prefix or "://" in location:
        return location
    return prefix.rstrip("/") + "/" + location


def _payload_view(p) -> dict[str, Any]:
    return {
        "name": p.name,
        "revision": p.revision,
        "checksum": p.checksum,
        "iov": IoV(p.exp_low, p.run_low, p.exp_high, p.run_high),
        "file": p.file,
        "source": p.source,
    }
