"""What a manager's status view shows: every step, its latest attempt and its jobs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from b2cal_assets.db.repo import attempts, calibrations, jobs, payloads, processings
from b2cal_assets.loop.decisions import shown_attempt_state
from b2cal_assets.loop.readiness import (
    blocked_by_rejection,
)
from b2cal_assets.loop.reconcile import recovery_notes
from b2cal_assets.loop.records import (
    JobRow,
    StepRow,
)
from b2cal_assets.loop.steps import CDST_STEP


class StatusViews:
    """Mixed into ``LoopService``; uses its ``session``, ``steps``, ``scripts`` and ``notify``."""

    def status_rows(self, processing: str) -> list[StepRow]:
        """One row per step, in run order: what a manager's status view and the demo table show."""
        with self.session() as s:
            statuses = self.statuses(s, processing)
            rows = {row.calibration: row for row in calibrations.list_calibrations(s, processing)}
            blocked = blocked_by_rejection(self.order, self.steps, statuses)
            latest_of = {name: attempts.latest_attempt(s, processing, name) for name in statuses}
            recovery = recovery_notes(
                s, processing, {n: (a.submitted_at if a is not None else None) for n, a in latest_of.items()}
            )
            holds = processings.get_processing(s, processing).site.hold_until_deadline
            result = []
            for name in self.order:
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
                        attempt_state=shown_attempt_state(latest.state, site_holds_jobs=holds) if latest else "",
                        jobs=_jobs_summary(job_states),
                        uses_global_tag=rows[name].excluded,
                        recovery="" if statuses[name].state == "signed_off" else recovery.get(name, ""),
                        launch_generation=rows[name].launch_generation,
                        resumes=latest.resumes if latest else 0,
                    )
                )
            return result

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
