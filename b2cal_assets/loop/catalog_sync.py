"""Feeding the catalog from a site's Rucio: what the open processings need, scanned, and registered.

Each sync looks only at what changed since the last one (``updated_after``, with an overlap for
clocks and transactions in flight); every ``full_scan_interval_s`` it lists every replica, which is
what shows a file that is gone. Rucio not answering never fails the caller: the sync retries a few
times with exponential backoff (tenacity), then records the failure, and later syncs wait out a
growing delay (``backoff_base_s`` doubling up to ``backoff_max_s``) before they ask again; ``b2cal
status`` shows it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from b2cal_assets.catalog_sources.rucio import RucioCatalog, Scan, Want, refused_errors, unreachable_errors
from b2cal_assets.db.errors import NotFound
from b2cal_assets.db.repo import catalog_sources, processings
from b2cal_assets.db.repo.catalog_sources import FlaggedFile, SourceFile
from b2cal_assets.domain.iov import IoV
from b2cal_assets.loop.context import LoopContext

REFUSED = "error: "  # a failure where Rucio answered, told apart from one where it did not
OVERLAP = timedelta(minutes=2)  # updated_after reaches back this far: clock skew, commits in flight


@dataclass(frozen=True)
class SyncPolicy:
    """How often a sync looks at everything, and how it backs off while Rucio does not answer."""

    full_scan_interval_s: float = 600.0
    attempts: int = 3  # within one sync
    retry_wait_s: float = 1.0  # first wait between them, doubling
    backoff_base_s: float = 30.0  # after a failed sync, the next waits this long, doubling per failure
    backoff_max_s: float = 1800.0


@dataclass
class SyncReport:
    """What one sync of one site did, for the sensor's log and its tests."""

    site: str
    ok: bool = True
    skipped: str = ""
    full: bool = False
    new: int = 0
    flagged: list[str] = field(default_factory=list)
    restored: list[str] = field(default_factory=list)
    error: str = ""

    def describe(self) -> str:
        if self.skipped:
            return f"{self.site}: {self.skipped}"
        if not self.ok:
            what = "Rucio refused the sync" if self.error.startswith(REFUSED) else "Rucio unreachable"
            return f"{self.site}: {what} ({self.error}); the loop goes on with the catalog it has"
        text = (
            f"{self.site}: {self.new} new file(s) from Rucio ({'full' if self.full else 'incremental'} scan)"
        )
        if self.flagged:
            text += f"; flagged, no longer used: {'; '.join(self.flagged[:5])}"
        if self.restored:
            text += f"; available again: {', '.join(self.restored[:5])}"
        return text


@dataclass(frozen=True)
class SourceHealth:
    """A site's data source as ``b2cal status`` shows it."""

    site: str
    kind: str
    endpoint: str
    reachable: bool
    failures: int
    last_error: str
    last_ok_at: datetime | None
    next_try_at: datetime | None

    def describe(self) -> str:
        if self.reachable:
            when = f"{self.last_ok_at:%Y-%m-%d %H:%M:%S}" if self.last_ok_at else "never"
            return f"{self.kind} for {self.site} ({self.endpoint}): answering, last scan {when} UTC"
        nxt = f", next try {self.next_try_at:%H:%M:%S} UTC" if self.next_try_at else ""
        what = "FAILING" if self.last_error.startswith(REFUSED) else "UNREACHABLE"
        return (
            f"{self.kind} for {self.site} ({self.endpoint}): {what}, {self.failures} failed sync(s) "
            f"in a row{nxt}: {self.last_error.removeprefix(REFUSED)}"
        )


class CatalogSync:
    """Syncs one site's catalog from its Rucio; reports the sources' health and the flagged files."""

    def __init__(self, ctx: LoopContext) -> None:
        self.ctx = ctx

    def wants(self, site: str) -> list[Want]:
        """The raw data tags of the steps, inside each open processing of ``site``."""
        tags = frozenset(tag for step in self.ctx.steps.values() for tag in step.raw_data_names)
        with self.ctx.session() as s:
            return [
                Want(tags, IoV(p.exp_low, p.run_low, p.exp_high, p.run_high))
                for p in processings.list_processings(s, state="open")
                if p.site.name == site
            ]

    def sync(
        self, site: str, connect: Callable[[], RucioCatalog], endpoint: str, policy: SyncPolicy | None = None
    ) -> SyncReport:
        """One sync of ``site``: scan what changed (or everything, when a full scan is due) and register it."""
        policy = policy or SyncPolicy()
        report = SyncReport(site)
        now = self.ctx.clock()
        with self.ctx.session() as s:
            try:
                state = catalog_sources.source_state(s, site)
            except NotFound as exc:
                report.ok, report.error = False, str(exc)
                report.skipped = f"not synced: {exc} (check B2CAL_RUCIO_RSES)"
                return report
            if state.next_try_at is not None and now < state.next_try_at:
                report.ok = False
                report.error = state.last_error
                what = "failing" if state.last_error.startswith(REFUSED) else "unreachable"
                report.skipped = (
                    f"Rucio {what} ({state.failures} failed sync(s)); next try at "
                    f"{state.next_try_at:%H:%M:%S} UTC: {state.last_error}"
                )
                return report
            last_full, cursor = state.last_full_scan_at, state.updated_after
        wants = self.wants(site)
        if not wants:
            report.skipped = "no open processing at this site: nothing to watch"
            return report
        since = None if cursor is None else cursor - OVERLAP
        if last_full is None or (now - last_full).total_seconds() >= policy.full_scan_interval_s:
            since = None  # a full scan: every replica, whatever its age
        try:
            scan = self._scan(connect, wants, since, policy)
        except (*unreachable_errors(), *refused_errors()) as exc:
            text = " ".join(str(exc).split())[:300] or type(exc).__name__
            refused = not isinstance(exc, unreachable_errors())
            report.ok, report.error = False, (REFUSED + text) if refused else text
            with self.ctx.session() as s:
                catalog_sources.record_failure(
                    s,
                    catalog_sources.source_state(s, site),
                    endpoint=endpoint,
                    error=report.error,
                    now=self.ctx.clock(),
                    base_s=policy.backoff_base_s,
                    max_s=policy.backoff_max_s,
                )
            return report
        report.full = scan.full
        self._register(site, scan, wants, endpoint, started=now, report=report)
        return report

    def _scan(
        self,
        connect: Callable[[], RucioCatalog],
        wants: list[Want],
        since: datetime | None,
        policy: SyncPolicy,
    ) -> Scan:
        for attempt in Retrying(
            stop=stop_after_attempt(max(1, policy.attempts)),
            wait=wait_exponential(multiplier=policy.retry_wait_s, max=max(policy.retry_wait_s * 8, 0.1)),
            retry=retry_if_exception_type(unreachable_errors()),
            reraise=True,
        ):
            with attempt:
                return connect().scan(wants, since)
        raise AssertionError("unreachable")  # pragma: no cover - Retrying reraises

    def _register(
        self,
        site: str,
        scan: Scan,
        wants: list[Want],
        endpoint: str,
        *,
        started: datetime,
        report: SyncReport,
    ) -> None:
        files = [
            SourceFile(
                did=f.did,
                path=f.pfn,
                data_tag=f.dataset.data_tag,
                exp=f.dataset.exp,
                run=f.dataset.run,
                n_events=f.n_events,
                size_bytes=f.size_bytes,
                checksum=f.adler32,
                available=f.available,
                run_info=dict(f.dataset.run_info),
            )
            for f in scan.files
        ]
        now = self.ctx.clock()
        with self.ctx.session() as s:
            applied = catalog_sources.register_source_files(s, site, files, now=now)
            report.new, report.flagged, report.restored = applied.new, applied.flagged, applied.restored
            if scan.full:
                listed = scan.listed()
                gone = catalog_sources.flag_missing(
                    s,
                    site,
                    listed,
                    [
                        (w.data_tags, (w.iov.exp_low, w.iov.run_low, w.iov.exp_high, w.iov.run_high))
                        for w in wants
                    ],
                    now=now,
                )
                report.flagged += gone.flagged
            catalog_sources.record_success(
                s,
                catalog_sources.source_state(s, site),
                endpoint=endpoint,
                updated_after=started,
                full_scan=scan.full,
                now=now,
            )

    def health(self) -> list[SourceHealth]:
        with self.ctx.session() as s:
            return [
                SourceHealth(
                    site=row.site.name,
                    kind="Rucio" if row.kind == "rucio" else row.kind,
                    endpoint=row.endpoint,
                    reachable=row.failures == 0,
                    failures=row.failures,
                    last_error=row.last_error,
                    last_ok_at=row.last_ok_at,
                    next_try_at=row.next_try_at,
                )
                for row in catalog_sources.list_sources(s)
            ]

    def flagged_files(self, processing: str) -> list[FlaggedFile]:
        with self.ctx.session() as s:
            p = processings.get_processing(s, processing)
            return catalog_sources.flagged_in(
                s, exp_low=p.exp_low, run_low=p.run_low, exp_high=p.exp_high, run_high=p.run_high
            )
