"""``b2cal site create|list``: calibration centres, their batch backend and sign-off policy."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from b2cal_assets.cli import UserError
from b2cal_assets.cli.common import add_db_argument, loop_service, number_type, print_json, user_errors
from b2cal_assets.cli.tables import print_table
from b2cal_assets.domain.processing import SignoffPolicy, SiteSpec
from b2cal_assets.domain.site_runner import DEFAULT_HEARTBEAT_S, FRAMEWORK_BACKENDS, RunnerKind
from b2cal_assets.loop import admin


def register(sub) -> None:
    p = sub.add_parser("site", help="create and list calibration centres (sites)")
    s = p.add_subparsers(dest="action", metavar="ACTION")
    s.required = True
    c = s.add_parser("create", aliases=["add", "update"], help="create or update a site")
    c.add_argument("name")
    c.add_argument("--backend", required=True, choices=["local", "slurm", "htcondor", "lsf"])
    c.add_argument("--storage-root", required=True, help="where the site's skims live")
    c.add_argument("--path-prefix", default="", help="jobs read through this prefix, e.g. root://host:1094/")
    c.add_argument(
        "--backend-args", default="{}", metavar="JSON", help='e.g. {"partition": "calib", "memory": "4G"}'
    )
    c.add_argument("--signoff", choices=["automatic", "manual"], default="manual", help="sign-off policy")
    c.add_argument("--hold-until-deadline", action="store_true", help="start no job before the window closes")
    add_runner_arguments(c)
    c.add_argument(
        "--framework-backend",
        choices=list(FRAMEWORK_BACKENDS),
        help="with --runner framework: b2caf-prompt-run's backend inside the job (default: the site's "
        "backend; Local for slurm, which the framework has no backend for)",
    )
    c.add_argument(
        "--heartbeat",
        type=number_type(minimum=1, maximum=86_400, integer=True),
        help=f"with --runner framework: seconds between the framework's checks of its jobs (default {DEFAULT_HEARTBEAT_S})",
    )
    add_db_argument(c)
    c.set_defaults(func=create)
    ls = s.add_parser("list", help="list sites")
    ls.add_argument("--json", action="store_true")
    add_db_argument(ls)
    ls.set_defaults(func=list_)


def add_runner_arguments(parser) -> None:
    """``--runner`` and ``--framework-setup``: a site's (and the demo site's) choice of runner."""
    parser.add_argument(
        "--runner",
        choices=[k.value for k in RunnerKind],
        default=RunnerKind.B2CAL.value,
        help="who runs an attempt: b2cal's own runner (default), or ONE job running the framework's "
        "b2caf-prompt-run (its CAF submits the collectors)",
    )
    parser.add_argument(
        "--framework-setup",
        action="append",
        default=[],
        metavar="CMD",
        help="with --runner framework: a shell command that sets up the framework in the job, e.g. "
        "'source /cvmfs/belle.cern.ch/tools/b2setup release-08-01-00' (repeatable, run in order)",
    )


def create(args) -> int:
    try:
        backend_args = json.loads(args.backend_args)
    except json.JSONDecodeError as exc:
        raise UserError(f"--backend-args is not valid JSON ({exc.msg}): {args.backend_args!r}") from None
    if "://" not in args.storage_root and not Path(args.storage_root).is_dir():
        raise UserError(f"--storage-root: {args.storage_root} is not an existing directory on this machine")
    runner_args = _runner_args(args)
    loop_service(args, migrate=True)
    with user_errors():
        admin.ensure_site(
            SiteSpec(
                name=args.name,
                backend=args.backend,
                backend_args=backend_args,
                storage_root=args.storage_root,
                path_prefix=args.path_prefix,
                signoff_policy=SignoffPolicy(args.signoff),
                hold_until_deadline=args.hold_until_deadline,
                runner=RunnerKind(args.runner),
                runner_args=runner_args,
            ),
            url=args.database_url,
        )
    print(f"site {args.name}: backend {args.backend}, sign-off {args.signoff}, runner {args.runner}")
    return 0


def _runner_text(site: dict[str, Any]) -> str:
    if site["runner"] != RunnerKind.FRAMEWORK:
        return site["runner"]
    args = site["runner_args"]
    setup = "; ".join(args.get("setup", [])) or "no setup"
    return f"framework ({args.get('backend')}, heartbeat {args.get('heartbeat')} s, {setup})"


def _runner_args(args) -> dict[str, Any]:
    """The framework's settings from the command line; refused for b2cal's runner, which takes none."""
    given = {
        "setup": args.framework_setup or None,
        "backend": args.framework_backend,
        "heartbeat": args.heartbeat,
    }
    given = {k: v for k, v in given.items() if v is not None}
    if given and args.runner != RunnerKind.FRAMEWORK:
        flag = {"setup": "--framework-setup", "backend": "--framework-backend", "heartbeat": "--heartbeat"}
        raise UserError(f"{flag[next(iter(given))]} is a setting of the framework runner; add --runner framework")
    return given


def list_(args) -> int:
    loop_service(args)
    sites = admin.list_sites(args.database_url)
    if args.json:
        print_json({"sites": sites})
    else:
        print_table(
            ["site", "backend", "runner", "signoff", "hold", "storage root", "path prefix", "backend args"],
            [
                [
                    x["name"],
                    x["backend"],
                    _runner_text(x),
                    x["signoff_policy"],
                    "yes" if x["hold_until_deadline"] else "no",
                    x["storage_root"],
                    x["path_prefix"],
                    json.dumps(x["backend_args"]),
                ]
                for x in sites
            ],
        )
    return 0
