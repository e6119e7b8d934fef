"""Run the served UI: a Dagster instance, the workspace of one Definitions module, uvicorn."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import uvicorn
from dagster import DagsterInstance

# Dagster's webserver app factory and workspace: an accepted internal API (no public one serves the UI)
from dagster._core.workspace.context import WorkspaceProcessContext
from dagster._core.workspace.load_target import ModuleTarget
from dagster_webserver.version import __version__

from b2cal_assets import home as b2cal_paths
from b2cal_assets.settings import settings
from b2cal_assets.web.app import build_app
from b2cal_assets.web.assignments import DbAssignedExpert, DbAudit
from b2cal_assets.web.config import AuthConfig
from b2cal_assets.web.login import LoginService, ldap_role_lookup
from b2cal_assets.web.session_store import DbSessionStore

DAGSTER_YAML = """\
# Written by b2cal: the served UI's Dagster instance (storage defaults to SQLite in this directory).
telemetry:
  enabled: false
nux:
  enabled: false
"""


def ensure_dagster_home() -> Path:
    """``$DAGSTER_HOME``, else ``$B2CAL_HOME/dagster`` (created with telemetry and the intro dialog off)."""
    home = b2cal_paths.dagster_home()
    os.environ["DAGSTER_HOME"] = str(home)  # the webserver's instance reads it
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists():
        config.write_text(DAGSTER_YAML)
    return home


@contextlib.contextmanager
def workspace_context(module: str, *, location_name: str = "b2cal") -> Iterator:
    """The webserver's workspace: the Definitions module served by a code server subprocess."""
    ensure_dagster_home()
    target = ModuleTarget(
        module_name=module, attribute=None, working_directory=os.getcwd(), location_name=location_name
    )
    with (
        DagsterInstance.get() as instance,
        WorkspaceProcessContext(instance, workspace_load_target=target, version=__version__) as context,
    ):
        yield context


def serve(*, module: str, host: str, port: int, auth: AuthConfig | None, log_level: str = "warning") -> None:
    """Serve until interrupted; ``auth=None`` serves without login."""
    with workspace_context(module) as context:
        if auth is None:
            app = build_app(context, login=None)
        else:
            audit = DbAudit()
            # sessions in the calibration database: logout and lost roles reach every worker
            store = DbSessionStore(refresh=ldap_role_lookup(auth))
            app = build_app(
                context,
                login=LoginService(auth, audit=audit, session_store=store),
                assigned_expert=DbAssignedExpert(),
                audit=audit,
            )
        uvicorn.Server(uvicorn_config(app, host=host, port=port, log_level=log_level)).run()


def uvicorn_config(app, *, host: str, port: int, log_level: str = "warning"):
    """Behind nginx, the client address (login limits) and https (Secure cookie) come from
    X-Forwarded-For / -Proto, believed only from the addresses in ``$B2CAL_TRUSTED_PROXIES``."""
    proxies = trusted_proxies()
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        proxy_headers=bool(proxies),
        forwarded_allow_ips=proxies or None,
    )


def trusted_proxies() -> str:
    """``$B2CAL_TRUSTED_PROXIES`` (comma-separated addresses or networks); empty trusts no proxy, not
    even one on loopback, so a local process cannot pose as another client."""
    return ",".join(p.strip() for p in settings().trusted_proxies.split(",") if p.strip())
