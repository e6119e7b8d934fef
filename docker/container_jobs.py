"""The daemon's entry point with docker/compose.container-jobs.yaml: run containers get the engine's socket.

The framework runner's one job of a site with ``runner_args.container`` is started by the run that runs
the attempt, in a container of its own on the host's engine (``b2cal_assets/backends/container.py``).
So each run container needs what the daemon has: the socket, its group, and where the job containers
find the data. Dagster's instance file takes no variables in ``container_kwargs``; this writes the
image's ``dagster.yaml`` with those added into ``$DAGSTER_HOME`` (the daemon's own, writable) and then
runs the command it was given:

    python /opt/b2cal/docker/container_jobs.py dagster-daemon run -w /opt/b2cal/docker/workspace.yaml
"""

from __future__ import annotations

import copy
import os
import sys
from pathlib import Path
from typing import Any

import yaml

SOCKET = "/var/run/docker.sock"
BASE = Path("/opt/dagster/home/dagster.yaml")  # the image's instance file (docker/dagster.yaml)
PASSED = ("B2CAL_JOB_CONTAINER_MOUNTS", "B2CAL_JOB_CONTAINER_NETWORK")


def with_container_jobs(
    instance: dict[str, Any], socket_gid: str, host_socket: str = SOCKET
) -> dict[str, Any]:
    """``instance`` whose DockerRunLauncher mounts the socket into each run, with the socket's group.

    ``host_socket`` is the socket's path on the host (``DOCKER_SOCKET``): the engine resolves a run
    container's mounts there, not in the daemon's container.
    """
    out = copy.deepcopy(instance)
    config = out["run_launcher"]["config"]
    kwargs = config.setdefault("container_kwargs", {})
    volumes = kwargs.setdefault("volumes", [])
    if not any(v.split(":")[1] == SOCKET for v in volumes if ":" in v):
        volumes.append(f"{host_socket}:{SOCKET}")
    kwargs["group_add"] = [str(socket_gid)]
    env_vars = config.setdefault("env_vars", [])
    env_vars.extend(v for v in PASSED if v not in env_vars)
    return out


def _refuse(message: str) -> None:
    print(f"container_jobs.py: {message}", file=sys.stderr)
    sys.exit(2)


def main(argv: list[str]) -> None:
    if not argv:
        _refuse("give the command to run, e.g. dagster-daemon run -w workspace.yaml")
    gid = os.environ.get("DOCKER_GID", "")
    if not gid.isdigit():
        _refuse(f"DOCKER_GID must be the socket's group id (stat -c %g), got {gid!r}")
    home = Path(os.environ["DAGSTER_HOME"])
    home.mkdir(parents=True, exist_ok=True)
    instance = yaml.safe_load(BASE.read_text())
    host_socket = os.environ.get("DOCKER_SOCKET") or SOCKET
    changed = with_container_jobs(instance, gid, host_socket)
    (home / "dagster.yaml").write_text(yaml.safe_dump(changed, sort_keys=False))
    os.execvp(argv[0], argv)


if __name__ == "__main__":
    main(sys.argv[1:])
