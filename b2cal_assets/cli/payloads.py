"""``b2cal payloads list|download|upload|staging``: a calibration's payloads, their replacement, the staging tag."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

from b2cal_assets.cli import UserError
from b2cal_assets.cli.common import (
    add_db_argument,
    add_dir_argument,
    current_user,
    loop_service,
    number_type,
    print_json,
    user_errors,
)
from b2cal_assets.cli.identity import acting, add_as_argument, require_calibration_authority, require_manager
from b2cal_assets.cli.tables import print_table
from b2cal_assets.conditions.condb_client import client_from_settings
from b2cal_assets.loop.staging import show_staging
from b2cal_assets.payloads.archive import current_payloads_archive


def register(sub) -> None:
    p = sub.add_parser("payloads", help="list, download or upload payloads; the staging tag of a processing")
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
    dl.add_argument(
        "-o", "--output", default=None, help="archive path (default: ./<processing>_<calibration>.tar.gz)"
    )
    add_db_argument(dl)
    add_dir_argument(dl)
    dl.set_defaults(func=download)
    up = s.add_parser(
        "upload",
        help="replace a calibration's payloads by an archive (database.txt + dbstore_*.root); checked first",
        description="The archive is checked (layout, database.txt, payload names, IoVs, ROOT files, size) and "
        "becomes a new revision; the old one is kept, the checks run again. A bad upload changes nothing.",
    )
    up.add_argument("processing")
    up.add_argument("calibration")
    up.add_argument("archive", help="a .tar.gz or .zip, e.g. an edited 'b2cal payloads download'")
    add_as_argument(up)
    up.add_argument(
        "--max-bytes",
        type=number_type(minimum=1, integer=True),
        default=None,
        help="size limit (default: $B2CAL_UPLOAD_MAX_BYTES or 512 MiB)",
    )
    add_db_argument(up)
    add_dir_argument(up)
    up.set_defaults(func=upload)
    st = s.add_parser(
        "staging",
        help="the staging global tag of a processing (built when it finishes) and its problems",
    )
    st.add_argument("processing")
    st.add_argument("--build", action="store_true", help="build and export it again now")
    st.add_argument(
        "--upload",
        action="store_true",
        help="upload (or resume uploading) it to the conditions database ($B2CAL_CONDB_URL) now",
    )
    add_as_argument(st)
    st.add_argument("--json", action="store_true")
    add_db_argument(st)
    add_dir_argument(st)
    st.set_defaults(func=staging)


def _rows(service, processing: str, calibration: str | None):
    names = [calibration] if calibration else [n for n in service.order if n in service.scripts.calibrations]
    for name in names:
        if name not in service.scripts.calibrations:
            raise UserError(
                f"no calibration {name!r}; known: {', '.join(sorted(service.scripts.calibrations))}"
            )
        for p in service.current_payloads(processing, name):
            yield name, p


def list_(args) -> int:
    service = loop_service(args)
    with user_errors():
        service.processing_iov(args.processing)
        rows = list(_rows(service, args.processing, args.calibration))
    if args.json:
        print_json({"payloads": [{"calibration": c, **asdict(p), "iov": list(p.iov)} for c, p in rows]})
        return 0
    print_table(
        ["calibration", "payload", "revision", "iov", "md5", "source", "file"],
        [[c, p.name, str(p.revision), str(p.iov), p.checksum, p.source, p.file] for c, p in rows],
    )
    return 0


def download(args) -> int:
    service = loop_service(args)
    with user_errors():
        service.processing_iov(args.processing)
        rows = list(_rows(service, args.processing, args.calibration))
    if not rows:
        raise UserError(f"{args.calibration} has no payloads in {args.processing} yet")
    target = Path(args.output or f"{args.processing}_{args.calibration}.tar.gz")
    path = current_payloads_archive([p for _c, p in rows], target)
    print(f"{len(rows)} payloads of {args.calibration} in {args.processing} written to {path}")
    return 0


def upload(args) -> int:
    service = loop_service(args)
    archive = Path(args.archive)
    if not archive.is_file():
        raise UserError(f"no archive at {archive}; give the path of a .tar.gz or .zip file")
    actor = acting(args)
    require_calibration_authority(service, actor, args.processing, args.calibration, "upload payloads of")
    with user_errors():
        result = service.upload_payloads(
            args.processing, args.calibration, archive, by=actor.name, max_bytes=args.max_bytes
        )
    print(
        f"{args.calibration} in {args.processing}: upload stored as attempt {result.attempt} in {result.directory}"
    )
    for p in result.payloads:
        print(f"  {p.name} revision {p.revision} {p.iov}")
    if result.replaced:
        print(f"  kept as earlier revisions: {', '.join(result.replaced)}")
    print("  the payload checks run again at the next loop tick; sign-off follows the site's policy")
    if result.dependents_done:
        print(
            f"  note: {', '.join(result.dependents_done)} already used the previous payloads; "
            "a manager can restart them (b2cal manage restart)"
        )
    return 0


def staging(args) -> int:
    service = loop_service(args)
    with user_errors():
        service.processing_iov(args.processing)
        result = (
            service.export_staging(args.processing, by=current_user(args))
            if args.build
            else show_staging(args.processing)
        )
        uploaded = _condb_upload(service, args) if args.upload else service.condb_upload(args.processing)
    if args.json:
        print_json(
            {
                "processing": result.processing,
                "tag": result.tag,
                "directory": str(result.directory) if result.directory else None,
                "entries": [{**asdict(e), "iov": list(e.iov)} for e in result.entries],
                "problems": result.problems,
                "condb": condb_json(uploaded),
            }
        )
        return 0
    if result.directory is not None or result.problems or uploaded is None:
        _print_local_staging(args, result)
    if uploaded is not None:
        print_condb_upload(uploaded)
    return 1 if args.upload and uploaded is not None and not uploaded.ok else 0


def _condb_upload(service, args):
    """A manager's upload now (the sensor's work, done at once): it writes to the conditions database."""
    actor = acting(args)
    require_manager(actor, "uploading a staging tag to the conditions database")
    client = client_from_settings()
    if client is None:
        raise UserError("no conditions database configured: set B2CAL_CONDB_URL (and B2CAL_CONDB_TOKEN)")
    with client:
        return service.upload_condb(args.processing, client, by=actor.name)


def condb_json(uploaded) -> dict | None:
    if uploaded is None:
        return None
    return {
        "tag": uploaded.tag,
        "outcome": uploaded.outcome,
        "tag_state": uploaded.tag_state,
        "error": uploaded.error,
        "problems": uploaded.problems,
        "rows": [{**asdict(r), "iov": list(r.iov)} for r in uploaded.rows],
    }


def print_condb_upload(uploaded) -> None:
    """What is in the conditions database's staging tag, one row per payload IoV."""
    print(f"conditions database: {uploaded.describe()}")
    if uploaded.rows:
        print_table(
            ["payload", "revision", "iov", "calibration", "state", "condb payload", "condb revision", "condb iov"],
            [
                [
                    r.name,
                    str(r.revision),
                    str(r.iov),
                    r.calibration,
                    r.state,
                    "" if r.payload_id is None else str(r.payload_id),
                    "" if r.condb_revision is None else str(r.condb_revision),
                    "" if r.iov_id is None else str(r.iov_id),
                ]
                for r in uploaded.rows
            ],
        )
    for r in uploaded.rows:
        if r.error:
            print(f"  - {r.error}")


def _print_local_staging(args, result) -> None:
    if result.directory is None and not result.problems:
        print(
            f"no staging tag for {args.processing} yet: it is built when every calibration is signed off or excluded"
        )
        return
    if result.directory is not None:
        print(f"staging tag {result.tag}: {result.directory}")
        print_table(
            ["payload", "revision", "iov", "md5", "file"],
            [
                [e.name, str(e.revision), ",".join(map(str, e.iov)), e.checksum, e.file]
                for e in result.entries
            ],
        )
    if result.problems:
        print(f"the latest build of {result.tag} was not exported:")
        for problem in result.problems:
            print(f"  - {problem}")
