"""``b2cal site create|add|update|list``: calibration centres, their batch backend, sign-off policy,
runner and submit host."""

from __future__ import annotations

import dataclasses
import json
import os
import stat
from pathlib import Path
from typing import Any

from b2cal_assets.cli import UserError
from b2cal_assets.cli.common import (
    add_db_argument,
    loop_service,
    number_type,
    parse_json,
    print_json,
    user_errors,
)
from b2cal_assets.cli.tables import print_table
from b2cal_assets.domain.processing import SignoffPolicy, SiteSpec
from b2cal_assets.domain.remote_sites import DEFAULT_REMOTE_PYTHON, RemoteHost
from b2cal_assets.domain.site_runner import DEFAULT_HEARTBEAT_S, FRAMEWORK_BACKENDS, RunnerKind
from b2cal_assets.loop import admin
from b2cal_assets.loop.records import SiteView

BACKENDS = ["local", "slurm", "htcondor", "lsf"]


def register(sub) -> None:
    p = sub.add_parser("site", help="create, update and list calibration centres (sites)")
    s = p.add_subparsers(dest="action", metavar="ACTION")
    s.required = True
    c = s.add_parser(
        "create", aliases=["add"], help="create a site (or set all of an existing one's settings)"
    )
    c.add_argument("name")
    c.add_argument("--backend", required=True, choices=BACKENDS)
    c.add_argument(
        "--storage-root", required=True, help="where the site's skims live (on its submit host if remote)"
    )
    c.add_argument("--path-prefix", default="", help="jobs read through this prefix, e.g. root://host:1094/")
    c.add_argument(
        "--backend-args", default="{}", metavar="JSON", help='e.g. {"partition": "calib", "memory": "4G"}'
    )
    c.add_argument("--signoff", choices=["automatic", "manual"], default="manual", help="sign-off policy")
    c.add_argument("--hold-until-deadline", action="store_true", help="start no job before the window closes")
    add_runner_arguments(c)
    _framework_arguments(c)
    _remote_arguments(c)
    add_db_argument(c)
    c.set_defaults(func=create)
    u = s.add_parser("update", help="change some settings of an existing site")
    u.add_argument("name")
    u.add_argument("--backend", choices=BACKENDS)
    u.add_argument("--storage-root")
    u.add_argument("--path-prefix")
    u.add_argument("--backend-args", metavar="JSON")
    u.add_argument("--signoff", choices=["automatic", "manual"])
    add_runner_arguments(u, default=None)
    _framework_arguments(u)
    _remote_arguments(u)
    u.add_argument(
        "--no-submit-host", action="store_true", help="run the scheduler commands on this machine again"
    )
    add_db_argument(u)
    u.set_defaults(func=update)
    ls = s.add_parser("list", help="list sites")
    ls.add_argument("--json", action="store_true")
    add_db_argument(ls)
    ls.set_defaults(func=list_)


def add_runner_arguments(parser, default: str | None = RunnerKind.B2CAL.value) -> None:
    """``--runner`` and ``--framework-setup``: a site's (and the demo site's) choice of runner;
    ``default=None`` for ``site update``, where a runner not given stays as it is."""
    parser.add_argument(
        "--runner",
        choices=[k.value for k in RunnerKind],
        default=default,
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


def _framework_arguments(p) -> None:
    p.add_argument(
        "--framework-backend",
        choices=list(FRAMEWORK_BACKENDS),
        help="with --runner framework: b2caf-prompt-run's backend inside the job (default: the site's "
        "backend; Local for slurm, which the framework has no backend for)",
    )
    p.add_argument(
        "--heartbeat",
        type=number_type(minimum=1, maximum=86_400, integer=True),
        help=f"with --runner framework: seconds between the framework's checks of its jobs (default {DEFAULT_HEARTBEAT_S})",
    )
    p.add_argument(
        "--framework-container",
        metavar="IMAGE",
        help="with --runner framework: run the one job as a container of IMAGE on the daemon's container "
        "engine instead of on the site's backend (README: Deploy, container jobs)",
    )


def _runner_text(site: SiteView) -> str:
    if site.runner != RunnerKind.FRAMEWORK:
        return site.runner
    args = site.runner_args
    setup = "; ".join(args.get("setup", [])) or "no setup"
    where = f", in container {args['container']}" if args.get("container") else ""
    return f"framework ({args.get('backend')}, heartbeat {args.get('heartbeat')} s, {setup}{where})"


def _runner_args(args, runner: str) -> dict[str, Any]:
    """The framework's settings from the command line; refused for b2cal's runner, which takes none."""
    given = {
        "setup": args.framework_setup or None,
        "backend": args.framework_backend,
        "heartbeat": args.heartbeat,
        "container": args.framework_container,
    }
    given = {k: v for k, v in given.items() if v is not None}
    if given and runner != RunnerKind.FRAMEWORK:
        flag = {
            "setup": "--framework-setup",
            "backend": "--framework-backend",
            "heartbeat": "--heartbeat",
            "container": "--framework-container",
        }
        raise UserError(f"{flag[next(iter(given))]} is a setting of the framework runner; add --runner framework")
    return given


def _remote_arguments(p) -> None:
    g = p.add_argument_group("remote site (scheduler commands over SSH)")
    g.add_argument("--submit-host", metavar="USER@HOST[:PORT]", help="run the scheduler's commands there")
    g.add_argument("--ssh-key", metavar="PATH", help="private key file (default: the ssh-agent's keys)")
    g.add_argument("--known-hosts", metavar="PATH", help="known_hosts file with the host's key (required)")
    g.add_argument("--remote-root", metavar="PATH", help="the site's directory on the submit host")
    g.add_argument(
        "--remote-python", metavar="CMD", help=f"Python on the submit host (default {DEFAULT_REMOTE_PYTHON})"
    )


def _backend_args(text: str) -> dict:
    value = parse_json(text, "--backend-args")
    if not isinstance(value, dict):
        raise UserError(f"--backend-args must be a JSON object, not {text!r}")
    return value


def _remote(args, current: RemoteHost | None = None) -> RemoteHost | None:
    """The submit host from the options (over ``current``'s settings); files are checked on this machine."""
    given = {
        "submit_host": args.submit_host,
        "ssh_key": args.ssh_key,
        "known_hosts": args.known_hosts,
        "remote_root": args.remote_root,
        "remote_python": args.remote_python,
    }
    given = {k: v for k, v in given.items() if v is not None}
    if not given:
        return current
    if current is None and not args.submit_host:
        raise UserError(
            f"--{next(iter(given)).replace('_', '-')} is for a remote site: give --submit-host too"
        )
    for option in ("known_hosts", "remote_root"):
        if current is None and option not in given:
            raise UserError(f"a remote site needs --{option.replace('_', '-')} too")
    for option in ("ssh_key", "known_hosts"):
        if given.get(option):
            given[option] = str(Path(given[option]).expanduser().absolute())
    base = dataclasses.asdict(current) if current is not None else {}
    with user_errors():
        remote = RemoteHost(**{**base, **given})
    _check_file(remote.known_hosts, "--known-hosts")
    if remote.ssh_key:
        _check_file(remote.ssh_key, "--ssh-key")
        if stat.S_IMODE(os.stat(remote.ssh_key).st_mode) & 0o077:
            raise UserError(
                f"--ssh-key: {remote.ssh_key} can be read by others, and ssh refuses such a key: chmod 600 it"
            )
    return remote


def _check_file(path: str, option: str) -> None:
    if not Path(path).is_file():
        raise UserError(f"{option}: {path} is not a file on this machine")
    if not os.access(path, os.R_OK):
        raise UserError(f"{option}: {path} cannot be read by this user")


def _check_storage_root(root: str, remote: RemoteHost | None) -> None:
    if remote is None and "://" not in root and not Path(root).is_dir():
        raise UserError(f"--storage-root: {root} is not an existing directory on this machine")
    if remote is not None and not root.startswith("/") and "://" not in root:
        raise UserError(f"--storage-root: {root} must be an absolute path on {remote.submit_host}")


def _save(args, spec_fields: dict) -> SiteSpec:
    if spec_fields.get("remote") and spec_fields.get("runner") == RunnerKind.FRAMEWORK:
        raise UserError(
            "--runner framework runs on this machine's batch system only for now: a remote site "
            "(--submit-host) uses the b2cal runner"
        )
    with user_errors():
        spec = SiteSpec(**spec_fields)
    loop_service(args, migrate=True)
    with user_errors():
        admin.ensure_site(spec, url=args.database_url)
    return spec


def _describe(spec: SiteSpec) -> str:
    where = f", submit host {spec.remote.submit_host}" if spec.remote else ""
    return f"site {spec.name}: backend {spec.backend}, sign-off {spec.signoff_policy}, runner {spec.runner}{where}"


def create(args) -> int:
    backend_args = _backend_args(args.backend_args)
    remote = _remote(args)
    _check_storage_root(args.storage_root, remote)
    runner_args = _runner_args(args, args.runner)
    spec = _save(
        args,
        {
            "name": args.name,
            "backend": args.backend,
            "backend_args": backend_args,
            "storage_root": args.storage_root,
            "path_prefix": args.path_prefix,
            "signoff_policy": SignoffPolicy(args.signoff),
            "hold_until_deadline": args.hold_until_deadline,
            "remote": remote,
            "runner": RunnerKind(args.runner),
            "runner_args": runner_args,
        },
    )
    print(_describe(spec))
    return 0


def update(args) -> int:
    loop_service(args, migrate=True)
    with user_errors():
        current = admin.site_spec(args.name, url=args.database_url)
    remote = None if args.no_submit_host else _remote(args, current.remote)
    if args.no_submit_host and args.submit_host:
        raise UserError("--no-submit-host and --submit-host contradict each other: give one")
    fields = dataclasses.asdict(current) | {"remote": remote}
    fields["signoff_policy"] = current.signoff_policy
    for option, key in (
        ("backend", "backend"),
        ("storage_root", "storage_root"),
        ("path_prefix", "path_prefix"),
    ):
        if getattr(args, option) is not None:
            fields[key] = getattr(args, option)
    if args.backend_args is not None:
        fields["backend_args"] = _backend_args(args.backend_args)
    if args.signoff is not None:
        fields["signoff_policy"] = SignoffPolicy(args.signoff)
    runner = args.runner or current.runner
    runner_args = _runner_args(args, runner)
    if args.runner is not None or runner_args:
        fields["runner"] = RunnerKind(runner)
        fields["runner_args"] = runner_args if runner == RunnerKind.FRAMEWORK else {}
    if args.storage_root is not None or remote != current.remote:
        _check_storage_root(fields["storage_root"], remote)
    spec = _save(args, fields)
    print(_describe(spec))
    return 0


def list_(args) -> int:
    loop_service(args)
    sites = admin.list_sites(args.database_url)
    if args.json:
        print_json({"sites": [x.columns() for x in sites]})
    else:
        print_table(
            [
                "site",
                "backend",
                "runner",
                "signoff",
                "hold",
                "storage root",
                "path prefix",
                "submit host",
                "remote root",
                "backend args",
            ],
            [
                [
                    x.name,
                    x.backend,
                    _runner_text(x),
                    x.signoff_policy,
                    "yes" if x.hold_until_deadline else "no",
                    x.storage_root,
                    x.path_prefix,
                    x.remote.submit_host if x.remote else "(this machine)",
                    x.remote.remote_root if x.remote else "",
                    json.dumps(x.backend_args),
                ]
                for x in sites
            ],
        )
    return 0
