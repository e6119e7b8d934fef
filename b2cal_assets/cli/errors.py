"""Turning the library's refusals into one-line user errors (shared by every command module)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from b2cal_assets.cli import UserError
from b2cal_assets.db.errors import DatabaseError
from b2cal_assets.domain.settings import ContractError
from b2cal_assets.loop.service import LoopError
from b2cal_assets.settings import SettingsError

__all__ = ["user_errors"]


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Turn the library's refusals into one-line user errors."""
    try:
        yield
    except (LoopError, ContractError, DatabaseError, SettingsError) as exc:
        raise UserError(str(exc)) from None
