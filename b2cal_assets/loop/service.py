"""The loop's actions on the calibration database, shared by sensors, assets, the CLI and the web pages."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from b2cal_assets.db import engine as db_engine
from b2cal_assets.db.models import utcnow
from b2cal_assets.db.repo import calibrations, catalog, processings
from b2cal_assets.domain.iov import IoV
from b2cal_assets.loop.attempt_rules import AttemptRules
from b2cal_assets.loop.job_inputs import JobInputs, site_location  # noqa: F401
from b2cal_assets.loop.management import Management
from b2cal_assets.loop.readiness import (
    StepStatus,
    blocked_by_rejection,
    processing_finished,
    steps_past_deadline,
    steps_to_open,
)
from b2cal_assets.loop.reconcile import Reconciliation, RunLookup, post_in_session
from b2cal_assets.loop.records import (  # noqa: F401
    AUTO_USER,
    AttemptTicket,
    JobRow,
    Launch,
    LoopError,
    StepRow,
    SubmissionHeld,
    TickReport,
)
from b2cal_assets.loop.status import StatusViews
from b2cal_assets.loop.steps import CDST_STEP, DONE_STATES, StepInfo, build_steps, step_graph
from b2cal_assets.tickets import messages as ticket_events
from b2cal_assets.tickets.outbox import TicketOutbox


class LoopService(AttemptRules, JobInputs, Management, Reconciliation, StatusViews):
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
                with self.session() as s:
                    post_in_session(s, [event])
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
    def tick(self, now: datetime | None = None, runs: RunLookup | None = None) -> TickReport:
        """Open windows whose inputs are ready, submit what passed its deadline, close finished processings.

        Per processing, what the tick decides (states, reconciliation, ticket messages) is one
        transaction; the run requests are not stored but derived from what it committed, so a request
        Dagster never got is made again at the next tick under the same run key (``loop/reconcile.py``).
        ``runs`` is Dagster's view (the loop sensor passes it); without it only the steps submitted in
        this tick are launched and nothing is reconciled. Copying payloads for the staging tag is left
        to the staging sensor (``export_due_staging``).
        """
        now = now or self.clock()
        launches: list[Launch] = []
        opened: list[tuple[str, str]] = []
        finished: list[str] = []
        terminate: list[str] = []
        recovered: list[str] = []
        for name in self.open_processing_names():
            with self.session() as s:
                events = self.sync_processing(s, name)
                proc = processings.get_processing(s, name)
                tags = self.available_tags(s, name)
                statuses = self.statuses(s, name)
                fresh: set[str] = set()
                for step in steps_to_open(self.steps, statuses, tags):
                    if step == CDST_STEP:
                        self._submit_step(s, name, step)
                        fresh.add(step)
                        continue
                    deadline = now + timedelta(hours=proc.window_hours)
                    calibrations.update_calibration(
                        s, name, step, state="window_open", window_opened_at=now, deadline=deadline
                    )
                    opened.append((name, step))
                    events.append(ticket_events.WindowOpen(name, step, deadline))
                statuses = self.statuses(s, name)
                due = steps_past_deadline(statuses, now)
                due += [step for step in self.queued_to_start(s, name) if step not in due]
                for step in due:
                    self._submit_step(s, name, step)
                    fresh.add(step)
                plan = self.reconcile_processing(s, name, fresh, runs)
                launches += plan.launches
                terminate += plan.terminate
                recovered += plan.recovered
                events += plan.events
                statuses = self.statuses(s, name)
                if processing_finished(statuses):
                    processings.set_processing_state(s, name, "finished")
                    processings.get_processing(s, name).staging_due = True
                    finished.append(name)
                post_in_session(s, events)
        return TickReport(
            launches=launches,
            opened=opened,
            finished_processings=finished,
            terminate=terminate,
            recovered=recovered,
        )

    def _submit_step(self, s: Session, processing: str, step: str) -> None:
        """The step is to run now: its run request is derived from this state at every tick."""
        calibrations.update_calibration(s, processing, step, state="submitted", relaunches=0)

    def export_due_staging(self) -> list:
        """The staging tags of processings that finished since their last export (the staging sensor).

        Exporting copies payload files, so it is not part of the loop's tick; a processing is marked
        due in the tick's transaction and unmarked once its export (or the refusal) is recorded.
        """
        with self.session() as s:
            due = [p.name for p in processings.list_processings(s) if p.staging_due]
        results = []
        for name in due:
            results.append(self.export_staging(name, by=AUTO_USER))
            with self.session() as s:
                processings.get_processing(s, name).staging_due = False
        return results

    def _ancestors(self, name: str) -> set[str]:
        seen: set[str] = set()
        todo = list(self.steps[name].depends_on)
        while todo:
            dep = todo.pop()
            if dep not in seen and dep in self.steps:
                seen.add(dep)
                todo.extend(self.steps[dep].depends_on)
        return seen

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

    def _require_calibration(self, calibration: str) -> None:
        if calibration not in self.scripts.calibrations:
            known = ", ".join(sorted(self.scripts.calibrations))
            raise LoopError(f"no calibration {calibration!r}; known: {known}")

    def step_states(self, processing: str) -> dict[str, str]:
        with self.session() as s:
            return {name: st.state for name, st in self.statuses(s, processing).items()}

    def blocked(self, processing: str) -> dict[str, str]:
        with self.session() as s:
            return blocked_by_rejection(self.order, self.steps, self.statuses(s, processing))

    def is_done(self, processing: str, step: str) -> bool:
        return self.step_states(processing).get(step) in DONE_STATES
