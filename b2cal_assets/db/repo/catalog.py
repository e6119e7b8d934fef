"""The file catalog: runs, skim and cDST files, and where each file can be read at a site."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import ColumnElement, and_, func, insert, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from b2cal_assets.db.errors import AlreadyExists
from b2cal_assets.db.models import CatalogFile, Processing, Replica, Run, Site
from b2cal_assets.db.repo.processings import get_processing
from b2cal_assets.db.repo.rows import check_choice, get_or_insert
from b2cal_assets.db.repo.sites import get_site

DATA_FORMATS = ("raw", "cdst", "mdst", "udst")
RUN_FIELDS = ("run_type", "magnet", "beam_energy", "data_quality", "duration_minutes")


def ensure_run(s: Session, exp: int, run: int, run_info: Mapping[str, Any] | None = None) -> Run:
    """The run ``(exp, run)``, created if missing; metadata in ``run_info`` is brought up to date.

    ``run_info`` may be a whole ``RunInfo`` dict: keys that are not run metadata are ignored.
    """
    info = {k: v for k, v in (run_info or {}).items() if k in RUN_FIELDS and v is not None}
    row, _created = get_or_insert(s, Run, {"exp": int(exp), "run": int(run)}, info)
    for key, value in info.items():
        if getattr(row, key) != value:
            setattr(row, key, value)
    return row


def register_file(
    s: Session,
    *,
    path: str,
    data_tag: str,
    data_format: str,
    exp: int,
    run: int,
    run_info: Mapping[str, Any],
    n_events: int,
    size_bytes: int,
    site_name: str | None = None,
    url: str | None = None,
    processing_name: str | None = None,
) -> tuple[CatalogFile, bool]:
    """Register a file once; ``created`` is False when it was already there (from this or another caller).

    Registering the same path again is harmless, even from two sensor ticks at the same time; registering
    it for another run or data tag raises ``AlreadyExists``. With ``site_name`` and ``url`` the file's
    replica at that site is recorded (or its URL updated).
    """
    check_choice("data_format", data_format, DATA_FORMATS)
    run_row = ensure_run(s, exp, run, run_info)
    processing_id = get_processing(s, processing_name).id if processing_name else None
    file, created = get_or_insert(
        s,
        CatalogFile,
        {"path": path},
        {
            "run": run_row,
            "data_tag": data_tag,
            "data_format": data_format,
            "n_events": int(n_events),
            "size_bytes": int(size_bytes),
            "processing_id": processing_id,
        },
    )
    if not created and (
        file.run_id != run_row.id or file.data_tag != data_tag or file.data_format != data_format
    ):
        raise AlreadyExists(
            f"{path} is already registered for exp {file.run.exp} run {file.run.run}, data tag {file.data_tag!r} "
            f"({file.data_format}); it cannot also be exp {exp} run {run}, {data_tag!r} ({data_format})"
        )
    if site_name is not None and url:
        site = get_site(s, site_name)
        replica, replica_created = get_or_insert(
            s, Replica, {"file_id": file.id, "site_id": site.id}, {"url": url}
        )
        if not replica_created and replica.url != url:
            replica.url = url
    s.flush()
    return file, created


CHUNK = 500  # keys per IN (...) query


def _load_runs(s: Session, keys: Iterable[tuple[int, int]]) -> dict[tuple[int, int], Run]:
    by_exp: dict[int, list[int]] = {}
    for exp, run in keys:
        by_exp.setdefault(int(exp), []).append(int(run))
    found: dict[tuple[int, int], Run] = {}
    for exp, numbers in sorted(by_exp.items()):
        for start in range(0, len(numbers), CHUNK):
            query = select(Run).where(Run.exp == exp, Run.run.in_(numbers[start : start + CHUNK]))
            found.update({(r.exp, r.run): r for r in s.scalars(query)})
    return found


def ensure_runs(s: Session, runs: Mapping[tuple[int, int], Mapping[str, Any]]) -> dict[tuple[int, int], Run]:
    """``ensure_run`` for many runs: one query per 500 runs, one multi-row insert for the missing ones."""
    infos = {key: {k: v for k, v in info.items() if k in RUN_FIELDS and v is not None} for key, info in runs.items()}
    found = _load_runs(s, infos)
    missing = [key for key in infos if key not in found]
    if missing:
        try:
            with s.begin_nested():
                s.execute(insert(Run), [{"exp": exp, "run": run, **infos[(exp, run)]} for exp, run in missing])
        except IntegrityError:  # another writer added some of them at the same time: read theirs back
            pass
        found.update(_load_runs(s, missing))
        for key in missing:
            if key not in found:
                found[key] = ensure_run(s, key[0], key[1], infos[key])
    for key, info in infos.items():
        row = found[key]
        for name, value in info.items():
            if getattr(row, name) != value:
                setattr(row, name, value)
    return found


def register_files(s: Session, entries: Sequence[Mapping[str, Any]], site_name: str | None = None) -> int:
    """``register_file`` for many files at once; returns how many were new.

    Each entry has ``register_file``'s keyword arguments (``path``, ``data_tag``, ``data_format``, ``exp``,
    ``run``, ``run_info``, ``n_events``, ``size_bytes``, optionally ``url``). The same rules hold: a path
    already registered is left as it is, a path registered for another run, data tag or format raises
    ``AlreadyExists`` (and nothing of the batch is kept, as the caller's transaction rolls back). New files
    go in with one multi-row insert per batch; when another writer inserts some of the same paths at
    that moment the batch is registered file by file instead.
    """
    if not entries:
        return 0
    for e in entries:
        check_choice("data_format", e["data_format"], DATA_FORMATS)
    infos: dict[tuple[int, int], dict[str, Any]] = {}
    for e in entries:
        infos.setdefault((int(e["exp"]), int(e["run"])), {}).update(
            {k: v for k, v in dict(e.get("run_info") or {}).items() if k in RUN_FIELDS and v is not None}
        )
    runs = ensure_runs(s, infos)
    first: dict[str, Mapping[str, Any]] = {}
    for e in entries:
        first.setdefault(str(e["path"]), e)
    paths = sorted(first)
    existing: dict[str, CatalogFile] = {}
    for start in range(0, len(paths), CHUNK):
        query = select(CatalogFile).where(CatalogFile.path.in_(paths[start : start + CHUNK]))
        existing.update({f.path: f for f in s.scalars(query)})
    for e in entries:  # every entry against the row it meets: the stored one, or the batch's first
        path = str(e["path"])
        row = existing.get(path)
        have = (row.run.exp, row.run.run, row.data_tag, row.data_format) if row else None
        if have is None:
            f = first[path]
            have = (int(f["exp"]), int(f["run"]), f["data_tag"], f["data_format"])
        want = (int(e["exp"]), int(e["run"]), e["data_tag"], e["data_format"])
        if have != want:
            raise AlreadyExists(
                f"{path} is already registered for exp {have[0]} run {have[1]}, data tag {have[2]!r} "
                f"({have[3]}); it cannot also be exp {want[0]} run {want[1]}, {want[2]!r} ({want[3]})"
            )
    new = [e for p, e in first.items() if p not in existing]  # in the order given, as one by one
    rows = [
        {
            "run_id": runs[(int(e["exp"]), int(e["run"]))].id,
            "data_tag": e["data_tag"],
            "data_format": e["data_format"],
            "path": str(e["path"]),
            "n_events": int(e["n_events"]),
            "size_bytes": int(e["size_bytes"]),
            "flag_detail": "",
        }
        for e in new
    ]
    created = len(rows)
    if rows:
        try:
            with s.begin_nested():
                s.execute(insert(CatalogFile), rows)
        except IntegrityError:
            created = sum(
                register_file(s, site_name=site_name, **{k: e[k] for k in _FILE_KEYS if k in e})[1] for e in new
            )
            return created
    if site_name is not None and any(e.get("url") for e in entries):
        for e in entries:
            if e.get("url"):
                register_file(s, site_name=site_name, **{k: e[k] for k in _FILE_KEYS if k in e})
    s.flush()
    return created


_FILE_KEYS = ("path", "data_tag", "data_format", "exp", "run", "run_info", "n_events", "size_bytes", "url")


def files_after(s: Session, last_id: int, limit: int = 1000) -> list[CatalogFile]:
    """Files with an id above ``last_id``, oldest first: the data-arrival sensor's cursor."""
    query = select(CatalogFile).where(CatalogFile.id > last_id).order_by(CatalogFile.id).limit(limit)
    return list(s.scalars(query))


def _in_iov(exp_low: int, run_low: int, exp_high: int, run_high: int) -> ColumnElement[bool]:
    """Runs from ``(exp_low, run_low)`` to ``(exp_high, run_high)`` inclusive; ``-1`` at the high end is open."""
    low = or_(Run.exp > exp_low, and_(Run.exp == exp_low, Run.run >= run_low))
    if exp_high == -1:
        return low
    if run_high == -1:
        return and_(low, Run.exp <= exp_high)
    return and_(low, or_(Run.exp < exp_high, and_(Run.exp == exp_high, Run.run <= run_high)))


def runs_in(s: Session, *, exp_low: int, run_low: int, exp_high: int, run_high: int) -> list[tuple[int, int]]:
    """``(exp, run)`` of every catalogued run in the IoV, in order."""
    query = (
        select(Run.exp, Run.run)
        .where(_in_iov(exp_low, run_low, exp_high, run_high))
        .order_by(Run.exp, Run.run)
    )
    return [(exp, run) for exp, run in s.execute(query).all()]


def tags_in(
    s: Session,
    tags: Iterable[str],
    *,
    exp_low: int,
    run_low: int,
    exp_high: int,
    run_high: int,
    data_format: str = "raw",
) -> set[str]:
    """Those of ``tags`` with a file of ``data_format`` in the IoV: per tag, one indexed ``EXISTS``.

    The loop asks this for every open processing on every tick; loading the files instead cost
    seconds per tick with a real catalog (hundreds of thousands of files, see
    benchmarks/bench_scale.py), and even a ``DISTINCT`` reads every file of the IoV. Here each tag
    stops at the first run in the IoV that has it (the run index, then the tag-and-run index).
    """
    check_choice("data_format", data_format, DATA_FORMATS)
    found: set[str] = set()
    for tag in sorted(set(tags)):
        has_file = (
            select(CatalogFile.id)
            .where(
                CatalogFile.run_id == Run.id,
                CatalogFile.data_tag == tag,
                CatalogFile.data_format == data_format,
                CatalogFile.flag.is_(None),
            )
            .exists()
        )
        query = select(Run.id).where(_in_iov(exp_low, run_low, exp_high, run_high), has_file).limit(1)
        if s.scalar(query) is not None:
            found.add(tag)
    return found


def arrivals_in(
    s: Session,
    *,
    exp_low: int,
    run_low: int,
    exp_high: int,
    run_high: int,
    up_to_id: int,
    data_format: str = "raw",
) -> list[tuple[str, int, int, int, int]]:
    """``(data_tag, exp, run, files, events)`` per tag and run of the files up to ``up_to_id`` in the IoV.

    What a processing registered after its data arrived is told once: grouped in the database, so a
    catalog of hundreds of thousands of files is never loaded file by file.
    """
    check_choice("data_format", data_format, DATA_FORMATS)
    query = (
        select(CatalogFile.data_tag, Run.exp, Run.run, func.count(CatalogFile.id), func.sum(CatalogFile.n_events))
        .join(Run, CatalogFile.run_id == Run.id)
        .where(
            CatalogFile.data_format == data_format,
            CatalogFile.id <= up_to_id,
            _in_iov(exp_low, run_low, exp_high, run_high),
        )
        .group_by(CatalogFile.data_tag, Run.exp, Run.run)
        .order_by(CatalogFile.data_tag, Run.exp, Run.run)
    )
    return [(tag, exp, run, int(n), int(events or 0)) for tag, exp, run, n, events in s.execute(query).all()]


def files_for(
    s: Session,
    *,
    exp_low: int,
    run_low: int,
    exp_high: int,
    run_high: int,
    data_tags: Iterable[str] | None,
    data_format: str = "raw",
    processing_name: str | None = None,
    site_name: str | None = None,
) -> list[tuple[CatalogFile, Run, str]]:
    """``(file, run, url_or_path)`` for the runs in the IoV, ordered by run, tag and path.

    ``data_tags=None`` means every tag; a file its source flagged is left out. With ``processing_name`` only files of no processing (skims) or of
    that processing (its cDSTs) are returned, and the location is the replica URL at the processing's site
    (``site_name`` overrides the site); without a replica there it is the catalog path.
    """
    check_choice("data_format", data_format, DATA_FORMATS)
    query = (
        select(CatalogFile, Run)
        .join(Run, CatalogFile.run_id == Run.id)
        .where(
            CatalogFile.data_format == data_format,
            CatalogFile.flag.is_(None),  # flagged by its source (gone, checksum changed): never read
            _in_iov(exp_low, run_low, exp_high, run_high),
        )
        .order_by(Run.exp, Run.run, CatalogFile.data_tag, CatalogFile.path)
    )
    if data_tags is not None:
        query = query.where(CatalogFile.data_tag.in_(list(data_tags)))
    site: Site | None = get_site(s, site_name) if site_name else None
    if processing_name is not None:
        processing: Processing = get_processing(s, processing_name)
        query = query.where(
            or_(CatalogFile.processing_id.is_(None), CatalogFile.processing_id == processing.id)
        )
        site = site or processing.site
    rows = s.execute(query).all()
    urls: dict[int, str] = {}
    if site is not None and rows:
        ids = [f.id for f, _run in rows]
        for start in range(0, len(ids), 900):
            chunk = ids[start : start + 900]
            replicas = s.execute(
                select(Replica.file_id, Replica.url).where(
                    Replica.site_id == site.id, Replica.file_id.in_(chunk)
                )
            )
            urls.update({file_id: url for file_id, url in replicas})
    return [(f, run, urls.get(f.id, f.path)) for f, run in rows]
