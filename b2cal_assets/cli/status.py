"""``b2cal status``: one view of every processing, calibration and job."""

from __future__ import annotations

from b2cal_assets.cli.common import add_db_argument, add_dir_argument, loop_service, print_json
from b2cal_assets.cli.tables import print_table


def register(sub) -> None:
    p = sub.add_parser("status", help="every processing, calibration and job at a glance")
    p.add_argument("--processing", default=None, help="only this processing")
    p.add_argument("--json", action="store_true")
    add_db_argument(p)
    add_dir_argument(p)
    p.set_defaults(func=run)


def run(args) -> int:
    service = loop_service(args)
    names = [args.processing] if args.processing else service.all_processing_names()
    everything = {name: service.status_rows(name) for name in names}
    if args.json:
        print_json({name: [r.__dict__ for r in rows] for name, rows in everything.items()})
        return 0
    table = [
        [
            r.processing,
            r.step,
            r.state,
            r.expert,
            str(r.attempts or ""),
            str(r.payloads or ""),
            (f"blocked by rejected {r.blocked_by}" if r.blocked_by else r.error.splitlines()[0][:70] if r.error else ""),
        ]
        for rows in everything.values()
        for r in rows
    ]
    print_table(["processing", "step", "state", "expert", "attempt", "payloads", "note"], table)
    return 0
