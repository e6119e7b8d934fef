"""``b2cal manage``: the managers' actions (exclude, include, reassign, restart)."""

from __future__ import annotations

from b2cal_assets.cli.common import add_db_argument, add_dir_argument, loop_service, user_errors
from b2cal_assets.cli.identity import acting, add_as_argument, directory_lookup, require_manager


def register(sub) -> None:
    p = sub.add_parser("manage", help="managers: exclude, include, reassign, restart calibrations")
    s = p.add_subparsers(dest="action", metavar="ACTION")
    s.required = True
    for name, helptext in (
        ("exclude", "leave a calibration out of a processing (dependents use the global-tag payloads)"),
        ("include", "take an excluded calibration back into a processing"),
        ("restart", "run a failed calibration again with the same settings (a new attempt; old logs kept)"),
        ("reassign", "give a calibration in a processing to another expert (the ticket follows)"),
    ):
        a = s.add_parser(name, help=helptext)
        a.add_argument("processing")
        a.add_argument("calibration")
        if name == "reassign":
            a.add_argument("expert", help="the new expert's user name")
        if name == "exclude":
            a.add_argument("--reason", default="", help="why (kept in the audit log)")
        add_as_argument(a)
        add_db_argument(a)
        add_dir_argument(a)
        a.set_defaults(func=run)


def run(args) -> int:
    service = loop_service(args)
    actor = acting(args)
    require_manager(actor, f"b2cal manage {args.action}")
    by = actor.name
    with user_errors():
        if args.action == "exclude":
            service.exclude(args.processing, args.calibration, by=by, reason=args.reason)
            print(
                f"{args.calibration} excluded from {args.processing}; its dependents use the global-tag payloads"
            )
        elif args.action == "include":
            service.include(args.processing, args.calibration, by=by)
            print(f"{args.calibration} included in {args.processing} again")
        elif args.action == "restart":
            number = service.restart(args.processing, args.calibration, by=by)
            print(f"{args.calibration} in {args.processing}: attempt {number} starts at the next sensor tick")
        elif args.action == "reassign":
            find_user = directory_lookup()
            service.reassign(args.processing, args.calibration, expert=args.expert, by=by, find_user=find_user)
            note = "" if find_user else " (no directory configured, B2CAL_LDAP_URL: the name was not checked)"
            print(f"{args.calibration} in {args.processing} reassigned to {args.expert}{note}")
    return 0
