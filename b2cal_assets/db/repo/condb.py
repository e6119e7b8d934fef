"""The conditions-database upload of each processing: its staging tag's row and one row per payload IoV."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from b2cal_assets.db.errors import InvalidValue
from b2cal_assets.db.models import CondbTag, CondbUpload, Processing
from b2cal_assets.db.repo.processings import get_processing
from b2cal_assets.db.repo.rows import check_choice

UPLOAD_STATES = ("pending", "sending_payload", "payload", "sending_iov", "done", "refused")
OUTCOMES = ("", "uploaded", "unavailable", "refused", "problems")
PlannedIoV = tuple[str, str, int, str, tuple[int, int, int, int], str]  # calibration, name, revision, md5, iov, file


def get_condb_tag(s: Session, processing: str) -> CondbTag | None:
    p = get_processing(s, processing)
    return s.scalars(select(CondbTag).where(CondbTag.processing_id == p.id)).first()


def ensure_condb_tag(s: Session, processing: str, name: str) -> CondbTag:
    """The processing's tag row; a tag of another name (the pattern changed) is refused, not renamed."""
    row = get_condb_tag(s, processing)
    if row is None:
        row = CondbTag(processing_id=get_processing(s, processing).id, name=name, problems=[])
        s.add(row)
        s.flush()
    elif row.name != name:
        raise InvalidValue(
            f"{processing} was uploaded to the staging tag {row.name}; it is not uploaded again as {name}"
        )
    return row


def mark_condb_due(s: Session, processing: str, name: str) -> None:
    """An upload is to be tried at the next sensor tick (a processing finished, a calibration signed off)."""
    row = ensure_condb_tag(s, processing, name)
    row.due = True
    row.next_try_at = None


def due_condb_processings(s: Session, now: datetime) -> list[str]:
    """Processings whose upload is due and whose backoff (after an unreachable server) is over."""
    query = (
        select(Processing.name)
        .join(CondbTag, CondbTag.processing_id == Processing.id)
        .where(CondbTag.due.is_(True), or_(CondbTag.next_try_at.is_(None), CondbTag.next_try_at <= now))
        .order_by(Processing.id)
    )
    return list(s.scalars(query))


def update_condb_tag(s: Session, processing: str, **fields: Any) -> CondbTag:
    row = get_condb_tag(s, processing)
    if row is None:
        raise InvalidValue(f"{processing} has no staging tag in the conditions database yet")
    if "outcome" in fields:
        check_choice("an upload outcome", fields["outcome"], OUTCOMES)
    for key, value in fields.items():
        setattr(row, key, value)
    return row


def plan_uploads(s: Session, tag: CondbTag, planned: Iterable[PlannedIoV]) -> list[CondbUpload]:
    """The rows of these payload IoVs, created ``pending`` where new; in the given order."""
    existing = {
        (u.name, u.checksum, (u.exp_low, u.run_low, u.exp_high, u.run_high)): u
        for u in s.scalars(select(CondbUpload).where(CondbUpload.tag_id == tag.id))
    }
    rows = []
    for calibration, name, revision, checksum, iov, file in planned:
        row = existing.get((name, checksum, iov))
        if row is None:
            row = CondbUpload(
                tag_id=tag.id,
                calibration=calibration,
                name=name,
                revision=revision,
                checksum=checksum,
                exp_low=iov[0],
                run_low=iov[1],
                exp_high=iov[2],
                run_high=iov[3],
                file=file,
                state="pending",
                error="",
            )
            s.add(row)
            existing[(name, checksum, iov)] = row
        rows.append(row)
    s.flush()
    return rows


def list_uploads(s: Session, processing: str) -> list[CondbUpload]:
    tag = get_condb_tag(s, processing)
    if tag is None:
        return []
    query = select(CondbUpload).where(CondbUpload.tag_id == tag.id)
    return list(s.scalars(query.order_by(CondbUpload.name, CondbUpload.exp_low, CondbUpload.run_low)))


def uploads_by_processing(
    s: Session, names: Iterable[str]
) -> dict[str, tuple[CondbTag, list[CondbUpload]]]:
    """The tag row and upload rows of each named processing that has one, in two queries (the status)."""
    wanted = list(names)
    if not wanted:
        return {}
    tags = s.execute(
        select(Processing.name, CondbTag)
        .join(CondbTag, CondbTag.processing_id == Processing.id)
        .where(Processing.name.in_(wanted))
    ).all()
    by_id = {tag.id: (name, tag) for name, tag in tags}
    rows: dict[int, list[CondbUpload]] = {tag_id: [] for tag_id in by_id}
    if by_id:
        query = select(CondbUpload).where(CondbUpload.tag_id.in_(list(by_id)))
        for row in s.scalars(query.order_by(CondbUpload.name, CondbUpload.exp_low, CondbUpload.run_low)):
            rows[row.tag_id].append(row)
    return {name: (tag, rows[tag.id]) for name, tag in by_id.values()}


def set_upload(s: Session, upload_id: int, state: str, **fields: Any) -> CondbUpload:
    check_choice("an upload state", state, UPLOAD_STATES)
    row = s.get(CondbUpload, upload_id)
    if row is None:
        raise InvalidValue(f"no upload row {upload_id}")
    row.state = state
    for key, value in fields.items():
        setattr(row, key, value)
    return row
