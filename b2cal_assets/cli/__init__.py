"""The ``b2cal`` command. Each command group lives in its own module with ``register(subparsers)``.

User errors raise ``UserError``: one clear line on stderr and exit status 2, never a traceback. The top
layer: it may import every other one (``web`` to serve it and for the directory, ``defs`` for Dagster).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from typing import NoReturn

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


class _Parser(argparse.ArgumentParser):
    """A bad value is one line naming the option (exit 2), not a usage dump; ``--help`` has the usage."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"b2cal: error: {self.prog.removeprefix('b2cal ')}: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="b2cal", description="Automated detector calibration on Dagster.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMAND_MODULES:
        # a command module that fails to import is an error here, never a command silently missing
        module = importlib.import_module(f"b2cal_assets.cli.{name}")
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, or a bad option (one line already printed)
        return exc.code if isinstance(exc.code, int) else 2
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
