"""Read-only questions about processings: which are open, their IoVs and sites, their steps' states."""

from __future__ import annotations

from b2cal_assets.db.repo import catalog, processings
from b2cal_assets.domain.iov import IoV
from b2cal_assets.domain.states import DONE_STATES, ProcessingState
from b2cal_assets.loop.context import LoopContext
from b2cal_assets.loop.readiness import blocked_by_rejection
from b2cal_assets.loop.records import ArrivedRun, CatalogFileView, SiteView, site_view
from b2cal_assets.loop.step_states import StepStates


class ProcessingQueries:
    """Each question in its own short transaction."""

    def __init__(self, ctx: LoopContext, states: StepStates) -> None:
        self.ctx = ctx
        self.states = states

    def open_processing_names(self) -> list[str]:
        with self.ctx.session() as s:
            return [p.name for p in processings.list_processings(s, state=ProcessingState.OPEN)]

    def all_processing_names(self) -> list[str]:
        with self.ctx.session() as s:
            return [p.name for p in processings.list_processings(s)]

    def processing_iovs(self, state: str | None = ProcessingState.OPEN) -> dict[str, IoV]:
        with self.ctx.session() as s:
            return {
                p.name: IoV(p.exp_low, p.run_low, p.exp_high, p.run_high)
                for p in processings.list_processings(s, state=state)
            }

    def processing_iov(self, processing: str) -> IoV:
        with self.ctx.session() as s:
            p = processings.get_processing(s, processing)
            return IoV(p.exp_low, p.run_low, p.exp_high, p.run_high)

    def catalog_after(self, last_id: int, limit: int = 5000) -> list[CatalogFileView]:
        """Catalog files registered after ``last_id`` (the data-arrival sensor's cursor), oldest first."""
        with self.ctx.session() as s:
            return [
                CatalogFileView(
                    id=f.id,
                    data_tag=f.data_tag,
                    data_format=f.data_format,
                    exp=f.run.exp,
                    run=f.run.run,
                    n_events=f.n_events,
                    processing_id=f.processing_id,
                )
                for f in catalog.files_after(s, last_id, limit)
            ]

    def arrived_before(self, processing: str, up_to_id: int) -> list[ArrivedRun]:
        """Raw files up to catalog id ``up_to_id`` in ``processing``'s IoV, per tag and run."""
        with self.ctx.session() as s:
            p = processings.get_processing(s, processing)
            rows = catalog.arrivals_in(
                s, exp_low=p.exp_low, run_low=p.run_low, exp_high=p.exp_high, run_high=p.run_high, up_to_id=up_to_id
            )
        return [ArrivedRun(*row) for row in rows]

    def site_of(self, processing: str) -> SiteView:
        with self.ctx.session() as s:
            return site_view(processings.get_processing(s, processing).site)

    def step_states(self, processing: str) -> dict[str, str]:
        with self.ctx.session() as s:
            return {name: st.state for name, st in self.states.statuses(s, processing).items()}

    def blocked(self, processing: str) -> dict[str, str]:
        """Steps that cannot run because an upstream step was rejected, and that step."""
        with self.ctx.session() as s:
            return blocked_by_rejection(self.ctx.order, self.ctx.steps, self.states.statuses(s, processing))

    def is_done(self, processing: str, step: str) -> bool:
        return self.step_states(processing).get(step) in DONE_STATES
