"""``b2cal payloads list|download``: a calibration's payloads in a processing."""

from __future__ import annotations

from pathlib import Path

from b2cal_assets.cli import UserError
from b2cal_assets.cli.common import add_db_argument, add_dir_argument, loop_service, print_json, user_errors
from b2cal_assets.cli.tables import print_table


def register(sub) -> None:
    p = sub.add_parser("payloads", help="list or download payloads")
    s = p.add_subparsers(dest="action", metavar="ACTION")
    s.required = True
    ls = s.add_parser("list", help="the current payloads of a processing (or one calibration)")
    ls.add_argument("processing")
    ls.add_argument("calibration", nargs="?")
    ls.add_argument("--json", action="store_true")
    add_db_argument(ls)
    add_dir_argument(ls)
    ls.set_defaults(func=list_)
    dl = s.add_parser("download", help="the calibration's outputdb as a .tar.gz")
    dl.add_argument("processing")
    dl.add_argument("calibration")
    dl.add_argument("-o", "--output", default=None, help="archive path (default: ./<processing>_<calibration>.tar.gz)")
    add_db_argument(dl)
    add_dir_argument(dl)
    dl.set_defaults(func=download)


def _rows(service, processing: str, calibration: str | None):
    names = [calibration] if calibration else [n for n in service.order if n in service.scripts.calibrations]
    for name in names:
        if name not in service.scripts.calibrations:
            raise UserError(f"no calibration {name!r}; known: {', '.join(sorted(service.scripts.calibrations))}")
        for p in service.current_payloads(processing, name):
            yield name, p


def list_(args) -> int:
    service = loop_service(args)
    with user_errors():
        service.processing_iov(args.processing)
        rows = list(_rows(service, args.processing, args.calibration))
    if args.json:
        print_json({"payloads": [{"calibration": c, **p, "iov": list(p["iov"])} for c, p in rows]})
        return 0
    print_table(
        ["calibration", "payload", "revision", "iov", "md5", "source", "file"],
        [[c, p["name"], str(p["revision"]), str(p["iov"]), p["checksum"], p["source"], p["file"]] for c, p in rows],
    )
    return 0


def download(args) -> int:
    from b2cal_assets.payloads.archive import make_archive

    service = loop_service(args)
    with user_errors():
        service.processing_iov(args.processing)
        rows = list(_rows(service, args.processing, args.calibration))
    if not rows:
        raise UserError(f"{args.calibration} has no payloads in {args.processing} yet")
    outputdb = Path(rows[0][1]["file"]).parent
    target = Path(args.output or f"{args.processing}_{args.calibration}.tar.gz")
    path = make_archive(outputdb, target)
    print(f"{len(rows)} payloads of {args.calibration} in {args.processing} written to {path}")
    return 0
