"""Row helpers shared by the repo modules: insert-or-get under concurrent writers, checked field updates."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from b2cal_assets.db.errors import InvalidValue
from b2cal_assets.db.models import Base
from b2cal_assets.domain.iov import MAX_IOV_NUMBER

M = TypeVar("M", bound=Base)


def get_or_insert(
    session: Session, model: type[M], lookup: Mapping[str, Any], values: Mapping[str, Any]
) -> tuple[M, bool]:
    """The row matching ``lookup`` (a unique key), inserting it with ``values`` if missing.

    Safe when another transaction inserts the same key at the same time: the insert runs in a savepoint,
    and on a unique-key clash the other writer's row is read back instead.
    """
    query = select(model).filter_by(**lookup)
    row = session.scalars(query).first()
    if row is not None:
        return row, False
    try:
        with session.begin_nested():
            row = model(**lookup, **values)
            session.add(row)
    except IntegrityError:
        row = session.scalars(query.execution_options(populate_existing=True)).first()
        if row is None:
            raise
        return row, False
    return row, True


def check_fields(model: type[Base], fields: Mapping[str, Any], allowed: Iterable[str] | None = None) -> None:
    """Raise ``InvalidValue`` naming any field the model (or the caller's ``allowed`` set) does not have."""
    names = set(allowed) if allowed is not None else {c.key for c in model.__mapper__.column_attrs} - {"id"}
    unknown = sorted(set(fields) - names)
    if unknown:
        raise InvalidValue(
            f"{model.__tablename__} has no settable field(s) {', '.join(unknown)}; settable: {', '.join(sorted(names))}"
        )


def check_choice(what: str, value: str, choices: Iterable[str]) -> str:
    options = tuple(choices)
    if value not in options:
        raise InvalidValue(f"{what} must be one of {', '.join(options)}; got {value!r}")
    return value


def iov4(value: Iterable[int]) -> tuple[int, int, int, int]:
    """A checked ``(exp_low, run_low, exp_high, run_high)``.

    ``-1, -1`` at the high end means open; ``run_high = -1`` alone means "to the end of exp_high" (basf2).
    """
    try:
        parts = tuple(int(v) for v in value)
    except (TypeError, ValueError):
        raise InvalidValue(
            f"an IoV is four integers exp_low, run_low, exp_high, run_high; got {value!r}"
        ) from None
    if len(parts) != 4:
        raise InvalidValue(f"an IoV is four integers exp_low, run_low, exp_high, run_high; got {value!r}")
    exp_low, run_low, exp_high, run_high = parts
    if any(v > MAX_IOV_NUMBER or v < -1 for v in parts):
        raise InvalidValue(
            f"IoV {parts}: experiment and run numbers are 0 to {MAX_IOV_NUMBER} (-1 for an open high end)"
        )
    if exp_low < 0 or run_low < 0:
        raise InvalidValue(f"IoV {parts}: the low end must be non-negative")
    if exp_high == -1 and run_high != -1:
        raise InvalidValue(f"IoV {parts}: with exp_high = -1 (open) run_high must be -1 too")
    if exp_high != -1 and run_high != -1 and (exp_high, run_high) < (exp_low, run_low):
        raise InvalidValue(f"IoV {parts}: the high end is before the low end")
    if exp_high != -1 and exp_high < exp_low:
        raise InvalidValue(f"IoV {parts}: the high end is before the low end")
    return exp_low, run_low, exp_high, run_high
