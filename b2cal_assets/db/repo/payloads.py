"""Payloads: each upload or job output adds new revisions; older ones are marked superseded, never deleted."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from b2cal_assets.db.errors import InvalidValue
from b2cal_assets.db.models import Payload
from b2cal_assets.db.repo.attempts import get_attempt
from b2cal_assets.db.repo.processings import get_processing, lock_processing
from b2cal_assets.db.repo.rows import check_choice, iov4
from b2cal_assets.domain.iov import IoV

SOURCES = ("job", "upload")
REPLACE_MODES = ("all", "overlapping")
PayloadEntry = tuple[str, str, Sequence[int], str]  # (name, md5 checksum, iov 4-tuple, file)


def _checked(entries: Iterable[Any]) -> list[tuple[str, str, tuple[int, int, int, int], str]]:
    checked = []
    for entry in entries:
        try:
            name, checksum, iov, file = entry
        except (TypeError, ValueError):
            raise InvalidValue(f"a payload entry is (name, checksum, iov, file); got {entry!r}") from None
        if not name or len(name) > 128:
            raise InvalidValue(f"a payload name has 1 to 128 characters; got {name!r}")
        if not checksum or len(checksum) > 32:
            raise InvalidValue(f"payload {name}: the checksum is an md5 hex digest; got {checksum!r}")
        checked.append((str(name), str(checksum), iov4(iov), str(file)))
    # A name may appear once per IoV (run-by-run calibrations write one payload per run set).
    keys = [(e[0], e[2]) for e in checked]
    duplicates = sorted({f"{n} {','.join(map(str, i))}" for n, i in keys if keys.count((n, i)) > 1})
    if duplicates:
        raise InvalidValue(f"payload(s) listed twice with the same IoV: {', '.join(duplicates)}")
    return checked


def record_payloads(
    s: Session,
    processing_name: str,
    calibration: str,
    attempt_id: int | None,
    entries: Iterable[PayloadEntry],
    source: str = "job",
    *,
    replace: str = "all",
) -> list[Payload]:
    """Store a calibration's new payloads as the next revision of each name in the processing.

    ``replace="all"`` (a job's output) marks every earlier payload of the calibration in the processing
    superseded; ``replace="overlapping"`` (an upload) only those of the same name whose IoV overlaps a new
    entry's, so the other current revisions stay in force. Recording the same
    entries for the same attempt again (a retried step) returns the stored rows instead of new revisions.
    """
    check_choice("a payload source", source, SOURCES)
    check_choice("replace", replace, REPLACE_MODES)
    checked = _checked(entries)
    processing = lock_processing(s, processing_name)
    if attempt_id is not None:
        attempt = get_attempt(s, attempt_id)
        if attempt.processing_id != processing.id or attempt.calibration != calibration:
            raise InvalidValue(
                f"attempt id {attempt_id} is not an attempt of {calibration} in {processing_name}"
            )
        stored = list(
            s.scalars(
                select(Payload)
                .where(Payload.processing_id == processing.id, Payload.attempt_id == attempt_id)
                .order_by(Payload.id)
            )
        )
        if stored and {_key(p) for p in stored} == {(n, c, i, f) for n, c, i, f in checked}:
            return stored
    if not checked:
        return []
    revisions = dict(
        s.execute(
            select(Payload.name, func.max(Payload.revision))
            .where(Payload.processing_id == processing.id, Payload.name.in_([e[0] for e in checked]))
            .group_by(Payload.name)
        ).all()
    )
    if replace == "all":
        s.execute(
            update(Payload)
            .where(
                Payload.processing_id == processing.id,
                Payload.calibration == calibration,
                Payload.superseded.is_(False),
            )
            .values(superseded=True)
            .execution_options(synchronize_session="fetch")
        )
    else:
        for row in overlapping_current(s, processing_name, calibration, [(e[0], e[2]) for e in checked]):
            row.superseded = True
        s.flush()
    rows = []
    for name, checksum, (exp_low, run_low, exp_high, run_high), file in checked:
        revisions[name] = revisions.get(name, 0) + 1
        row = Payload(
            processing_id=processing.id,
            calibration=calibration,
            attempt_id=attempt_id,
            name=name,
            revision=revisions[name],
            checksum=checksum,
            exp_low=exp_low,
            run_low=run_low,
            exp_high=exp_high,
            run_high=run_high,
            file=file,
            source=source,
            superseded=False,
        )
        s.add(row)
        rows.append(row)
    s.flush()
    return rows


def overlapping_current(
    s: Session, processing_name: str, calibration: str, entries: Iterable[tuple[str, Sequence[int]]]
) -> list[Payload]:
    """The calibration's current payloads that ``(name, iov)`` entries would replace: same name, IoV overlapping."""
    wanted = [(name, IoV(*iov4(iov))) for name, iov in entries]
    return [
        p
        for p in current_payloads(s, processing_name, calibration)
        if any(
            name == p.name and iov.overlaps(IoV(p.exp_low, p.run_low, p.exp_high, p.run_high))
            for name, iov in wanted
        )
    ]


def _key(p: Payload) -> tuple[str, str, tuple[int, int, int, int], str]:
    return (p.name, p.checksum, (p.exp_low, p.run_low, p.exp_high, p.run_high), p.file)


def current_payloads(s: Session, processing_name: str, calibration: str | None = None) -> list[Payload]:
    """The payloads in force (not superseded), by calibration and name."""
    processing = get_processing(s, processing_name)
    query = select(Payload).where(Payload.processing_id == processing.id, Payload.superseded.is_(False))
    if calibration is not None:
        query = query.where(Payload.calibration == calibration)
    return list(s.scalars(query.order_by(Payload.calibration, Payload.name)))


def payload_history(
    s: Session, processing_name: str, calibration: str | None = None, name: str | None = None
) -> list[Payload]:
    """Every revision ever stored, superseded ones included, by name then revision."""
    processing = get_processing(s, processing_name)
    query = select(Payload).where(Payload.processing_id == processing.id)
    if calibration is not None:
        query = query.where(Payload.calibration == calibration)
    if name is not None:
        query = query.where(Payload.name == name)
    return list(s.scalars(query.order_by(Payload.name, Payload.revision)))
