"""``b2cal processing create|list|show``: requests to calibrate a bucket of runs."""

from __future__ import annotations

import sys
from typing import Any

from b2cal_assets.cli import UserError
from b2cal_assets.cli.common import (
    add_db_argument,
    add_dir_argument,
    current_user,
    loop_service,
    parse_number,
    print_json,
    user_errors,
)
from b2cal_assets.cli.identity import add_as_argument
from b2cal_assets.cli.tables import print_table
from b2cal_assets.domain.iov import IoV
from b2cal_assets.domain.processing import MAX_WINDOW_HOURS, ProcessingKind, ProcessingSpec
from b2cal_assets.domain.states import DONE_STATES
from b2cal_assets.loop import admin


def register(sub) -> None:
    p = sub.add_parser("processing", help="create, list and show processings")
    s = p.add_subparsers(dest="action", metavar="ACTION")
    s.required = True

    c = s.add_parser("create", help="register a processing (its partition appears at the next sensor tick)")
    c.add_argument("name", help="processing name (letters, digits, _ . -; at most 64 characters)")
    c.add_argument("--iov", required=True, help="exp_low,run_low,exp_high,run_high (e.g. 26,1,26,1200)")
    c.add_argument("--site", required=True, help="calibration centre (see `b2cal site list`)")
    c.add_argument("--kind", default="prompt", choices=["prompt", "reprocessing"])
    c.add_argument("--global-tag", action="append", default=[], help="global tag of the chain (repeatable)")
    c.add_argument("--window-hours", default="48", help="submission window in hours (default 48)")
    c.add_argument(
        "--allow-overlap",
        action="store_true",
        help="allow an IoV overlapping another processing (its runs are then calibrated twice)",
    )
    add_as_argument(c)
    add_db_argument(c)
    c.set_defaults(func=create)

    cancel = s.add_parser("cancel", help="close a processing: the loop launches nothing more for it")
    cancel.add_argument("name")
    cancel.add_argument("--reason", default="", help="why (kept in the audit log)")
    add_as_argument(cancel)
    add_db_argument(cancel)
    cancel.set_defaults(func=cancel_)

    ls = s.add_parser("list", help="list processings")
    ls.add_argument("--json", action="store_true")
    add_db_argument(ls)
    add_dir_argument(ls)
    ls.set_defaults(func=list_)

    sh = s.add_parser("show", help="show a processing's calibrations")
    sh.add_argument("name")
    sh.add_argument("--json", action="store_true")
    add_db_argument(sh)
    add_dir_argument(sh)
    sh.set_defaults(func=show)


def create(args) -> int:
    try:
        iov = IoV.parse(args.iov)
    except ValueError as exc:
        raise UserError(f"--iov: {exc}") from None
    window_hours = parse_number(args.window_hours, "--window-hours", maximum=MAX_WINDOW_HOURS)
    loop_service(args)
    with user_errors():
        warnings = admin.create_processing(
            ProcessingSpec(
                name=args.name,
                kind=ProcessingKind(args.kind),
                site=args.site,
                iov=iov,
                global_tags=tuple(args.global_tag),
                window_hours=window_hours,
            ),
            created_by=current_user(args),
            url=args.database_url,
            allow_overlap=args.allow_overlap,
        )
    print(f"processing {args.name} created for IoV {iov} at {args.site}")
    for warning in warnings:
        print(f"b2cal: warning: {warning}", file=sys.stderr)
    return 0


def cancel_(args) -> int:
    loop_service(args)
    with user_errors():
        was = admin.cancel_processing(args.name, by=current_user(args), reason=args.reason, url=args.database_url)
    print(
        f"processing {args.name} cancelled (was {was}): the loop launches nothing more for it; "
        "runs already going finish on their own"
    )
    return 0


def list_(args) -> int:
    service = loop_service(args)
    rows: list[dict[str, Any]] = []
    for name in service.all_processing_names():
        states = service.step_states(name)
        done = sum(s in DONE_STATES for s in states.values())
        rows.append(
            {"name": name, "iov": str(service.processing_iov(name)), "done": done, "steps": len(states)}
        )
    if args.json:
        print_json({"processings": rows})
    else:
        print_table(
            ["processing", "iov", "done"], [[r["name"], r["iov"], f"{r['done']}/{r['steps']}"] for r in rows]
        )
    return 0


def show(args) -> int:
    service = loop_service(args)
    with user_errors():
        service.processing_iov(args.name)
        rows = service.status_rows(args.name)
    if args.json:
        print_json({"processing": args.name, "steps": [r.__dict__ for r in rows]})
        return 0
    print(
        f"processing {args.name}  IoV {service.processing_iov(args.name)}  site {service.site_of(args.name).name}"
    )
    print_table(
        ["step", "stage", "state", "expert", "attempt", "iterations", "payloads", "deadline", "note"],
        [
            [
                r.step,
                r.stage,
                r.state,
                r.expert,
                str(r.attempts or ""),
                str(r.iterations or ""),
                str(r.payloads or ""),
                r.deadline.strftime("%Y-%m-%d %H:%M") if r.deadline else "",
                (
                    f"blocked by rejected {r.blocked_by}"
                    if r.blocked_by
                    else r.error.splitlines()[0][:80]
                    if r.error
                    else ""
                ),
            ]
            for r in rows
        ],
    )
    return 0
