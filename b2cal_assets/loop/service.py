"""The loop's front: one object for sensors, assets, the CLI and the web pages, delegating to its parts.

Each public method is one rule or one view, implemented by a part that receives the shared
``LoopContext``: ``Ticker`` (the tick), ``AttemptRules`` (attempts), ``SignOff``, ``Management``
(managers' actions, uploads, staging), ``JobInputs`` (what a job reads), ``ProcessingQueries`` and
``StatusViews`` (what callers show), ``Reconciler`` (Dagster's runs against the database).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Unpack

from sqlalchemy.orm import Session

from b2cal_assets.caf.localdb import StoredPayload
from b2cal_assets.caf.scripts import ScriptSet
from b2cal_assets.catalog_sources.rucio import RucioCatalog
from b2cal_assets.conditions.staging import SignedOffPayload
from b2cal_assets.db.models import utcnow
from b2cal_assets.db.repo.catalog_sources import FlaggedFile
from b2cal_assets.domain.iov import IoV
from b2cal_assets.domain.states import AttemptState, CalibrationState, ProcessingState
from b2cal_assets.loop.attempt_rules import AttemptRules, FailureDetail
from b2cal_assets.loop.catalog_sync import CatalogSync, SourceHealth, SyncPolicy, SyncReport
from b2cal_assets.loop.condb import CondbUploadResult, CondbUploads
from b2cal_assets.loop.context import Clock, LoopContext
from b2cal_assets.loop.job_inputs import JobInputs
from b2cal_assets.loop.management import Management
from b2cal_assets.loop.notices import LoopEvent
from b2cal_assets.loop.processing_queries import ProcessingQueries
from b2cal_assets.loop.reconcile import Reconciler, RunLookup
from b2cal_assets.loop.records import (
    AUTO_USER,
    ArrivedRun,
    AttemptTicket,
    CatalogFileView,
    JobRow,
    Launch,
    LoopError,
    PayloadView,
    SiteView,
    StepRow,
    SubmissionHeld,
    TickReport,
)
from b2cal_assets.loop.signoff import SignOff
from b2cal_assets.loop.staging import StagingResult
from b2cal_assets.loop.status import StatusViews
from b2cal_assets.loop.step_states import StepStates
from b2cal_assets.loop.steps import StepInfo
from b2cal_assets.loop.tick import Ticker
from b2cal_assets.loop.uploads import UploadResult
from b2cal_assets.tickets.messages import TicketEvent
from b2cal_assets.tickets.outbox import TicketOutbox

if TYPE_CHECKING:
    from b2cal_assets.conditions.condb_client import ConditionsDbClient

__all__ = [
    "AUTO_USER",
    "AttemptTicket",
    "JobRow",
    "Launch",
    "LoopError",
    "LoopService",
    "StepRow",
    "SubmissionHeld",
    "TickReport",
]


class LoopService:
    """Applies the loop's rules for every processing; one instance per database and script set."""

    def __init__(self, database_url: str, scripts: ScriptSet, clock: Clock = utcnow) -> None:
        self._assemble(LoopContext.create(database_url, scripts, clock))

    def _assemble(self, ctx: LoopContext) -> None:
        self.ctx = ctx
        states = StepStates(self.ctx)
        self.queries = ProcessingQueries(self.ctx, states)
        self.inputs = JobInputs(self.ctx)
        self.catalog_sync = CatalogSync(self.ctx)
        self.attempts = AttemptRules(self.ctx, states)
        self.signoff = SignOff(self.ctx)
        self.management = Management(self.ctx, self.inputs)
        self.views = StatusViews(self.ctx, states)
        self.condb = CondbUploads(self.ctx, self.inputs)
        self.ticker = Ticker(self.ctx, states, self.attempts, Reconciler(self.ctx), self.management)

    # --- the shared setup, as callers read it --------------------------------------------------
    @property
    def database_url(self) -> str:
        return self.ctx.database_url

    @property
    def scripts(self) -> ScriptSet:
        return self.ctx.scripts

    @property
    def steps(self) -> dict[str, StepInfo]:
        return self.ctx.steps

    @property
    def order(self) -> list[str]:
        return list(self.ctx.order)

    @property
    def clock(self) -> Clock:
        return self.ctx.clock

    @clock.setter
    def clock(self, clock: Clock) -> None:
        """Another clock (a test's): every part is handed the new context."""
        self._assemble(dataclasses.replace(self.ctx, clock=clock))

    @property
    def outbox(self) -> TicketOutbox:
        return self.ctx.outbox

    def session(self) -> AbstractContextManager[Session]:
        """One transaction on the calibration database."""
        return self.ctx.session()

    def notify(self, *events: LoopEvent | TicketEvent) -> None:
        self.ctx.notify(*events)

    def dependents(self, calibration: str) -> set[str]:
        return self.ctx.dependents(calibration)

    # --- processings ---------------------------------------------------------------------------
    def open_processing_names(self) -> list[str]:
        return self.queries.open_processing_names()

    def all_processing_names(self) -> list[str]:
        return self.queries.all_processing_names()

    def processing_iovs(self, state: str | None = ProcessingState.OPEN) -> dict[str, IoV]:
        return self.queries.processing_iovs(state)

    def processing_iov(self, processing: str) -> IoV:
        return self.queries.processing_iov(processing)

    def catalog_after(self, last_id: int, limit: int = 5000) -> list[CatalogFileView]:
        return self.queries.catalog_after(last_id, limit)

    def arrived_before(self, processing: str, up_to_id: int) -> list[ArrivedRun]:
        return self.queries.arrived_before(processing, up_to_id)

    def sync_catalog(
        self, site: str, connect: Callable[[], RucioCatalog], endpoint: str, policy: SyncPolicy | None = None
    ) -> SyncReport:
        """Feed the catalog from the site's Rucio (what changed since the last sync); never raises for
        an unreachable Rucio: the report says so and the next syncs back off."""
        return self.catalog_sync.sync(site, connect, endpoint, policy)

    def source_health(self) -> list[SourceHealth]:
        return self.catalog_sync.health()

    def flagged_files(self, processing: str) -> list[FlaggedFile]:
        """Files of the processing's runs that their source flagged: no job reads them."""
        return self.catalog_sync.flagged_files(processing)

    def site_of(self, processing: str) -> SiteView:
        return self.queries.site_of(processing)

    def step_states(self, processing: str) -> dict[str, str]:
        return self.queries.step_states(processing)

    def blocked(self, processing: str) -> dict[str, str]:
        return self.queries.blocked(processing)

    def is_done(self, processing: str, step: str) -> bool:
        return self.queries.is_done(processing, step)

    # --- the tick ------------------------------------------------------------------------------
    def tick(
        self, now: datetime | None = None, runs: RunLookup | None = None, only: str | None = None
    ) -> TickReport:
        return self.ticker.tick(now, runs, only)

    def export_due_staging(self) -> list[StagingResult]:
        return self.ticker.export_due_staging()

    # --- attempts ------------------------------------------------------------------------------
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
        return self.attempts.begin_attempt(
            processing,
            calibration,
            submitted_by=submitted_by,
            expert_config=expert_config,
            job_config=job_config,
            dagster_run_id=dagster_run_id,
            resume_run_ids=resume_run_ids,
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
        return self.attempts.submit(
            processing, calibration, by=by, expert_config=expert_config, job_config=job_config
        )

    def fail_attempt(
        self, ticket: AttemptTicket, error: str, iterations: int = 0, **detail: Unpack[FailureDetail]
    ) -> None:
        self.attempts.fail_attempt(ticket, error, iterations, **detail)

    def finish_attempt(
        self, ticket: AttemptTicket, outputdb: Path, entries: Sequence[StoredPayload], iterations: int
    ) -> list[PayloadView]:
        return self.attempts.finish_attempt(ticket, outputdb, entries, iterations)

    def complete_step(self, ticket: AttemptTicket) -> None:
        self.attempts.complete_step(ticket)

    def record_subjobs(
        self, ticket: AttemptTicket, backend: str, subjobs: list[dict[str, Any]] | None = None
    ) -> int:
        return self.attempts.record_subjobs(ticket, backend, subjobs)

    def notify_finished(
        self,
        processing: str,
        calibration: str,
        *,
        passed: bool,
        checks: Iterable[tuple[str, bool, str]],
        plots: Iterable[Path | str],
        payloads: Iterable[str],
    ) -> None:
        self.attempts.notify_finished(
            processing, calibration, passed=passed, checks=checks, plots=plots, payloads=payloads
        )

    def attempt_state(self, attempt_id: int) -> AttemptState:
        return self.attempts.attempt_state(attempt_id)

    def move_attempt_workdir(self, ticket: AttemptTicket, workdir: Path) -> AttemptTicket:
        return self.attempts.move_attempt_workdir(ticket, workdir)

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
        retried: bool = False,
    ) -> CalibrationState:
        return self.signoff.sign_off(
            processing,
            calibration,
            decision=decision,
            by=by,
            comment=comment,
            automatic=automatic,
            dagster_run_id=dagster_run_id,
            retried=retried,
        )

    # --- what a job reads ----------------------------------------------------------------------
    def input_data(
        self, processing: str, calibration: str, filter_overrides: dict[str, list[str]] | None = None
    ) -> dict[str, dict[str, IoV]]:
        return self.inputs.input_data(processing, calibration, filter_overrides)

    def raw_files_at_site(self, processing: str, data_tag: str) -> dict[tuple[int, int], list[str]]:
        return self.inputs.raw_files_at_site(processing, data_tag)

    def registered_cdsts(self, processing: str) -> set[str]:
        return self.inputs.registered_cdsts(processing)

    def register_cdst(
        self,
        processing: str,
        *,
        path: str,
        data_tag: str,
        exp: int,
        run: int,
        n_events: int,
        size_bytes: int | None = None,
    ) -> None:
        self.inputs.register_cdst(
            processing, path=path, data_tag=data_tag, exp=exp, run=run, n_events=n_events, size_bytes=size_bytes
        )

    def database_chain(self, processing: str, calibration: str) -> list[Path]:
        return self.inputs.database_chain(processing, calibration)

    def current_payloads(self, processing: str, calibration: str) -> list[PayloadView]:
        return self.inputs.current_payloads(processing, calibration)

    def signed_off_payloads(self, processing: str) -> list[SignedOffPayload]:
        return self.inputs.signed_off_payloads(processing)

    # --- management ----------------------------------------------------------------------------
    def exclude(self, processing: str, calibration: str, *, by: str, reason: str = "") -> None:
        self.management.exclude(processing, calibration, by=by, reason=reason)

    def include(self, processing: str, calibration: str, *, by: str) -> None:
        self.management.include(processing, calibration, by=by)

    def reassign(
        self,
        processing: str,
        calibration: str,
        *,
        expert: str,
        by: str,
        find_user: Callable[[str], str | None] | None = None,
    ) -> None:
        self.management.reassign(processing, calibration, expert=expert, by=by, find_user=find_user)

    def restart(self, processing: str, calibration: str, *, by: str) -> int:
        return self.management.restart(processing, calibration, by=by)

    def upload_payloads(
        self,
        processing: str,
        calibration: str,
        archive: Path | str,
        *,
        by: str,
        max_bytes: int | None = None,
    ) -> UploadResult:
        return self.management.upload_payloads(processing, calibration, archive, by=by, max_bytes=max_bytes)

    def export_staging(self, processing: str, *, by: str) -> StagingResult:
        return self.management.export_staging(processing, by=by)

    # --- the conditions database ---------------------------------------------------------------
    def upload_condb(self, processing: str, client: ConditionsDbClient, *, by: str) -> CondbUploadResult:
        return self.condb.upload(processing, client, by=by)

    def upload_due_condb(self, client: ConditionsDbClient) -> list[CondbUploadResult]:
        return self.condb.upload_due(client, by=AUTO_USER)

    def condb_upload(self, processing: str) -> CondbUploadResult | None:
        return self.condb.view(processing)

    def condb_uploads(self, processings: Iterable[str]) -> dict[str, CondbUploadResult]:
        return self.condb.views(processings)

    # --- views ---------------------------------------------------------------------------------
    def status_rows(self, processing: str) -> list[StepRow]:
        return self.views.status_rows(processing)

    def job_rows(self, processing: str, calibration: str | None = None) -> list[JobRow]:
        return self.views.job_rows(processing, calibration)
