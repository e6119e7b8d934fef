"""A calibration's place in a processing: state, expert, exclusion, window and deadline."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from b2cal_assets.db.errors import ConcurrentUpdate, NotFound
from b2cal_assets.db.models import ProcessingCalibration
from b2cal_assets.db.repo.processings import get_processing
from b2cal_assets.db.repo.rows import check_choice, check_fields, get_or_insert
from b2cal_assets.domain.states import CalibrationState

STATES = tuple(s.value for s in CalibrationState)
SETTABLE = (
    "state",
    "expert_username",
    "excluded",
    "window_opened_at",
    "deadline",
    "launch_generation",
    "relaunches",
)
RETRIES = 3


def ensure_calibrations(
    s: Session, processing_name: str, experts: Mapping[str, str]
) -> list[ProcessingCalibration]:
    """A row for each calibration in ``experts`` (name -> expert user name); new ones start ``waiting``.

    An existing row keeps its state; its expert is updated when a non-empty one is given.
    """
    processing = get_processing(s, processing_name)
    rows = []
    for name, expert in experts.items():
        row, created = get_or_insert(
            s,
            ProcessingCalibration,
            {"processing_id": processing.id, "calibration": name},
            {"expert_username": expert or ""},
        )
        if not created and expert and row.expert_username != expert:
            update_calibration(s, processing_name, name, expert_username=expert)
        rows.append(row)
    s.flush()
    return rows


def get_calibration(
    s: Session, processing_name: str, name: str, *, lock: bool = False
) -> ProcessingCalibration:
    """The row, freshly read; ``lock=True`` also locks it until the transaction ends."""
    processing = get_processing(s, processing_name)
    query = select(ProcessingCalibration).where(
        ProcessingCalibration.processing_id == processing.id, ProcessingCalibration.calibration == name
    )
    if lock:
        query = query.with_for_update(key_share=True)
    row = s.scalars(query.execution_options(populate_existing=True)).first()
    if row is None:
        known = s.scalars(
            select(ProcessingCalibration.calibration).where(
                ProcessingCalibration.processing_id == processing.id
            )
        )
        raise NotFound.listing(f"calibration in processing {processing_name!r}", name, known)
    return row


def list_calibrations(s: Session, processing_name: str) -> list[ProcessingCalibration]:
    processing = get_processing(s, processing_name)
    query = (
        select(ProcessingCalibration)
        .where(ProcessingCalibration.processing_id == processing.id)
        .order_by(ProcessingCalibration.calibration)
    )
    return list(s.scalars(query))


def update_calibration(
    s: Session, processing_name: str, name: str, *, expected_version: int | None = None, **fields: Any
) -> ProcessingCalibration:
    """Set ``fields`` on the calibration's row, guarded by its version column (optimistic locking).

    With ``expected_version`` (the version a user saw), a row changed since raises ``ConcurrentUpdate``.
    Without it, a change by another writer between our read and our write is retried on the fresh, locked
    row (only the named fields are written, so the other writer's fields are kept).
    """
    check_fields(ProcessingCalibration, fields, SETTABLE)
    if "state" in fields:
        check_choice("a calibration state", fields["state"], STATES)
    for attempt in range(RETRIES):
        # first optimistically; after a clash, with the row locked so the retry cannot clash again
        row = get_calibration(s, processing_name, name, lock=attempt > 0)
        if expected_version is not None and row.version != expected_version:
            raise ConcurrentUpdate(
                f"{name} in {processing_name} was changed by someone else (version {row.version}, you saw "
                f"{expected_version}); reload and try again"
            )
        try:
            with s.begin_nested():
                for key, value in fields.items():
                    setattr(row, key, value)
            return row
        except StaleDataError:
            continue
    raise ConcurrentUpdate(
        f"{name} in {processing_name} kept changing while it was being updated; reload and try again"
    )
