"""The steps of one processing as the rules read them, inside a caller's transaction."""

from __future__ import annotations

from sqlalchemy.orm import Session

from b2cal_assets.db.repo import calibrations, catalog, processings
from b2cal_assets.domain.states import CalibrationState
from b2cal_assets.loop.context import LoopContext
from b2cal_assets.loop.readiness import StepStatus
from b2cal_assets.tickets import messages as ticket_events


class StepStates:
    """Reads (and completes) a processing's step rows for the tick, the attempt rules and the views."""

    def __init__(self, ctx: LoopContext) -> None:
        self.ctx = ctx

    def sync(self, s: Session, processing: str) -> list[ticket_events.Created]:
        """Make sure every step has its row; new scripts join open processings as waiting.

        Existing rows are left alone (a manager may have reassigned the expert). Returns the
        ticket events of the new rows, to post once the session is committed.
        """
        existing = {row.calibration for row in calibrations.list_calibrations(s, processing)}
        missing = {
            name: step.expert_username for name, step in self.ctx.steps.items() if name not in existing
        }
        if not missing:
            return []
        calibrations.ensure_calibrations(s, processing, missing)
        window = processings.get_processing(s, processing).window_hours
        return [
            ticket_events.Created(processing, name, expert, None, window) for name, expert in missing.items()
        ]

    def statuses(self, s: Session, processing: str) -> dict[str, StepStatus]:
        """Each step's state in run order; an excluded step shows as ``excluded``."""
        rows = {row.calibration: row for row in calibrations.list_calibrations(s, processing)}
        return {
            name: StepStatus(
                state=CalibrationState.EXCLUDED if rows[name].excluded else rows[name].state,
                excluded=rows[name].excluded,
                deadline=rows[name].deadline,
            )
            for name in self.ctx.order
            if name in rows
        }

    def available_tags(self, s: Session, processing: str) -> set[str]:
        """The data tags the steps read that have raw files catalogued inside the processing's IoV."""
        proc = processings.get_processing(s, processing)
        return catalog.tags_in(
            s,
            {tag for step in self.ctx.steps.values() for tag in step.raw_data_names},
            exp_low=proc.exp_low,
            run_low=proc.run_low,
            exp_high=proc.exp_high,
            run_high=proc.run_high,
            data_format="raw",
        )
