"""Reconciliation: every loop tick compares the calibration database with Dagster's runs.

The loop asks Dagster for runs by *run key*; Dagster starts a run key once (a second request with the
same key is skipped, whatever became of the first run). So the run requests of a tick are not stored
anywhere: they are derived from the calibration database at every tick, and a request that got lost
(the daemon killed between the tick's commit and the run's creation, a sensor tick that failed) is
simply made again with the same key. When a run ended without doing its work, the step is launched
again under a new key: ``processing_calibration.launch_generation`` is part of every key and goes up by
one, in the same transaction that records why.

What each state of a step needs from Dagster, and what the loop does when it is not there:

- ``submitted``: a run for the current key. None found although the step was submitted at an earlier
  tick: the request was lost, it is made again (same key). The run ended (failed, cancelled, or even
  succeeded) and no attempt came of it (its launch timed out, the calibration database was down when it
  started): the step is launched again (next generation), at most ``MAX_RELAUNCHES`` times in a row;
  then it is failed with the reasons, for a manager to restart.
- ``running``: the run of its attempt in flight. That run gone or ended while the attempt still says
  running (its worker was killed, the database was down when it ended): the attempt is resumed from its
  checkpoint (``workdir/state.json``) by a run that takes it over (tag ``b2cal/resume_run_id``), at most
  ``MAX_RESUMES`` times per attempt. A cancelled run fails its attempt (a person cancelled it).
- ``finished`` at an automatic site (or an upload): the checks and sign-off run. One that failed or was
  cancelled before it started is launched again; one that ran and did not sign off is left to people.
- an attempt a manager cancelled (restart, exclusion) whose run is still going: the run is terminated.

Every such decision is an audit entry by ``auto`` (the calibration page's history), a line in
``b2cal status`` and a ticket message, written in the transaction of the decision.

Nothing here imports Dagster: the sensor hands in a ``RunLookup`` (``defs/sensors.py``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy.orm import Session

from b2cal_assets.db.models import Attempt, ProcessingCalibration
from b2cal_assets.db.repo import attempts, audit, calibrations, processings
from b2cal_assets.db.repo import tickets as ticket_repo
from b2cal_assets.loop.decisions import launch_origin
from b2cal_assets.loop.records import AUTO_USER, Launch
from b2cal_assets.loop.steps import CDST_STEP
from b2cal_assets.loop.uploads import is_upload
from b2cal_assets.redaction import without_server_paths
from b2cal_assets.tickets import messages as ticket_events
from b2cal_assets.tickets.messages import RenderedMessage, dedup_key

MAX_RELAUNCHES = 5  # launches in a row of one submission that never got an attempt going
MAX_RESUMES = 3  # automatic resumes of one attempt whose run died
RESUME_TAG = "b2cal/resume_run_id"
CANCEL_WINDOW = timedelta(hours=6)  # how long after a cancel the loop still watches the attempt's run

IN_FLIGHT = frozenset({"QUEUED", "NOT_STARTED", "STARTING", "STARTED", "CANCELING"})
AUDIT_PREFIX = "loop_"


@dataclass(frozen=True)
class RunInfo:
    """What the loop needs to know of a Dagster run."""

    run_id: str
    status: str  # a DagsterRunStatus name: QUEUED, NOT_STARTED, STARTING, STARTED, SUCCESS, FAILURE, ...
    started: bool = False  # its worker started executing it (the run has a start time)

    @property
    def in_flight(self) -> bool:
        return self.status in IN_FLIGHT

    @property
    def not_created_yet(self) -> bool:
        """Made by a sensor but never submitted (the daemon stopped in between): a new request launches it."""
        return self.status == "NOT_STARTED"


class RunLookup(Protocol):
    """Dagster's runs as the loop sees them (``defs/sensors.DagsterRuns``; a dict-backed fake in tests)."""

    def by_key(self, run_key: str) -> RunInfo | None:
        """The newest run the loop sensor made for ``run_key``, or None."""

    def by_id(self, run_id: str) -> RunInfo | None:
        """The run, or None if Dagster has no such run (deleted)."""

    def why_ended(self, run_id: str) -> str:
        """One line: the run's failure or cancel message."""


@dataclass
class Plan:
    """What reconciling one processing asks of Dagster, and the events to store with the decision."""

    launches: list[Launch] = field(default_factory=list)
    terminate: list[str] = field(default_factory=list)  # run ids of attempts a manager cancelled
    events: list = field(default_factory=list)
    recovered: list[str] = field(default_factory=list)  # one line per recovery, for the sensor's log


@dataclass(frozen=True)
class Recovered:
    """The loop relaunched, resumed or gave up on a step by itself: the ticket's message."""

    processing: str
    calibration: str
    kind: str  # requested_again | relaunched | resumed | run_cancelled | gave_up | repaired
    message: str
    occurrence: str

    def rendered(self) -> RenderedMessage:
        key = dedup_key(self.processing, self.calibration, f"loop_{self.kind}", self.occurrence)
        return RenderedMessage(self.processing, self.calibration, f"loop_{self.kind}", key, self.message)


def run_key(processing: str, step: str, attempt: int, reason: str, generation: int) -> str:
    """Generation 0 keeps the keys of earlier versions; later generations are new keys for Dagster."""
    key = f"{processing}|{step}|{attempt}|{reason}"
    return key if generation == 0 else f"{key}|g{generation}"


def _short(text: str, limit: int = 300) -> str:
    line = " ".join((text or "").split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


class Reconciliation:
    """Mixed into ``LoopService``; uses its ``session``, ``steps`` and ``clock``."""

    # --- for the running attempt -----------------------------------------------------------------
    def attempt_state(self, attempt_id: int) -> str:
        with self.session() as s:
            return attempts.get_attempt(s, attempt_id).state

    def move_attempt_workdir(self, ticket, workdir) -> Any:
        """The attempt runs in ``workdir`` instead (its checkpoint elsewhere was of another job)."""
        import dataclasses

        with self.session() as s:
            attempts.get_attempt(s, ticket.attempt_id).workdir = str(workdir)
        return dataclasses.replace(ticket, workdir=workdir)

    # --- the tick's part -----------------------------------------------------------------------
    def reconcile_processing(
        self,
        s: Session,
        processing: str,
        fresh: set[str],
        runs: RunLookup | None,
    ) -> Plan:
        """The run requests of ``processing`` derived from the database, healed where Dagster disagrees.

        ``fresh``: steps the tick submitted just now (their request is made for the first time).
        Without ``runs`` (no Dagster: the CLI, tests of the rules) only those fresh steps and the
        sign-off checks are requested, and nothing is reconciled.
        """
        plan = Plan()
        proc = processings.get_processing(s, processing)
        automatic = proc.site.signoff_policy == "automatic"
        rows = {r.calibration: r for r in calibrations.list_calibrations(s, processing)}
        by_step: dict[str, list[Attempt]] = {}
        for a in attempts.list_attempts(s, processing):
            by_step.setdefault(a.calibration, []).append(a)
        for step in self.order:
            row = rows.get(step)
            if row is None:
                continue
            history = by_step.get(step, [])
            latest = history[-1] if history else None
            if runs is not None:
                self._terminate_cancelled(history, runs, plan)
            if row.excluded:
                continue
            if row.state == "submitted":
                self._reconcile_submitted(s, processing, row, history, step in fresh, runs, plan)
            elif row.state == "running" and runs is not None:
                self._reconcile_running(s, processing, row, latest, runs, plan)
            elif row.state == "finished" and step != CDST_STEP:
                self._reconcile_finished(s, processing, row, latest, automatic, runs, plan)
        return plan

    # --- submitted: the launch of a new (or held) attempt ---------------------------------------
    def _new_launch(self, s: Session, processing: str, row: ProcessingCalibration, history) -> Launch:
        step = row.calibration
        reason = "ready" if step == CDST_STEP else "deadline"
        number = len(history) + 1
        held = history[-1] if history and history[-1].state == "held" else None
        proc = processings.get_processing(s, processing)
        origin = launch_origin(s, processing, step, held)
        return Launch(
            processing=processing,
            step=step,
            reason=reason,  # part of the run key, kept as earlier versions made it
            run_key=run_key(processing, step, number, reason, row.launch_generation),
            expert_config=dict(held.expert_config) if held else {},
            job_config=dict(held.job_config) if held else {},
            automatic_signoff=proc.site.signoff_policy == "automatic" and step != CDST_STEP,
            attempt=number,
            submitted_by=origin.submitted_by,
            requested_by=origin.requested_by,
            why=reason if step == CDST_STEP else origin.reason,
        )

    def _reconcile_submitted(self, s, processing, row, history, fresh, runs, plan: Plan) -> None:
        launch = self._new_launch(s, processing, row, history)
        if runs is None:
            if fresh:
                plan.launches.append(launch)
            return
        run = runs.by_key(launch.run_key)
        if run is None:
            if not fresh and self._first_time(
                s, processing, row.calibration, "requested_again", launch.run_key
            ):
                self._event(
                    s,
                    plan,
                    processing,
                    row.calibration,
                    "requested_again",
                    f"*{row.calibration}* was submitted but Dagster has no run for it (the request was lost "
                    "between the loop's decision and Dagster); the loop requested it again under the same "
                    f"run key {launch.run_key}, so it cannot start twice.",
                    launch.run_key,
                    {"run_key": launch.run_key},
                )
            plan.launches.append(launch)
            return
        if run.not_created_yet:
            plan.launches.append(launch)  # Dagster launches the run it had made for this key
            return
        if run.in_flight:
            return
        if attempts.attempts_of_run(s, run.run_id):
            return  # the run recorded an attempt: the step's state follows from it, nothing to relaunch
        why = _short(runs.why_ended(run.run_id)) or run.status.lower()
        when = "after it started" if run.started else "before it started"
        if row.relaunches >= MAX_RELAUNCHES:
            message = (
                f"*{row.calibration}*: the loop launched it {row.relaunches + 1} times and each run ended "
                f"without starting an attempt; the last one ({run.run_id}) ended {when}: {why}. It is "
                "marked failed; a manager can restart it (b2cal manage restart) once the cause is fixed."
            )
            calibrations.update_calibration(s, processing, row.calibration, state="failed")
            self._event(
                s, plan, processing, row.calibration, "gave_up", message, run.run_id, {"run_id": run.run_id}
            )
            return
        relaunches = row.relaunches + 1
        calibrations.update_calibration(
            s,
            processing,
            row.calibration,
            launch_generation=row.launch_generation + 1,
            relaunches=relaunches,
        )
        relaunch = self._new_launch(s, processing, row, history)  # the row now has the new generation
        self._event(
            s,
            plan,
            processing,
            row.calibration,
            "relaunched",
            f"*{row.calibration}*: its run {run.run_id} ended ({run.status.lower()}) {when} without starting "
            f"an attempt: {why}. The loop launched it again (run key {relaunch.run_key}; relaunch "
            f"{relaunches} of at most {MAX_RELAUNCHES}).",
            relaunch.run_key,
            {"run_id": run.run_id, "status": run.status, "started": run.started, "run_key": relaunch.run_key},
        )
        plan.launches.append(relaunch)

    # --- running: the attempt's run must be in flight ------------------------------------------
    def _reconcile_running(self, s, processing, row, latest: Attempt | None, runs: RunLookup, plan) -> None:
        step = row.calibration
        if latest is None or latest.state not in ("running", "submitted"):
            # the step says running but no attempt is: follow the attempt (a half-recorded end)
            state = {"failed": "failed", "finished": "signed_off" if step == CDST_STEP else "finished"}.get(
                latest.state if latest else "", "failed"
            )
            calibrations.update_calibration(s, processing, step, state=state)
            self._event(
                s,
                plan,
                processing,
                step,
                "repaired",
                f"*{step}* was marked running but its latest attempt is "
                f"{latest.state if latest else 'missing'}; its state is now {state}.",
                f"{latest.number if latest else 0}-{state}",
                {"attempt": latest.number if latest else None, "state": state},
            )
            return
        if not latest.dagster_run_id:
            return  # recorded outside Dagster (tests, tools): nothing to compare
        run = runs.by_id(latest.dagster_run_id)
        if run is not None and run.in_flight:
            return
        if run is not None and run.status == "CANCELED":
            message = (
                f"the run {run.run_id} was cancelled: {_short(runs.why_ended(run.run_id)) or 'cancelled'}"
            )
            self._fail_attempt_in(s, processing, latest, message, "(the Dagster run)", plan)
            self._event(
                s,
                plan,
                processing,
                step,
                "run_cancelled",
                f"*{step}* attempt {latest.number}: {message}. The attempt is marked failed; a manager can "
                "restart it (it resumes from its checkpoint).",
                run.run_id,
                {"attempt": latest.number, "run_id": run.run_id},
            )
            return
        # the run is gone or ended while the attempt still says running: resume it, unless that is
        # already under way (a resume run of this generation in flight, or its request to be made again)
        dead = latest.dagster_run_id
        if row.launch_generation:
            key = run_key(processing, step, latest.number, "resume", row.launch_generation)
            pending = runs.by_key(key)
            lost = pending is None and not self._first_time(s, processing, step, "resumed", key)
            if lost or (pending is not None and pending.not_created_yet):
                plan.launches.append(self._resume_launch(s, processing, row, latest, row.launch_generation))
                return
            if pending is not None and pending.in_flight:
                return
        why = "Dagster has no such run any more" if run is None else _short(runs.why_ended(dead))
        ended = "is gone" if run is None else f"ended ({run.status.lower()})"
        if latest.resumes >= MAX_RESUMES:
            message = (
                f"its run {dead} {ended} while the attempt was running ({why}), after {latest.resumes} "
                "automatic resumes"
            )
            self._fail_attempt_in(s, processing, latest, message, "(the Dagster run)", plan)
            self._event(
                s,
                plan,
                processing,
                step,
                "gave_up",
                f"*{step}* attempt {latest.number}: {message}. It is marked failed; a manager's restart "
                "resumes it from its checkpoint.",
                dead,
                {"attempt": latest.number, "run_id": dead},
            )
            return
        generation = row.launch_generation + 1
        calibrations.update_calibration(s, processing, step, launch_generation=generation)
        latest.resumes += 1
        s.flush()
        launch = self._resume_launch(s, processing, row, latest, generation)
        self._event(
            s,
            plan,
            processing,
            step,
            "resumed",
            f"*{step}* attempt {latest.number}: its run {dead} {ended} while the attempt was running "
            f"({why or 'its worker was lost'}). The loop resumes the attempt from its checkpoint in "
            f"{latest.workdir or 'its work directory'}: finished subjobs are kept, jobs still in the batch "
            f"system are followed (resume {latest.resumes} of at most {MAX_RESUMES}).",
            launch.run_key,
            {"attempt": latest.number, "run_id": dead, "run_key": launch.run_key},
        )
        plan.launches.append(launch)

    def _resume_launch(self, s, processing, row, latest: Attempt, generation: int) -> Launch:
        proc = processings.get_processing(s, processing)
        return Launch(
            processing=processing,
            step=row.calibration,
            reason="resume",
            run_key=run_key(processing, row.calibration, latest.number, "resume", generation),
            expert_config=dict(latest.expert_config),
            job_config=dict(latest.job_config),
            automatic_signoff=proc.site.signoff_policy == "automatic" and row.calibration != CDST_STEP,
            attempt=latest.number,
            resume_run_id=latest.dagster_run_id,
            submitted_by=latest.submitted_by,
        )

    # --- finished: the checks and (at automatic sites) the sign-off -----------------------------
    def _reconcile_finished(self, s, processing, row, latest, automatic, runs, plan: Plan) -> None:
        if latest is None or latest.state != "finished":
            return
        if automatic:
            reason = "signoff"
        elif is_upload(latest):
            reason = "checks"
        else:
            return  # a manual site: the expert signs off
        step = row.calibration

        def launch(generation: int) -> Launch:
            return Launch(
                processing=processing,
                step=step,
                reason=reason,
                run_key=run_key(processing, step, latest.number, reason, generation),
                automatic_signoff=automatic,
                attempt=latest.number,
                attempt_run_id=latest.dagster_run_id,
                submitted_by=latest.submitted_by,
            )

        current = launch(row.launch_generation)
        if runs is None:
            plan.launches.append(current)
            return
        run = runs.by_key(current.run_key)
        if run is None or run.not_created_yet:
            plan.launches.append(current)  # the sensor leaves out what the attempt's own run covers
            return
        if run.in_flight or run.started or run.status == "SUCCESS":
            return  # it ran: a failed check or a refused sign-off is for people to look at
        if row.relaunches >= MAX_RELAUNCHES:
            if self._first_time(s, processing, step, "gave_up", run.run_id):
                self._event(
                    s,
                    plan,
                    processing,
                    step,
                    "gave_up",
                    f"*{step}*: the run of its checks and sign-off could not start {row.relaunches + 1} "
                    f"times (last: {run.run_id}: {_short(runs.why_ended(run.run_id))}); sign it off by "
                    "hand or restart it once the cause is fixed.",
                    run.run_id,
                    {"run_id": run.run_id},
                )
            return
        generation = row.launch_generation + 1
        calibrations.update_calibration(
            s, processing, step, launch_generation=generation, relaunches=row.relaunches + 1
        )
        again = launch(generation)
        self._event(
            s,
            plan,
            processing,
            step,
            "relaunched",
            f"*{step}*: the run of its checks and sign-off ({run.run_id}) ended ({run.status.lower()}) before "
            f"it started: {_short(runs.why_ended(run.run_id))}. The loop launched it again (run key "
            f"{again.run_key}).",
            again.run_key,
            {"run_id": run.run_id, "status": run.status, "run_key": again.run_key},
        )
        plan.launches.append(again)

    # --- attempts a manager cancelled -----------------------------------------------------------
    def _terminate_cancelled(self, history: list[Attempt], runs: RunLookup, plan: Plan) -> None:
        since = self.clock() - CANCEL_WINDOW
        for a in history:
            if a.state != "cancelled" or not a.dagster_run_id or (a.finished_at and a.finished_at < since):
                continue
            run = runs.by_id(a.dagster_run_id)
            if run is not None and run.in_flight and run.status != "CANCELING":
                plan.terminate.append(a.dagster_run_id)

    # --- helpers ---------------------------------------------------------------------------------
    def _fail_attempt_in(self, s, processing, attempt: Attempt, message, subjob, plan: Plan) -> None:
        attempts.finish_attempt(s, attempt.id, "failed", iterations=attempt.iterations, error=message)
        calibrations.update_calibration(s, processing, attempt.calibration, state="failed")
        plan.events.append(
            ticket_events.Failed(
                processing, attempt.calibration, attempt.number, subjob, message, attempt.workdir or ""
            )
        )

    def _first_time(self, s: Session, processing: str, step: str, kind: str, occurrence: str) -> bool:
        """No event of this kind was recorded for this occurrence (a run key, a run id) yet."""
        entries = audit.list_audit(
            s, processing=processing, calibration=step, action=AUDIT_PREFIX + kind, limit=50
        )
        return not any(e.details.get("occurrence") == occurrence for e in entries)

    def _event(
        self,
        s: Session,
        plan: Plan,
        processing: str,
        step: str,
        kind: str,
        message: str,
        occurrence: str,
        details: dict[str, Any],
    ) -> None:
        audit.record_audit(
            s,
            AUTO_USER,
            AUDIT_PREFIX + kind,
            processing,
            step,
            {"message": message.replace("*", ""), "occurrence": occurrence, **details},
        )
        plan.events.append(Recovered(processing, step, kind, message, occurrence))
        plan.recovered.append(f"{processing}/{step}: {message.replace('*', '')}")


def post_in_session(s: Session, events) -> None:
    """Store the ticket messages of a decision in the decision's own transaction."""
    for event in events:
        if event.calibration == CDST_STEP:
            continue
        msg = event.rendered() if hasattr(event, "rendered") else ticket_events.render(event)
        ticket_repo.add_message(
            s,
            processing=msg.processing,
            calibration=msg.calibration,
            kind=msg.kind,
            dedup_key=msg.dedup_key,
            body=without_server_paths(msg.body),  # tickets are read outside the server
            attachments=[dict(a) for a in msg.attachments],
        )


def recovery_notes(s: Session, processing: str, since: dict[str, datetime | None]) -> dict[str, str]:
    """The latest recovery of each step since its latest attempt was submitted (``b2cal status``)."""
    notes: dict[str, str] = {}
    for entry in audit.list_audit(s, processing=processing, user=AUTO_USER, limit=500):
        if not entry.action.startswith(AUDIT_PREFIX) or entry.calibration in notes:
            continue
        start = since.get(entry.calibration)
        if start is not None and entry.at < start:
            continue
        notes[entry.calibration] = f"{entry.action[len(AUDIT_PREFIX) :]}: {entry.details.get('message', '')}"
    return notes
