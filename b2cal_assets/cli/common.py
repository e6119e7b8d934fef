"""What every command needs: the database, the scripts, the loop service, and friendly errors."""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Callable
from typing import Any

from b2cal_assets.cli import UserError
from b2cal_assets.cli.errors import user_errors
from b2cal_assets.cli.identity import acting
from b2cal_assets.db import engine
from b2cal_assets.domain.iov import MAX_IOV_NUMBER
from b2cal_assets.loop.factory import loop_service as shared_loop_service
from b2cal_assets.loop.service import LoopService

MAX_INTEGER = MAX_IOV_NUMBER  # 2^31 - 1: a signed 32-bit integer, the narrowest of the engines' columns


def add_db_argument(parser) -> None:
    parser.add_argument(
        "--database-url", default=None, help="SQLAlchemy URL (default: $B2CAL_DATABASE_URL or SQLite)"
    )


def add_dir_argument(parser) -> None:
    parser.add_argument(
        "--dir", default=None, help="calibration scripts directory (default: $B2CAL_CALIBRATIONS_DIR)"
    )


def parse_number(
    text: str, option: str, *, minimum: float = 0.0, maximum: float | None = None, integer: bool = False
) -> float:
    """``text`` as a finite number in range, or a ``UserError`` naming ``option`` (no inf, no NaN).

    A whole number is at most ``MAX_INTEGER`` unless ``maximum`` says otherwise: every engine's integer
    columns and limits take it (a larger one came back from MariaDB and PostgreSQL as a traceback)."""
    kind = "a whole number" if integer else "a number"
    if integer and maximum is None:
        maximum = MAX_INTEGER
    try:
        value = int(text) if integer else float(text)
    except (TypeError, ValueError):
        raise UserError(f"{option}: {text!r} is not {kind}") from None
    if not math.isfinite(value):
        raise UserError(f"{option}: {text!r} is not a finite number")
    if value < minimum or (maximum is not None and value > maximum):
        shown = (lambda n: str(int(n))) if integer else (lambda n: f"{n:g}")
        upper = f" to {shown(maximum)}" if maximum is not None else " or more"
        raise UserError(f"{option}: {text!r} is out of range; give {shown(minimum)}{upper}")
    return value


class _NotFinite(ValueError):
    pass


def _refuse_constant(name: str) -> Any:
    raise _NotFinite(name)


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _NotFinite(text)
    return value


def parse_json(text: str, what: str) -> Any:
    """``text`` as JSON the calibration database can store on every engine, or a ``UserError`` naming
    ``what``: PostgreSQL and MariaDB refuse NaN and Infinity (and 1e999, which Python reads as inf)."""
    try:
        return json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float)
    except _NotFinite as exc:
        raise UserError(
            f"{what}: {exc} is not a finite number (JSON numbers must be finite): {text!r}"
        ) from None
    except json.JSONDecodeError as exc:
        raise UserError(f"{what} is not valid JSON ({exc.msg} at character {exc.pos}): {text!r}") from None


def number_type(
    *, minimum: float = 0, maximum: float | None = None, integer: bool = False
) -> Callable[[str], Any]:
    """An argparse ``type`` checking as ``parse_number`` does; a bad value is one line naming the option."""

    def parse(text: str) -> Any:
        try:
            value = parse_number(text, "value", minimum=minimum, maximum=maximum, integer=integer)
        except UserError as exc:
            raise argparse.ArgumentTypeError(str(exc).removeprefix("value: ")) from None
        return int(value) if integer else value

    parse.__name__ = "whole number" if integer else "number"
    return parse


def database_url(args: argparse.Namespace) -> str:
    with user_errors():
        return getattr(args, "database_url", None) or engine.database_url()


def loop_service(args: argparse.Namespace, *, migrate: bool = False) -> LoopService:
    """The process's loop service (``loop/factory.py``) for ``--database-url`` and ``--dir``, once the
    database is at the code's schema (migrated first with ``migrate``)."""
    url = database_url(args)
    with user_errors():
        if migrate:
            engine.ensure_schema(url)
        else:
            engine.check_schema(url)
        return shared_loop_service(url, getattr(args, "dir", None))


def print_json(value: Any) -> None:
    json.dump(value, sys.stdout, indent=2, sort_keys=True, default=str)
    sys.stdout.write("\n")


def current_user(args: argparse.Namespace) -> str:
    """Who a command acts as: the login name, or ``--as`` for a manager (``cli/identity.py``)."""
    return acting(args).name
