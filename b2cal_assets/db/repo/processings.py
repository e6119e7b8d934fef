"""Processings: one request to calibrate a bucket of runs (the Dagster partition key)."""

from __future__ import annotations

import math
from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from b2cal_assets.db.errors import AlreadyExists, InvalidValue, NotFound
from b2cal_assets.db.models import Processing
from b2cal_assets.db.repo.rows import check_choice, iov4
from b2cal_assets.db.repo.sites import get_site
from b2cal_assets.domain.states import ProcessingState, TransitionRefused, check_processing_move

KINDS = ("prompt", "reprocessing")
STATES = tuple(state.value for state in ProcessingState)
MAX_NAME_LENGTH = 64


def create_processing(
    s: Session,
    name: str,
    kind: str,
    site_name: str,
    iov: Iterable[int],
    global_tags: Iterable[str] = (),
    window_hours: float = 48.0,
    created_by: str = "",
) -> Processing:
    """A new open processing; a name that is taken raises ``AlreadyExists``."""
    if not name or len(name) > MAX_NAME_LENGTH:
        raise InvalidValue(f"a processing name has 1 to {MAX_NAME_LENGTH} characters; got {name!r}")
    check_choice("a processing's kind", kind, KINDS)
    exp_low, run_low, exp_high, run_high = iov4(iov)
    if not math.isfinite(window_hours) or window_hours < 0:
        raise InvalidValue(f"window_hours must be a finite number of at least 0; got {window_hours}")
    site = get_site(s, site_name)
    taken = AlreadyExists(f"a processing named {name!r} already exists; choose another name")
    if s.scalars(select(Processing.id).where(Processing.name == name)).first() is not None:
        raise taken
    processing = Processing(
        name=name,
        kind=kind,
        site=site,
        exp_low=exp_low,
        run_low=run_low,
        exp_high=exp_high,
        run_high=run_high,
        global_tags=list(global_tags),
        window_hours=float(window_hours),
        created_by=created_by,
    )
    try:
        with s.begin_nested():
            s.add(processing)
    except IntegrityError:  # created by someone else since we looked
        raise taken from None
    return processing


def get_processing(s: Session, name: str) -> Processing:
    processing = s.scalars(select(Processing).where(Processing.name == name)).first()
    if processing is None:
        raise NotFound.listing("processing", name, s.scalars(select(Processing.name)))
    return processing


def lock_processing(s: Session, name: str) -> Processing:
    """The processing, with its row locked until the transaction ends.

    Everything numbered per processing (attempts, payload revisions) and every sign-off takes this lock
    first, so concurrent writers queue instead of computing the same number. On SQLite every write
    transaction is already exclusive (``BEGIN IMMEDIATE``).
    """
    found = s.execute(
        select(Processing.id).where(Processing.name == name).with_for_update(key_share=True)
    ).scalar_one_or_none()
    if found is None:
        raise NotFound.listing("processing", name, s.scalars(select(Processing.name)))
    processing = s.get(Processing, found, populate_existing=True)
    assert processing is not None
    return processing


def list_processings(s: Session, state: str | None = None) -> list[Processing]:
    """Processings oldest first, optionally only those in ``state``."""
    query = select(Processing).order_by(Processing.created_at, Processing.id)
    if state is not None:
        check_choice("a processing state", state, STATES)
        query = query.where(Processing.state == state)
    return list(s.scalars(query))


def set_processing_state(s: Session, name: str, state: str) -> Processing:
    """Move the processing to ``state`` if ``domain/states.PROCESSING_TRANSITIONS`` holds the move."""
    check_choice("a processing state", state, STATES)
    processing = lock_processing(s, name)
    try:
        check_processing_move(processing.state, state, f"processing {name}")
    except TransitionRefused as exc:
        raise InvalidValue(str(exc)) from None
    processing.state = ProcessingState(state)
    s.flush()
    return processing


def get_processing_by_id(s: Session, processing_id: int) -> Processing:
    processing = s.get(Processing, processing_id)
    if processing is None:
        raise NotFound(f"no processing with id {processing_id}")
    return processing
