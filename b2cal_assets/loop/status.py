"""What a manager's status view shows: every step, its latest attempt and its jobs."""

from __future__ import annotations

from datetime import datetime

from b2cal_assets.db.repo import attempts, calibrations, jobs, payloads, processings
from b2cal_assets.domain.states import DONE_STATES, AttemptState, CalibrationState
from b2cal_assets.loop.context import LoopContext
from b2cal_assets.loop.decisions import shown_attempt_state
from b2cal_assets.loop.readiness import blocked_by_rejection
from b2cal_assets.loop.reconcile import recovery_notes
from b2cal_assets.loop.records import JobRow, StepRow
from b2cal_assets.loop.step_states import StepStates
from b2cal_assets.loop.steps import CDST_STEP

# the submission deadline means nothing once a calibration's jobs are done: such rows show none
PAST_DEADLINE_STATES = DONE_STATES | {CalibrationState.FINISHED}


class StatusViews:
    """The rows of ``b2cal status`` and the calibration pages, each read in one transaction."""

    def __init__(self, ctx: LoopContext, states: StepStates) -> None:
        self.ctx = ctx
        self.states = states

    def status_rows(self, processing: str) -> list[StepRow]:
        """One row per step, in run order: what a manager's status view and the demo table show."""
        with self.ctx.session() as s:
            statuses = self.states.statuses(s, processing)
            rows = {row.calibration: row for row in calibrations.list_calibrations(s, processing)}
            blocked = blocked_by_rejection(self.ctx.order, self.ctx.steps, statuses)
            latest_of = {name: attempts.latest_attempt(s, processing, name) for name in statuses}
            recovery = recovery_notes(
                s, processing, {n: (a.submitted_at if a is not None else None) for n, a in latest_of.items()}
            )
            holds = processings.get_processing(s, processing).site.hold_until_deadline
            result: list[StepRow] = []
            for name in self.ctx.order:
                if name not in statuses:
                    continue
                latest = latest_of[name]
                current = payloads.current_payloads(s, processing, name) if name != CDST_STEP else []
                wall = None
                if latest is not None and latest.started_at and latest.finished_at:
                    wall = (latest.finished_at - latest.started_at).total_seconds()
                job_states = [j.state for j in jobs.list_jobs(s, latest.id)] if latest is not None else []
                result.append(
                    StepRow(
                        processing=processing,
                        step=name,
                        stage=self.ctx.steps[name].stage.value,
                        state=statuses[name].state,
                        expert=rows[name].expert_username,
                        attempts=latest.number if latest else 0,
                        iterations=latest.iterations if latest else 0,
                        payloads=len(current),
                        wall_seconds=wall,
                        deadline=None
                        if statuses[name].state in PAST_DEADLINE_STATES
                        else statuses[name].deadline,
                        error=(latest.error if latest and latest.state == AttemptState.FAILED else ""),
                        blocked_by=blocked.get(name, ""),
                        excluded=rows[name].excluded,
                        submitted_by=latest.submitted_by if latest else "",
                        attempt_state=shown_attempt_state(latest.state, site_holds_jobs=holds)
                        if latest
                        else "",
                        jobs=_jobs_summary(job_states),
                        uses_global_tag=rows[name].excluded,
                        recovery=""
                        if statuses[name].state == CalibrationState.SIGNED_OFF
                        else recovery.get(name, ""),
                        launch_generation=rows[name].launch_generation,
                        resumes=latest.resumes if latest else 0,
                    )
                )
            return result

    def job_rows(self, processing: str, calibration: str | None = None) -> list[JobRow]:
        """The collector subjobs of each calibration's latest attempt that ran jobs."""
        with self.ctx.session() as s:
            names = [calibration] if calibration else [n for n in self.ctx.order if n in self.ctx.steps]
            out: list[JobRow] = []
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
                            _duration_s(job.started_at, job.finished_at),
                        )
                    )
            return out


def _jobs_summary(states: list[str]) -> str:
    counts: dict[str, int] = {}
    for state in states:
        counts[state] = counts.get(state, 0) + 1
    return ", ".join(f"{n} {state}" for state, n in sorted(counts.items()))


def _duration_s(started: datetime | None, finished: datetime | None) -> float | None:
    if started is None or finished is None:
        return None
    return (finished - started).total_seconds()
