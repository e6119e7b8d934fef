"""The daemon's code server made unreachable for a minute (``SIGSTOP``, then ``SIGCONT``) while a
calibration's collector jobs run: sensor ticks against it time out, its run worker goes on, and the code
server, missing the daemon's heartbeats, shuts itself down once it runs again (the daemon starts a new
one). The loop finishes by itself, with one attempt per step and every collector subjob run once; a run
request lost in the outage is made again by the loop's reconciliation under the same run key.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path

import dagster as dg
import pytest

from b2cal_assets.db.engine import database_url
from b2cal_assets.db.repo import attempts, jobs
from b2cal_assets.defs.instance import (
    _session_members,
    default_instance_yaml,
    prepare_dagster_home,
    start_daemon,
    stop_daemon,
    wait_for_runs,
)
from b2cal_assets.loop.factory import loop_service
from b2cal_assets_tests.defs.conftest import TOY_SCRIPTS, toy_loop_one  # noqa: F401
from b2cal_assets_tests.e2e.test_daemon_faults import toy_a_submitted_jobs, wait_until
from b2cal_assets_tests.e2e.test_daemon_loop import STEPS, wait_for_loop
from b2cal_assets_tests.e2e.toy_daemon import toy_daemon_env
from b2cal_assets_tests.loop.helpers import collector_jobs

pytestmark = pytest.mark.slow

STOPPED_FOR_S = 60


def code_servers(daemon) -> list[int]:
    """The daemon's gRPC code server(s) (``dagster code-server start`` / ``dagster api grpc``)."""
    found = []
    for pid in _session_members(daemon.pid):
        with contextlib.suppress(OSError):
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            text = b" ".join(argv).decode(errors="replace")
            if "code-server start" in text or "api grpc" in text:
                found.append(pid)
    return found


def test_the_loop_survives_its_code_server_unreachable_for_a_minute(toy_loop_one):  # noqa: F811
    root = toy_loop_one
    dagster_home = root / "dagster"
    prepare_dagster_home(
        dagster_home, default_instance_yaml().replace("poll_interval_seconds: 15", "poll_interval_seconds: 5")
    )
    env = toy_daemon_env(
        root,
        B2CAL_TOY_SLEEP_S="10",  # toy_a's subjobs are still running when the code server stops
        # ticks time out during the minute (the shipped 180 s would just wait): the harder case
        DAGSTER_SENSOR_GRPC_TIMEOUT_SECONDS="30",
    )
    log = root / "logs" / "daemon.log"
    service = loop_service(database_url(), str(TOY_SCRIPTS))
    daemon = start_daemon(env, log)
    stopped: list[int] = []
    try:
        wait_until(lambda: toy_a_submitted_jobs("p1"), 600, "p1's toy_a collector jobs", log)
        stopped = code_servers(daemon)
        assert stopped, "no code server in the daemon's session"
        for pid in stopped:
            os.kill(pid, signal.SIGSTOP)
        time.sleep(STOPPED_FOR_S)
        assert daemon.poll() is None
        for pid in stopped:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
        stopped = []
        wait_for_loop(service, ["p1"], daemon, log, timeout_s=900)
        assert wait_for_runs(dagster_home) == 0
        assert "DagsterUserCodeUnreachableError" in log.read_text()  # the daemon did meet the outage
    finally:
        for pid in stopped:  # never leave a stopped process behind
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
        stop_daemon(daemon)

    # nothing lost, nothing done twice
    with service.session() as s:
        for step in STEPS:
            made = attempts.list_attempts(s, "p1", step)
            assert [(a.number, a.state) for a in made] == [(1, "finished")], (step, made)
        (toy_a,) = attempts.list_attempts(s, "p1", "toy_a")
        subjobs = collector_jobs(jobs.list_jobs(s, toy_a.id))
        assert len(subjobs) == 2 and all(j.tries <= 1 for j in subjobs), [(j.name, j.tries) for j in subjobs]
    instance = dg.DagsterInstance.from_config(str(dagster_home))
    try:
        runs = [
            r for r in instance.get_runs() if r.tags.get("dagster/sensor_name") == "calibration_loop_sensor"
        ]
        keys = [r.tags["dagster/run_key"] for r in runs]
        assert len(keys) == len(set(keys))  # Dagster started no run key twice
        succeeded = sorted(
            r.tags["dagster/run_key"].split("|")[1] for r in runs if r.status.name == "SUCCESS"
        )
        assert succeeded == sorted(STEPS), [(r.tags["dagster/run_key"], r.status.name) for r in runs]
    finally:
        instance.dispose()
