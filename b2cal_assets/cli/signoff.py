"""``b2cal signoff``: accept or reject a calibration's payloads in a processing."""

from __future__ import annotations

from b2cal_assets.cli import UserError
from b2cal_assets.cli.common import add_db_argument, add_dir_argument, loop_service, user_errors
from b2cal_assets.cli.identity import acting, add_as_argument, require_calibration_authority


def register(sub) -> None:
    p = sub.add_parser("signoff", help="accept or reject a calibration's latest payloads")
    p.add_argument("processing")
    p.add_argument("calibration")
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--accept", action="store_true", help="dependents may start")
    g.add_argument("--reject", action="store_true", help="dependents stay stopped")
    p.add_argument("--comment", default="", help="why; it goes to the ticket and the audit log")
    add_as_argument(p)
    add_db_argument(p)
    add_dir_argument(p)
    p.set_defaults(func=run)


def run(args) -> int:
    service = loop_service(args)
    if args.calibration not in service.steps:
        raise UserError(
            f"no calibration {args.calibration!r}; known: {', '.join(sorted(service.scripts.calibrations))}"
        )
    actor = acting(args)
    require_calibration_authority(service, actor, args.processing, args.calibration, "sign off")
    with user_errors():
        state = service.sign_off(
            args.processing,
            args.calibration,
            decision="accept" if args.accept else "reject",
            by=actor.name,
            comment=args.comment,
            automatic=False,
        )
    print(f"{args.calibration} in {args.processing}: {state}")
    return 0
