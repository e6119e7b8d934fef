"""Sign-offs: a person's (or the automatic policy's) accept or reject of an attempt's payloads."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from b2cal_assets.db.errors import ConcurrentUpdate, InvalidValue
from b2cal_assets.db.models import Attempt, Signoff
from b2cal_assets.db.repo.attempts import get_attempt
from b2cal_assets.db.repo.processings import get_processing, lock_processing
from b2cal_assets.db.repo.rows import check_choice
from b2cal_assets.domain.states import AttemptState, SignoffDecision

DECISIONS = tuple(d.value for d in SignoffDecision)


def record_signoff(
    s: Session,
    processing_name: str,
    calibration: str,
    decision: str,
    by: str,
    comment: str = "",
    automatic: bool = False,
    attempt_id: int | None = None,
) -> Signoff:
    """Record a decision on ``attempt_id`` (default: the latest attempt).

    Takes the same lock as ``create_attempt``: a sign-off of an attempt that a newer attempt has replaced
    in the meantime raises ``ConcurrentUpdate`` instead of being attached to the wrong payloads, and an
    attempt still running cannot be accepted.
    """
    check_choice("a sign-off decision", decision, DECISIONS)
    processing = lock_processing(s, processing_name)
    latest = s.scalars(
        select(Attempt)
        .where(Attempt.processing_id == processing.id, Attempt.calibration == calibration)
        .order_by(Attempt.number.desc())
        .limit(1)
        .execution_options(populate_existing=True)
    ).first()
    attempt = latest if attempt_id is None else get_attempt(s, attempt_id)
    if attempt is not None:
        if attempt.processing_id != processing.id or attempt.calibration != calibration:
            raise InvalidValue(
                f"attempt id {attempt.id} is not an attempt of {calibration} in {processing_name}"
            )
        if latest is not None and latest.id != attempt.id:
            raise ConcurrentUpdate(
                f"attempt #{attempt.number} of {calibration} in {processing_name} was replaced by attempt "
                f"#{latest.number} (submitted by {latest.submitted_by}); review and sign off that one"
            )
        if decision == SignoffDecision.ACCEPT and attempt.state != AttemptState.FINISHED:
            raise InvalidValue(
                f"attempt #{attempt.number} of {calibration} in {processing_name} is {attempt.state}; only a "
                "finished attempt can be accepted"
            )
    elif decision == "accept":
        raise InvalidValue(f"{calibration} in {processing_name} has no attempt to accept")
    signoff = Signoff(
        processing_id=processing.id,
        calibration=calibration,
        attempt_id=attempt.id if attempt is not None else None,
        decision=decision,
        automatic=automatic,
        by=by,
        comment=comment,
    )
    s.add(signoff)
    s.flush()
    return signoff


def latest_signoff(s: Session, processing_name: str, calibration: str) -> Signoff | None:
    processing = get_processing(s, processing_name)
    query = (
        select(Signoff)
        .where(Signoff.processing_id == processing.id, Signoff.calibration == calibration)
        .order_by(Signoff.id.desc())
        .limit(1)
    )
    return s.scalars(query).first()


def list_signoffs(s: Session, processing_name: str, calibration: str | None = None) -> list[Signoff]:
    processing = get_processing(s, processing_name)
    query = select(Signoff).where(Signoff.processing_id == processing.id)
    if calibration is not None:
        query = query.where(Signoff.calibration == calibration)
    return list(s.scalars(query.order_by(Signoff.id)))
