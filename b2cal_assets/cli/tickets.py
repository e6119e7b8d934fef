"""``b2cal tickets``: the ticket messages of the calibrations, sent to Jira or (without Jira) kept here."""

from __future__ import annotations

from typing import Any

from b2cal_assets.cli.common import add_db_argument, database_url, print_json, user_errors
from b2cal_assets.db.engine import check_schema, make_engine, session_scope
from b2cal_assets.db.repo.tickets import list_messages


def register(sub) -> None:
    p = sub.add_parser(
        "tickets",
        help="show the calibrations' ticket messages (what was or will be posted to Jira)",
        description="Without Jira configured, this is where the messages are read.",
    )
    p.add_argument("--processing", default=None, help="only this processing")
    p.add_argument("--calibration", default=None, help="only this calibration")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    add_db_argument(p)
    p.set_defaults(func=run)


def _status(message) -> str:
    if message.sent_at is not None:
        return f"sent to {message.ticket_key} at {message.sent_at:%Y-%m-%d %H:%M}"
    if message.last_error and message.last_error != "sending":
        return "waiting to be sent: " + message.last_error.splitlines()[0][:160]
    return "not sent"


def run(args) -> int:
    url = database_url(args)
    with user_errors():
        check_schema(url)
        with session_scope(make_engine(url)) as s:
            rows: list[dict[str, Any]] = [
                {
                    "id": m.id,
                    "processing": processing,
                    "calibration": m.calibration,
                    "kind": m.kind,
                    "created_at": m.created_at.isoformat(timespec="seconds"),
                    "sent_at": m.sent_at.isoformat(timespec="seconds") if m.sent_at else None,
                    "ticket": m.ticket_key or None,
                    "status": _status(m),
                    "last_error": m.last_error if m.last_error != "sending" else "",
                    "body": m.body,
                    "attachments": [a.get("name") or a.get("path") for a in (m.attachments or [])],
                }
                for m, processing in list_messages(
                    s, processing=args.processing, calibration=args.calibration
                )
            ]
    if args.json:
        print_json(rows)
        return 0
    if not rows:
        scope = " ".join(
            f"{what} {value}"
            for what, value in (("processing", args.processing), ("calibration", args.calibration))
            if value
        )
        print(f"no ticket messages{' for ' + scope if scope else ''}")
        return 0
    for r in rows:
        print(
            f"#{r['id']} [{r['processing']}] {r['calibration']}  {r['kind']}  {r['created_at']}  ({r['status']})"
        )
        for line in r["body"].splitlines():
            print(f"    {line}")
        if r["attachments"]:
            print(f"    attachments: {', '.join(r['attachments'])}")
        print()
    return 0
