"""The Docker API the deploy tests use: Docker's own socket where there is one, else podman's
(``.ci/services/podman.sh``, started here, with the debootstrap base image it builds)."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

from b2cal_assets_tests.fixtures.home import skip_or_fail

REPO = Path(__file__).resolve().parents[2]
STATE = Path(os.environ.get("B2CAL_SERVICES_DIR", "/tmp/b2cal-services"))
LOCAL_BASE = "localhost/b2cal-base:bookworm"  # podman.sh's image (no registry reachable here)


def exports(script: str) -> dict[str, str]:
    """Run a `.ci/services` script and read the `export K=V` lines it prints."""
    done = subprocess.run(
        ["bash", str(REPO / ".ci/services" / script), str(STATE)], capture_output=True, text=True
    )
    if done.returncode != 0:
        skip_or_fail(f"{script} failed: {done.stderr.strip().splitlines()[-1:]}")
    return dict(re.findall(r"^export (\w+)=(.*)$", done.stdout, re.M))


def uses_podman(env: dict[str, str]) -> bool:
    """No engine named (DOCKER_HOST) and no Docker socket: podman is started."""
    return "DOCKER_HOST" not in env and not Path("/var/run/docker.sock").is_socket()


def engine_env() -> tuple[dict[str, str], str]:
    """This process's environment with DOCKER_HOST set, and a Debian bookworm image to run jobs in."""
    env = dict(os.environ)
    if uses_podman(env):
        env.update(exports("podman.sh"))
        return env, LOCAL_BASE
    return env, os.environ.get("B2CAL_DEBIAN_BASE_IMAGE", "debian:bookworm-slim")
