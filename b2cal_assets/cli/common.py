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
from b2cal_assets.loop.factory import loop_service as shared_loop_service
from b2cal_assets.loop.service import LoopService


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
    """``text`` as a finite number in range, or a ``UserError`` naming ``option`` (no inf, no NaN)."""
    kind = "a whole number" if integer else "a number"
    try:
        value = int(text) if integer else float(text)
    except (TypeError, ValueError):
        raise UserError(f"{option}: {text!r} is not {kind}") from None
    if not math.isfinite(value):
        raise UserError(f"{option}: {text!r} is not a finite number")
    if value < minimum or (maximum is not None and value > maximum):
        upper = f" to {maximum:g}" if maximum is not None else " or more"
        raise UserError(f"{option}: {text!r} is out of range; give {minimum:g}{upper}")
    return value


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
