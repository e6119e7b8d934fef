"""The loop's tick: open windows whose inputs are ready, submit what passed its deadline, finish processings."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from b2cal_assets.db.repo import condb, processings
from b2cal_assets.domain.states import CalibrationState, ProcessingState
from b2cal_assets.loop.attempt_rules import AttemptRules
from b2cal_assets.loop.condb import condb_tag_name, upload_moment
from b2cal_assets.loop.context import LoopContext
from b2cal_assets.loop.disk_room import RoomAgain, record_room_again, resumes_due
from b2cal_assets.loop.management import Management
from b2cal_assets.loop.notices import LoopEvent, post_in_session
from b2cal_assets.loop.readiness import processing_finished, steps_past_deadline, steps_to_open
from b2cal_assets.loop.reconcile import Reconciler, Recovered, RunLookup
from b2cal_assets.loop.records import AUTO_USER, Launch, TickReport
from b2cal_assets.loop.staging import StagingResult
from b2cal_assets.loop.step_states import StepStates
from b2cal_assets.loop.steps import CDST_STEP
from b2cal_assets.loop.transitions import move_calibration
from b2cal_assets.tickets import messages as ticket_events


class Ticker:
    """One ``tick`` for every open processing, as the loop sensor calls it."""

    def __init__(
        self,
        ctx: LoopContext,
        states: StepStates,
        attempts: AttemptRules,
        reconciler: Reconciler,
        management: Management,
    ) -> None:
        self.ctx = ctx
        self.states = states
        self.attempts = attempts
        self.reconciler = reconciler
        self.management = management

    def tick(
        self, now: datetime | None = None, runs: RunLookup | None = None, only: str | None = None
    ) -> TickReport:
        """Open windows whose inputs are ready, submit what passed its deadline, close finished processings.

        Per processing, what the tick decides (states, reconciliation, ticket messages) is one
        transaction; the run requests are not stored but derived from what it committed, so a request
        Dagster never got is made again at the next tick under the same run key (``loop/reconcile.py``).
        ``runs`` is Dagster's view (the loop sensor passes it); without it only the steps submitted in
        this tick are launched and nothing is reconciled. A step whose attempt failed for lack of room
        is restarted from its checkpoint once there is room again (``loop/disk_room.py``). Copying
        payloads for the staging tag is left to the staging sensor (``export_due_staging``).

        ``only``: tick that one processing (an automatic sign-off launches its ready dependents at
        once, ``defs/hops.py``). Each processing's transaction takes the processing's lock first, so
        such a tick and the sensor's never decide on the same processing at the same time.
        """
        now = now or self.ctx.clock()
        launches: list[Launch] = []
        opened: list[tuple[str, str]] = []
        finished: list[str] = []
        terminate: list[str] = []
        recovered: list[str] = []
        with self.ctx.session() as s:
            names = [p.name for p in processings.list_processings(s, state=ProcessingState.OPEN)]
        for name in names:
            if only is not None and name != only:
                continue
            with self.ctx.session() as s:
                processings.lock_processing(s, name)
                events: list[LoopEvent | ticket_events.TicketEvent] = [*self.states.sync(s, name)]
                proc = processings.get_processing(s, name)
                tags = self.states.available_tags(s, name)
                statuses = self.states.statuses(s, name)
                fresh: set[str] = set()
                for step in steps_to_open(self.ctx.steps, statuses, tags):
                    if step == CDST_STEP:
                        self._submit_step(s, name, step)
                        fresh.add(step)
                        continue
                    deadline = now + timedelta(hours=proc.window_hours)
                    move_calibration(
                        s, name, step, CalibrationState.WINDOW_OPEN, window_opened_at=now, deadline=deadline
                    )
                    opened.append((name, step))
                    events.append(ticket_events.WindowOpen(name, step, deadline))
                for room in resumes_due(s, name):
                    message = self._resume_with_room(s, name, room, events)
                    recovered.append(f"{name}/{room.calibration}: {message}")
                statuses = self.states.statuses(s, name)
                due = steps_past_deadline(statuses, now)
                due += [step for step in self.attempts.queued_to_start(s, name) if step not in due]
                for step in due:
                    self._submit_step(s, name, step)
                    fresh.add(step)
                plan = self.reconciler.reconcile_processing(s, name, fresh, runs)
                launches += plan.launches
                terminate += plan.terminate
                recovered += plan.recovered
                events += plan.events
                statuses = self.states.statuses(s, name)
                if processing_finished(statuses):
                    processings.set_processing_state(s, name, ProcessingState.FINISHED)
                    processings.get_processing(s, name).staging_due = True
                    if upload_moment() == "processing":
                        condb.mark_condb_due(s, name, condb_tag_name(name))
                    finished.append(name)
                post_in_session(s, events)
        return TickReport(
            launches=launches,
            opened=opened,
            finished_processings=finished,
            terminate=terminate,
            recovered=recovered,
        )

    def _resume_with_room(
        self,
        s: Session,
        processing: str,
        room: RoomAgain,
        events: list[LoopEvent | ticket_events.TicketEvent],
    ) -> str:
        """An attempt failed for lack of room and there is room again: the loop restarts it (from its
        checkpoint, as a manager's restart does); the held attempt starts in this tick. Its ticket
        messages go to ``events``; returns the line for the sensor's log."""
        restarted = self.management.restart_in(s, processing, room.calibration, by=AUTO_USER)
        message = record_room_again(s, processing, room, restarted.attempt)
        events += [
            restarted,
            Recovered(processing, room.calibration, "room_again", message, str(room.attempt)),
        ]
        return message

    def _submit_step(self, s: Session, processing: str, step: str) -> None:
        """The step is to run now: its run request is derived from this state at every tick."""
        move_calibration(s, processing, step, CalibrationState.SUBMITTED, relaunches=0)

    def export_due_staging(self) -> list[StagingResult]:
        """The staging tags of processings that finished since their last export (the staging sensor).

        Exporting copies payload files, so it is not part of the loop's tick; a processing is marked
        due in the tick's transaction and unmarked once its export (or the refusal) is recorded.
        """
        with self.ctx.session() as s:
            due = [p.name for p in processings.list_processings(s) if p.staging_due]
        results = []
        for name in due:
            results.append(self.management.export_staging(name, by=AUTO_USER))
            with self.ctx.session() as s:
                processings.get_processing(s, name).staging_due = False
        return results
