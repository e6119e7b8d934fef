"""What a job reads: its input files behind the site's prefix, and the payloads of the database chain."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from sqlalchemy.orm import Session

from b2cal_assets import home
from b2cal_assets.backends.commands import prefixed
from b2cal_assets.conditions.staging import SignedOffPayload
from b2cal_assets.db.models import CatalogFile, Processing, Run
from b2cal_assets.db.repo import calibrations, catalog, payloads, processings
from b2cal_assets.domain.filters import RunInfo, run_matches
from b2cal_assets.domain.iov import IoV
from b2cal_assets.domain.site_runner import RunnerKind
from b2cal_assets.domain.states import CalibrationState
from b2cal_assets.loop.context import LoopContext
from b2cal_assets.loop.records import PayloadView, payload_view
from b2cal_assets.loop.steps import CDST_STEP


class JobInputs:
    """The input files, the database chain and the current payloads of a calibration in a processing."""

    def __init__(self, ctx: LoopContext) -> None:
        self.ctx = ctx

    def input_data(
        self, processing: str, calibration: str, filter_overrides: dict[str, list[str]] | None = None
    ) -> dict[str, dict[str, IoV]]:
        """``{data_name: {path_or_url: IoV of its run}}`` for the calibration's data, filters applied."""
        settings = self.ctx.scripts.calibrations[calibration].settings
        formats = [f.lower() for f in settings.input_data_formats]
        filters: dict[str, Sequence[str]] = dict(settings.input_data_filters or {})
        filters.update(filter_overrides or {})
        data_format = "cdst" if "cdst" in formats else formats[0]
        with self.ctx.session() as s:
            rows = _files_at_site(
                s,
                processings.get_processing(s, processing),
                data_tags=sorted(settings.input_data_names),
                data_format=data_format,
                processing_name=processing if data_format == "cdst" else None,
            )
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
                    result[f.data_tag][location] = IoV(run.exp, run.run, run.exp, run.run)
            return result

    def raw_files_at_site(self, processing: str, data_tag: str) -> dict[tuple[int, int], list[str]]:
        """The raw files of ``data_tag`` per (exp, run) where the site's jobs open them (the cDST jobs):
        its replica URL, behind the site's ``path_prefix``, like a collector's input files."""
        with self.ctx.session() as s:
            proc = processings.get_processing(s, processing)
            rows = _files_at_site(
                s, proc, data_tags=[data_tag], data_format="raw", processing_name=processing
            )
            by_run: dict[tuple[int, int], list[str]] = {}
            for _f, run, location in rows:
                by_run.setdefault((run.exp, run.run), []).append(location)
            return by_run

    def registered_cdsts(self, processing: str) -> set[str]:
        """The paths of the cDST files the processing has registered (a restarted step skips their jobs)."""
        with self.ctx.session() as s:
            proc = processings.get_processing(s, processing)
            rows = _files_at_site(s, proc, data_tags=None, data_format="cdst", processing_name=processing)
            return {f.path for f, _run, _location in rows if f.processing_id == proc.id}

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
        """Catalogue a cDST file the processing produced, for the calibrations that read cDSTs; ``path``
        is where the site's jobs open it (at a remote site not a file here: give its ``size_bytes``)."""
        if size_bytes is None:
            size_bytes = Path(path).stat().st_size if Path(path).exists() else 0
        with self.ctx.session() as s:
            catalog.register_file(
                s,
                path=path,
                data_tag=data_tag,
                data_format="cdst",
                exp=exp,
                run=run,
                run_info={},
                n_events=n_events,
                size_bytes=size_bytes,
                processing_name=processing,
            )

    def database_chain(self, processing: str, calibration: str) -> list[Path]:
        """Global tags first, then the signed-off payloads of every calibration before this one."""
        with self.ctx.session() as s:
            proc = processings.get_processing(s, processing)
            chain = [home.globaltag_dir(tag) for tag in proc.global_tags]
            done = {
                row.calibration
                for row in calibrations.list_calibrations(s, processing)
                if row.state == CalibrationState.SIGNED_OFF and not row.excluded
            }
            ancestors = self.ctx.ancestors(calibration)
            for name in self.ctx.order:
                if name in ancestors and name in done:
                    current = payloads.current_payloads(s, processing, name)
                    # after a partial upload the current revisions sit in several outputdbs: newest last,
                    # so the upload's revisions win over the ones they superseded in the older database.txt
                    newest: dict[str, int] = {}
                    for p in current:
                        d = str(Path(p.file).parent)
                        newest[d] = max(newest.get(d, 0), p.id)
                    chain.extend(Path(d) for d in sorted(newest, key=newest.__getitem__))
            return [p for p in chain if p.exists()]

    def current_payloads(self, processing: str, calibration: str) -> list[PayloadView]:
        with self.ctx.session() as s:
            return [payload_view(p) for p in payloads.current_payloads(s, processing, calibration)]

    def signed_off_payloads(self, processing: str) -> list[SignedOffPayload]:
        with self.ctx.session() as s:
            done = [
                row.calibration
                for row in calibrations.list_calibrations(s, processing)
                if row.state == CalibrationState.SIGNED_OFF
                and not row.excluded
                and row.calibration != CDST_STEP
            ]
            return [
                SignedOffPayload(
                    p.name,
                    p.revision,
                    p.checksum,
                    IoV(p.exp_low, p.run_low, p.exp_high, p.run_high),
                    Path(p.file),
                    name,
                )
                for name in done
                for p in payloads.current_payloads(s, processing, name)
            ]


def _files_at_site(
    s: Session,
    proc: Processing,
    *,
    data_tags: Sequence[str] | None,
    data_format: str,
    processing_name: str | None,
) -> list[tuple[CatalogFile, Run, str]]:
    """The catalog's files in the processing's IoV (``catalog.files_for``), each with where its site's
    jobs open it: the one query behind a job's input data, a cDST job's raw files and the registered cDSTs."""
    rows = catalog.files_for(
        s,
        exp_low=proc.exp_low,
        run_low=proc.run_low,
        exp_high=proc.exp_high,
        run_high=proc.run_high,
        data_tags=data_tags,
        data_format=data_format,
        processing_name=processing_name,
    )
    site = proc.site
    # the framework globs each run's files in a local directory: no prefix for its jobs
    prefix = "" if site.runner == RunnerKind.FRAMEWORK else site.path_prefix
    return [(f, run, site_location(location, site.storage_root, prefix)) for f, run, location in rows]


def site_location(path: str, storage_root: str, prefix: str) -> str:
    """Where a job opens a catalog file: behind the site's ``path_prefix``, relative to its storage root.

    ``/data/calib/f.root`` at storage root ``/data`` behind ``root://h:1094/`` is
    ``root://h:1094//calib/f.root``. A file outside the storage root (a cDST this installation made)
    is read where it is, on the shared file system; without a prefix every path is used as it is.
    """
    if not prefix or "://" in path:
        return path
    if storage_root:
        root = Path(storage_root)
        if not Path(path).is_relative_to(root):
            return path
        path = "/" + str(Path(path).relative_to(root))
    return prefixed(path, prefix)
