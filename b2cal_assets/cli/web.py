"""``b2cal web``: serve the Dagster UI behind the LDAP login (or, on a laptop, ``--no-auth``)."""

from __future__ import annotations

import argparse
import importlib.util
import sys

from b2cal_assets.cli import UserError
from b2cal_assets.cli.common import number_type
from b2cal_assets.web.config import ConfigError, load_auth_config
from b2cal_assets.web.hosts import loopback_host

NO_AUTH_BANNER = """\
+----------------------------------------------------------------------------+
|  WARNING: b2cal web --no-auth: LOGIN IS OFF.                               |
|  Anyone who can reach http://{address:<45} |
|  can launch, change and delete everything. Use this on a laptop only.      |
+----------------------------------------------------------------------------+"""


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "web",
        help="serve the Dagster UI behind the LDAP login",
        description="Serve the Dagster UI. Login through LDAP is required unless --no-auth is given; "
        "configure it with --config FILE (YAML or TOML) and/or B2CAL_LDAP_* variables; "
        "B2CAL_SECRET_KEY and B2CAL_LDAP_BIND_PASSWORD come from the environment only.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument(
        "--port",
        type=number_type(minimum=1, maximum=65535, integer=True),
        default=3000,
        help="port to listen on (default 3000)",
    )
    parser.add_argument("--config", metavar="FILE", help="login configuration file (.yaml/.yml or .toml)")
    parser.add_argument(
        "-m",
        "--module",
        default="b2cal_assets.definitions",
        help="Python module holding the Dagster Definitions (default b2cal_assets.definitions)",
    )
    parser.add_argument("--no-auth", action="store_true", help="serve WITHOUT login (a laptop only)")
    parser.add_argument(
        "--log-level", default="warning", choices=["critical", "error", "warning", "info", "debug"]
    )
    parser.set_defaults(func=run)


def _check_module(module: str) -> None:
    try:
        found = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        found = None
    if found is None:
        raise UserError(
            f"Definitions module {module!r} not found: pass -m/--module with an importable module name"
        )


def run(args: argparse.Namespace) -> int:
    if not 0 < args.port < 65536:
        raise UserError(f"--port {args.port} is not a TCP port: use 1-65535")
    if args.no_auth and args.config:
        raise UserError("--no-auth and --config contradict each other: drop one")
    _check_module(args.module)
    if args.no_auth and not loopback_host(args.host):
        raise UserError(
            f"--no-auth serves only this machine: --host {args.host} is not a loopback address "
            "(use 127.0.0.1, or configure the LDAP login)"
        )
    auth = None
    if not args.no_auth:
        try:
            auth = load_auth_config(args.config)
        except ConfigError as exc:
            raise UserError(str(exc)) from None
    address = f"{args.host}:{args.port}"
    if auth is None:
        print(NO_AUTH_BANNER.format(address=address), file=sys.stderr, flush=True)
    else:
        print(
            f"b2cal web: serving http://{address} (LDAP login via {auth.ldap.url})",
            file=sys.stderr,
            flush=True,
        )
    # deferred: the webserver and Dagster take seconds to import, and only this command serves them
    from b2cal_assets.web.serve import serve

    serve(module=args.module, host=args.host, port=args.port, auth=auth, log_level=args.log_level)
    return 0
