"""Every change of a calibration's or an attempt's state, checked against the table in ``domain/states.py``.

The loop writes states only through these functions, so no rule can move a calibration or an attempt
along a path the table does not hold; a refused move raises ``LoopError`` and the transaction rolls back.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from b2cal_assets.db.models import Attempt, ProcessingCalibration
from b2cal_assets.db.repo import attempts, calibrations
from b2cal_assets.domain.states import (
    AttemptState,
    CalibrationState,
    TransitionRefused,
    check_attempt_move,
    check_calibration_move,
)
from b2cal_assets.loop.records import LoopError


def move_calibration(
    s: Session, processing: str, calibration: str, state: CalibrationState, **fields: Any
) -> ProcessingCalibration:
    """Put the calibration in ``state`` (and set ``fields``) if the table allows the move from its state."""
    row = calibrations.get_calibration(s, processing, calibration)
    try:
        check_calibration_move(row.state, state, f"{calibration} in {processing}")
    except TransitionRefused as exc:
        raise LoopError(str(exc)) from None
    return calibrations.update_calibration(s, processing, calibration, state=state, **fields)


def _checked(attempt: Attempt, state: AttemptState) -> None:
    try:
        check_attempt_move(attempt.state, state, f"attempt {attempt.number} of {attempt.calibration}")
    except TransitionRefused as exc:
        raise LoopError(str(exc)) from None


def move_attempt(s: Session, attempt_id: int, state: AttemptState) -> Attempt:
    """Put a live attempt in ``state`` (held, submitted, running) if the table allows it."""
    _checked(attempts.get_attempt(s, attempt_id), state)
    return attempts.set_attempt_state(s, attempt_id, state)


def start_attempt(s: Session, attempt_id: int, *, workdir: str, dagster_run_id: str) -> Attempt:
    """The attempt runs now (``running``, with its start time, work directory and Dagster run)."""
    _checked(attempts.get_attempt(s, attempt_id), AttemptState.RUNNING)
    return attempts.start_attempt(s, attempt_id, workdir=workdir, dagster_run_id=dagster_run_id)


def end_attempt(
    s: Session, attempt_id: int, state: AttemptState, *, iterations: int = 0, error: str = ""
) -> Attempt:
    """End the attempt (finished, failed or cancelled) if the table allows it from its state."""
    _checked(attempts.get_attempt(s, attempt_id), state)
    return attempts.finish_attempt(s, attempt_id, state, iterations=iterations, error=error)
