"""Attempts: each run of a calibration in a processing, numbered 1, 2, ... per calibration."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from b2cal_assets.db.errors import InvalidValue, NotFound
from b2cal_assets.db.models import Attempt, utcnow
from b2cal_assets.db.repo.processings import get_processing, lock_processing
from b2cal_assets.db.repo.rows import check_choice
from b2cal_assets.domain.states import END_ATTEMPT_STATES, AttemptState

STATES = tuple(s.value for s in AttemptState)
END_STATES = tuple(s.value for s in AttemptState if s in END_ATTEMPT_STATES)


def create_attempt(
    s: Session,
    processing_name: str,
    calibration: str,
    submitted_by: str,
    expert_config: dict[str, Any] | None = None,
    job_config: dict[str, Any] | None = None,
    dagster_run_id: str = "",
    state: str = AttemptState.SUBMITTED,
) -> Attempt:
    """A new attempt numbered one above the calibration's last; concurrent callers get distinct numbers
    (the processing row is locked while the number is chosen)."""
    check_choice("an attempt state", state, STATES)
    processing = lock_processing(s, processing_name)
    last = s.scalar(
        select(func.max(Attempt.number)).where(
            Attempt.processing_id == processing.id, Attempt.calibration == calibration
        )
    )
    attempt = Attempt(
        processing_id=processing.id,
        calibration=calibration,
        number=(last or 0) + 1,
        submitted_by=submitted_by,
        expert_config=dict(expert_config or {}),
        job_config=dict(job_config or {}),
        dagster_run_id=dagster_run_id,
        state=AttemptState(state),
    )
    s.add(attempt)
    s.flush()
    return attempt


def get_attempt(s: Session, attempt_id: int) -> Attempt:
    attempt = s.get(Attempt, attempt_id, populate_existing=True)
    if attempt is None:
        raise NotFound(f"no attempt with id {attempt_id}")
    return attempt


def get_attempt_number(s: Session, processing_name: str, calibration: str, number: int) -> Attempt:
    processing = get_processing(s, processing_name)
    attempt = s.scalars(
        select(Attempt).where(
            Attempt.processing_id == processing.id,
            Attempt.calibration == calibration,
            Attempt.number == number,
        )
    ).first()
    if attempt is None:
        numbers = [str(a.number) for a in list_attempts(s, processing_name, calibration)]
        raise NotFound.listing(f"attempt of {calibration} in {processing_name}", str(number), numbers)
    return attempt


def latest_attempt(s: Session, processing_name: str, calibration: str) -> Attempt | None:
    processing = get_processing(s, processing_name)
    query = (
        select(Attempt)
        .where(Attempt.processing_id == processing.id, Attempt.calibration == calibration)
        .order_by(Attempt.number.desc())
        .limit(1)
    )
    return s.scalars(query.execution_options(populate_existing=True)).first()


def list_attempts(s: Session, processing_name: str, calibration: str | None = None) -> list[Attempt]:
    """Attempts oldest first (by calibration, then number)."""
    processing = get_processing(s, processing_name)
    query = select(Attempt).where(Attempt.processing_id == processing.id)
    if calibration is not None:
        query = query.where(Attempt.calibration == calibration)
    return list(s.scalars(query.order_by(Attempt.calibration, Attempt.number)))


def start_attempt(
    s: Session, attempt_id: int, workdir: str = "", dagster_run_id: str | None = None
) -> Attempt:
    attempt = get_attempt(s, attempt_id)
    if attempt.state in END_STATES:
        raise InvalidValue(
            f"attempt #{attempt.number} of {attempt.calibration} already ended ({attempt.state})"
        )
    attempt.state = AttemptState.RUNNING
    attempt.started_at = utcnow()
    if workdir:
        attempt.workdir = workdir
    if dagster_run_id is not None:
        attempt.dagster_run_id = dagster_run_id
    s.flush()
    return attempt


def set_attempt_state(s: Session, attempt_id: int, state: str) -> Attempt:
    check_choice("an attempt state", state, STATES)
    attempt = get_attempt(s, attempt_id)
    attempt.state = AttemptState(state)
    s.flush()
    return attempt


def finish_attempt(s: Session, attempt_id: int, state: str, iterations: int = 0, error: str = "") -> Attempt:
    """End an attempt: ``finished``, ``failed`` or ``cancelled``, with the number of iterations and error."""
    check_choice("an attempt's end state", state, END_STATES)
    attempt = get_attempt(s, attempt_id)
    attempt.state = AttemptState(state)
    attempt.iterations = int(iterations)
    attempt.error = error
    attempt.finished_at = utcnow()
    s.flush()
    return attempt


def attempts_of_run(s: Session, dagster_run_id: str) -> list[Attempt]:
    """The attempts a Dagster run started (a run materialises one calibration, or the cDST step)."""
    if not dagster_run_id:
        return []
    return list(s.scalars(select(Attempt).where(Attempt.dagster_run_id == dagster_run_id).order_by(Attempt.id)))
