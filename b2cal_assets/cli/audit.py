"""``b2cal audit``: who changed what, newest first."""

from __future__ import annotations

import argparse
import json
from typing import Any

from b2cal_assets.cli.common import add_db_argument, database_url, number_type, print_json
from b2cal_assets.cli.db import database_errors
from b2cal_assets.cli.tables import print_table
from b2cal_assets.db.engine import check_schema, make_engine, session_scope
from b2cal_assets.db.repo.audit import list_audit


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("audit", help="show the audit log (who changed what, newest first)")
    parser.add_argument("--processing", default=None, help="only entries of this processing")
    parser.add_argument("--calibration", default=None, help="only entries of this calibration")
    parser.add_argument("--user", default=None, help="only entries by this user")
    parser.add_argument("--action", default=None, help="only this action (e.g. submit, signoff_accept)")
    parser.add_argument(
        "--limit",
        type=number_type(minimum=1, integer=True),
        default=50,
        help="at most this many entries (default: 50)",
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    add_db_argument(parser)
    parser.set_defaults(func=audit_command)


def audit_command(args: argparse.Namespace) -> int:
    url = database_url(args)
    with database_errors():
        check_schema(url)
        with session_scope(make_engine(url), readonly=True) as s:
            entries = list_audit(
                s,
                processing=args.processing,
                calibration=args.calibration,
                user=args.user,
                action=args.action,
                limit=args.limit,
            )
            rows: list[dict[str, Any]] = [
                {
                    "at": e.at.isoformat(sep=" ", timespec="seconds"),
                    "user": e.user,
                    "action": e.action,
                    "processing": e.processing,
                    "calibration": e.calibration,
                    "details": e.details,
                }
                for e in entries
            ]
    if args.json:
        print_json(rows)
        return 0
    if not rows:
        print("no audit entries match")
        return 0

    print_table(
        ["AT", "USER", "ACTION", "PROCESSING", "CALIBRATION", "DETAILS"],
        [
            [
                r["at"],
                r["user"],
                r["action"],
                r["processing"] or "-",
                r["calibration"] or "-",
                _details(r["details"]),
            ]
            for r in rows
        ],
    )
    return 0


def _details(details: dict) -> str:
    text = json.dumps(details, sort_keys=True, default=str) if details else "-"
    return text if len(text) <= 80 else text[:77] + "..."
