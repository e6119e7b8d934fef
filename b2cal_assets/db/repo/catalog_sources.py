"""Catalog files announced by a data source (a site's Rucio): bulk registration, flags, the source's state.

A source file is keyed by its DID. Registering is batched (one query per 500 DIDs, one multi-row insert
for the new files and one for their replicas): a Rucio scan hands over thousands of files at once.
A file the source stops vouching for is flagged, never deleted: ``catalog.files_for`` and
``catalog.tags_in`` leave flagged files out, and ``flagged_in`` says why for ``b2cal status``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session

from b2cal_assets.db.models import CatalogFile, CatalogSource, Replica, Run
from b2cal_assets.db.repo.catalog import _in_iov, ensure_runs
from b2cal_assets.db.repo.rows import get_or_insert
from b2cal_assets.db.repo.sites import get_site

MISSING = "missing"
CHECKSUM_CHANGED = "checksum_changed"
CHUNK = 500


@dataclass(frozen=True)
class SourceFile:
    """A file as the source reports it at the site: where jobs read it and what it must checksum to."""

    did: str
    path: str  # the PFN jobs open (root://...)
    data_tag: str
    exp: int
    run: int
    n_events: int
    size_bytes: int
    checksum: str  # adler32
    available: bool = True
    run_info: dict[str, Any] = field(default_factory=dict)


@dataclass
class Applied:
    """What one batch changed in the catalog."""

    new: int = 0
    flagged: list[str] = field(default_factory=list)  # "did: why"
    restored: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class FlaggedFile:
    did: str
    path: str
    flag: str
    detail: str
    flagged_at: datetime | None


def _flag(row: CatalogFile, flag: str, detail: str, now: datetime, applied: Applied) -> None:
    if row.flag == flag and row.flag_detail == detail[:512]:
        return
    row.flag, row.flag_detail, row.flagged_at = flag, detail[:512], now
    applied.flagged.append(f"{row.did or row.path}: {detail}")


def register_source_files(
    s: Session, site_name: str, files: Sequence[SourceFile], *, now: datetime, source: str = "Rucio"
) -> Applied:
    """Register new files (and their replica at the site), flag changed ones, unflag those back."""
    site = get_site(s, site_name)
    applied = Applied()
    known: dict[str, CatalogFile] = {}
    dids = sorted({f.did for f in files})
    for start in range(0, len(dids), CHUNK):
        rows = s.scalars(select(CatalogFile).where(CatalogFile.did.in_(dids[start : start + CHUNK])))
        known.update({r.did: r for r in rows if r.did})
    by_path: dict[str, CatalogFile] = {}
    fresh = [f for f in files if f.did not in known and f.available]
    paths = sorted({f.path for f in fresh})
    for start in range(0, len(paths), CHUNK):
        rows = s.scalars(select(CatalogFile).where(CatalogFile.path.in_(paths[start : start + CHUNK])))
        by_path.update({r.path: r for r in rows})
    replica_urls = _replica_urls(s, site.id, [r.id for r in known.values()])
    run_infos: dict[tuple[int, int], dict[str, Any]] = {}
    for f in files:
        run_infos.setdefault((f.exp, f.run), {}).update(f.run_info)
    runs = ensure_runs(s, run_infos)
    for f in files:
        row = known.get(f.did)
        if row is None:
            continue
        if row.checksum and f.checksum and row.checksum != f.checksum:
            _flag(
                row,
                CHECKSUM_CHANGED,
                f"adler32 was {row.checksum}, {source} now says {f.checksum}",
                now,
                applied,
            )
        elif not f.available:
            _flag(
                row, MISSING, f"the replica at {site_name} is no longer available in {source}", now, applied
            )
        elif row.flag == MISSING:
            row.flag, row.flag_detail, row.flagged_at = None, "", None
            applied.restored.append(row.did or row.path)
        if f.available and row.id not in replica_urls:  # known from another site's RSE: a replica here too
            s.add(Replica(file_id=row.id, site_id=site.id, url=f.path))
            replica_urls[row.id] = f.path
        elif f.available and replica_urls[row.id] != f.path:
            s.execute(
                update(Replica)
                .where(Replica.file_id == row.id, Replica.site_id == site.id)
                .values(url=f.path)
            )
    new_rows: list[dict[str, Any]] = []
    batch_paths: set[str] = set()
    for f in fresh:
        if f.path in batch_paths:  # the same PFN twice in one batch is inserted once
            continue
        clash = by_path.get(f.path)
        if clash is not None:  # the same file name announced again as another DID
            if clash.checksum and clash.checksum != f.checksum:
                _flag(
                    clash,
                    CHECKSUM_CHANGED,
                    f"{f.path} is now {f.did} with adler32 {f.checksum}",
                    now,
                    applied,
                )
            continue
        new_rows.append(
            {
                "run_id": runs[(f.exp, f.run)].id,
                "data_tag": f.data_tag,
                "data_format": "raw",
                "path": f.path,
                "n_events": f.n_events,
                "size_bytes": f.size_bytes,
                "did": f.did,
                "checksum": f.checksum or None,
                "flag_detail": "",
            }
        )
        batch_paths.add(f.path)
    if new_rows:
        s.flush()
        s.execute(insert(CatalogFile), new_rows)
        ids = _ids_by_path(s, [r["path"] for r in new_rows])
        s.execute(
            insert(Replica),
            [{"file_id": ids[r["path"]], "site_id": site.id, "url": r["path"]} for r in new_rows],
        )
        applied.new = len(new_rows)
    s.flush()
    return applied


def _ids_by_path(s: Session, paths: list[str]) -> dict[str, int]:
    ids: dict[str, int] = {}
    for start in range(0, len(paths), CHUNK):
        query = select(CatalogFile.path, CatalogFile.id).where(
            CatalogFile.path.in_(paths[start : start + CHUNK])
        )
        ids.update({path: file_id for path, file_id in s.execute(query)})
    return ids


def _replica_urls(s: Session, site_id: int, file_ids: list[int]) -> dict[int, str]:
    urls: dict[int, str] = {}
    for start in range(0, len(file_ids), CHUNK):
        query = select(Replica.file_id, Replica.url).where(
            Replica.site_id == site_id, Replica.file_id.in_(file_ids[start : start + CHUNK])
        )
        urls.update({file_id: url for file_id, url in s.execute(query)})
    return urls


def flag_missing(
    s: Session,
    site_name: str,
    listed: set[str],
    wants: Iterable[tuple[Iterable[str], tuple[int, int, int, int]]],
    *,
    now: datetime,
    source: str = "Rucio",
) -> Applied:
    """Flag the source's files at the site, of the wanted tags and IoVs, that a full scan did not list."""
    site = get_site(s, site_name)
    applied = Applied()
    for tags, (exp_low, run_low, exp_high, run_high) in wants:
        query = (
            select(CatalogFile)
            .join(Run, CatalogFile.run_id == Run.id)
            .join(Replica, Replica.file_id == CatalogFile.id)
            .where(
                Replica.site_id == site.id,
                CatalogFile.did.is_not(None),
                CatalogFile.flag.is_(None),
                CatalogFile.data_tag.in_(sorted(set(tags))),
                _in_iov(exp_low, run_low, exp_high, run_high),
            )
        )
        for row in s.scalars(query):
            if row.did not in listed:
                _flag(row, MISSING, f"{source} no longer lists a replica at {site_name}", now, applied)
    s.flush()
    return applied


def flagged_in(s: Session, *, exp_low: int, run_low: int, exp_high: int, run_high: int) -> list[FlaggedFile]:
    """The flagged files of the runs in the IoV: what the loop no longer gives to jobs, and why."""
    query = (
        select(CatalogFile)
        .join(Run, CatalogFile.run_id == Run.id)
        .where(CatalogFile.flag.is_not(None), _in_iov(exp_low, run_low, exp_high, run_high))
        .order_by(CatalogFile.path)
    )
    return [
        FlaggedFile(r.did or "", r.path, r.flag or "", r.flag_detail, r.flagged_at) for r in s.scalars(query)
    ]


# -- the source's cursor and health -----------------------------------------------------------------


def source_state(s: Session, site_name: str, kind: str = "rucio") -> CatalogSource:
    """The site's source row (created on first use)."""
    site = get_site(s, site_name)
    row, _created = get_or_insert(
        s,
        CatalogSource,
        {"site_id": site.id, "kind": kind},
        {"endpoint": "", "failures": 0, "last_error": ""},
    )
    return row


def record_success(
    s: Session, row: CatalogSource, *, endpoint: str, updated_after: datetime, full_scan: bool, now: datetime
) -> None:
    row.endpoint, row.updated_after, row.last_ok_at = endpoint[:512], updated_after, now
    if full_scan:
        row.last_full_scan_at = now
    row.failures, row.last_error, row.next_try_at = 0, "", None


def record_failure(
    s: Session, row: CatalogSource, *, endpoint: str, error: str, now: datetime, base_s: float, max_s: float
) -> None:
    """One more failure in a row; the next try waits ``base_s * 2**(failures-1)``, at most ``max_s``."""
    row.endpoint = endpoint[:512]
    row.failures += 1
    row.last_error = error[:512]
    row.next_try_at = now + timedelta(seconds=min(max_s, base_s * 2 ** (row.failures - 1)))


def list_sources(s: Session) -> list[CatalogSource]:
    return list(s.scalars(select(CatalogSource).order_by(CatalogSource.id)))
