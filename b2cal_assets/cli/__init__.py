"""The ``b2cal`` command. Each command group lives in its own module with ``register(subparsers)``.

User errors raise ``UserError``: one clear line on stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

COMMAND_MODULES = (
    "demo",
    "calibrations",
    "site",
    "processing",
    "submit",
    "signoff",
    "payloads",
    "status",
    "tickets",
    "manage",
    "db",
    "audit",
    "web",
)


class UserError(Exception):
    """A mistake the user can fix; the message says what is wrong and what to do."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="b2cal", description="Automated detector calibration on Dagster.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(f"b2cal_assets.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"b2cal_assets.cli.{name}":
                continue  # command group not built yet
            raise
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except UserError as exc:
        print(f"b2cal: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("b2cal: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
