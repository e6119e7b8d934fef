"""Preparing a Dagster home and running the daemon for headless use (``b2cal demo``) and tests."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO_DAGSTER_YAML = Path(__file__).resolve().parents[2] / "dagster.yaml"

# The repo's dagster.yaml, for an installed package without the repo (kept equal by a test).
DEFAULT_INSTANCE_YAML = """\
# The embedded default Dagster instance, as written by b2cal (no repo dagster.yaml found).
telemetry:
  enabled: false
nux:
  enabled: false
run_coordinator:
  module: dagster._core.run_coordinator.queued_run_coordinator
  class: QueuedRunCoordinator
  config:
    max_concurrent_runs: 4
    dequeue_interval_seconds: 1
run_launcher:
  module: b2cal_assets.defs.launcher
  class: LocalRunLauncher
run_monitoring:
  enabled: true
  start_timeout_seconds: 300
  cancel_timeout_seconds: 180
  poll_interval_seconds: 15
  max_runtime_seconds: 0
sensors:
  use_threads: true
  num_workers: 4
code_servers:
  local_startup_timeout: 360
  reload_timeout: 360
run_retries:
  enabled: false
"""
WRITTEN_BY_B2CAL = "# The embedded default Dagster instance"


def default_instance_yaml() -> str:
    return REPO_DAGSTER_YAML.read_text() if REPO_DAGSTER_YAML.exists() else DEFAULT_INSTANCE_YAML


def prepare_dagster_home(dagster_home: Path, instance_yaml: str | None = None) -> Path:
    """Create ``dagster_home`` with an instance config unless it has one already, and its storage.

    A config that b2cal wrote earlier (it starts with the default's first line) is brought up to date,
    so an existing home gets run monitoring too; one an operator wrote is left alone.
    The storage is created here, once: a daemon and another process creating a fresh SQLite storage at
    the same moment can find each other's half-made schema.
    """
    dagster_home.mkdir(parents=True, exist_ok=True)
    target = dagster_home / "dagster.yaml"
    if instance_yaml is not None:
        target.write_text(instance_yaml)
    elif not target.exists() or _written_by_b2cal(target):
        default = default_instance_yaml()
        if not target.exists() or target.read_text() != default:
            target.write_text(default)
    import dagster as dg  # deferred: 0.7 s to import, and `b2cal demo` needs it only here and in wait_for_runs

    dg.DagsterInstance.from_config(str(dagster_home)).dispose()
    return target


def _written_by_b2cal(path: Path) -> bool:
    try:
        first = path.read_text().splitlines()[:1]
    except OSError:
        return False
    return bool(first) and first[0].startswith(WRITTEN_BY_B2CAL)


LOCATION_NAME = "b2cal"  # the code location's name, the same for `b2cal web` (web/serve.py) and compose


def daemon_command(module: str = "b2cal_assets.definitions", workspace: Path | None = None) -> list[str]:
    """The daemon's command line; with ``workspace`` it loads ``module`` as the location ``b2cal``, so runs
    launched from ``b2cal web`` (location ``b2cal``) start under it too."""
    exe = Path(sys.executable).with_name("dagster-daemon")
    command = [str(exe) if exe.exists() else "dagster-daemon", "run"]
    if workspace is None:
        return [*command, "-m", module]
    workspace.parent.mkdir(parents=True, exist_ok=True)
    workspace.write_text(
        "load_from:\n"
        "  - python_module:\n"
        f"      module_name: {module}\n"
        f"      location_name: {LOCATION_NAME}\n"
        f"      working_directory: {os.getcwd()}\n"
    )
    return [*command, "-w", str(workspace)]


# Dagster waits 60 s for a gRPC answer of the code server (a sensor tick, a run launch); on a loaded
# 2-core machine that failed launches ("User code server request timed out"). An operator's own value wins.
GRPC_TIMEOUTS = {
    "DAGSTER_GRPC_TIMEOUT_SECONDS": "180",
    "DAGSTER_SENSOR_GRPC_TIMEOUT_SECONDS": "180",
    "DAGSTER_SCHEDULE_GRPC_TIMEOUT_SECONDS": "180",
}


def dagster_env(env: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for a Dagster process (daemon, webserver): ours, ``env`` on top, and gRPC
    timeouts that suit a loaded machine unless they are set already."""
    return {**GRPC_TIMEOUTS, **os.environ, **(env or {})}


def start_daemon(
    env: dict[str, str], log_file: Path, module: str = "b2cal_assets.definitions"
) -> subprocess.Popen:
    """The real Dagster daemon: sensors tick, queued runs start, as in production."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with open(log_file, "ab") as out:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(
            daemon_command(module, log_file.parent / "daemon-workspace.yaml"),
            env=dagster_env(env),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def _session_members(session_id: int) -> list[int]:
    """Processes of a session: the daemon's code servers and run workers may sit in groups of their own."""
    members = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            with contextlib.suppress(OSError):
                if os.getsid(int(entry.name)) == session_id:
                    members.append(int(entry.name))
    return members


def stop_daemon(proc: subprocess.Popen, timeout: float = 30.0) -> None:
    """SIGTERM the daemon's session (its code servers and runs too), then SIGKILL what is left."""
    session = proc.pid  # started with start_new_session: the daemon leads its own session
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=timeout)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)

    for sig in (signal.SIGTERM, signal.SIGKILL):
        left = _session_members(session)
        for pid in left:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, sig)
        deadline = time.monotonic() + 10
        while left and time.monotonic() < deadline:
            time.sleep(0.2)
            left = _session_members(session)
        if not left:
            return


def stop_daemon_session(pid: int, timeout: float = 30.0) -> bool:
    """Stop a daemon started by ``start_daemon`` in an earlier process (its pid from a pid file).

    Only a live ``dagster-daemon`` leading its own session is touched; returns whether one was stopped.
    Its run workers stop with it; the loop resumes their attempts when a daemon runs again.
    """
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return False
    if "dagster-daemon" not in cmdline or os.getsid(pid) != pid:
        return False
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for member in [pid, *_session_members(pid)]:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(member, sig)
        deadline = time.monotonic() + (timeout if sig == signal.SIGTERM else 10)
        while _session_members(pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        if not _session_members(pid):
            return True
    return True


IN_FLIGHT = ("QUEUED", "NOT_STARTED", "STARTING", "STARTED", "CANCELING")


def wait_for_runs(dagster_home: Path, timeout: float = 120.0, poll: float = 1.0) -> int:
    """Wait until no run is queued or in progress (the last step of a run may still be writing its
    events after the calibration database says the loop is done); returns how many are still going."""
    import dagster as dg  # deferred, see prepare_dagster_home

    instance = dg.DagsterInstance.from_config(str(dagster_home))
    try:
        deadline = time.monotonic() + timeout
        statuses = [dg.DagsterRunStatus[name] for name in IN_FLIGHT]
        while True:
            going = len(instance.get_run_records(filters=dg.RunsFilter(statuses=statuses)))
            if going == 0 or time.monotonic() > deadline:
                return going
            time.sleep(poll)
    finally:
        instance.dispose()
