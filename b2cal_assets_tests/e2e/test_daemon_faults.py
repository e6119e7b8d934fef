"""Faults injected into the real daemon's loop: every process of the daemon (its code server and run
workers) ``kill -9``ed mid-run and the daemon started again as the README says, and a run that Dagster
fails before it starts. The loop finishes by itself, with one attempt per step and every collector subjob
run once.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import threading
import time
from pathlib import Path

import dagster as dg
import pytest

from b2cal_assets import home
from b2cal_assets.db.engine import database_url
from b2cal_assets.db.repo import attempts, audit, jobs
from b2cal_assets.defs.instance import (
    _session_members,
    default_instance_yaml,
    prepare_dagster_home,
    start_daemon,
    stop_daemon,
    wait_for_runs,
)
from b2cal_assets.loop.factory import loop_service
from b2cal_assets_tests.defs.conftest import TOY_SCRIPTS
from b2cal_assets_tests.e2e.test_daemon_loop import STEPS, wait_for_loop
from b2cal_assets_tests.e2e.toy_daemon import toy_daemon_env
from b2cal_assets_tests.loop.helpers import collector_jobs

pytestmark = pytest.mark.slow

HELD_KEY = "p1|toy_b|1|deadline"  # the run the test makes Dagster fail before it starts


def instance_yaml() -> str:
    """The shipped config, with monitoring that reacts in seconds and one run key held in the queue."""
    text = default_instance_yaml()
    text = text.replace("start_timeout_seconds: 300", "start_timeout_seconds: 90")
    text = text.replace("poll_interval_seconds: 15", "poll_interval_seconds: 2")
    text = text.replace(
        "    dequeue_interval_seconds: 1\n",
        "    dequeue_interval_seconds: 1\n"
        "    tag_concurrency_limits:\n"
        f'      - key: "dagster/run_key"\n        value: "{HELD_KEY}"\n        limit: 0\n',
    )
    assert "tag_concurrency_limits" in text and "poll_interval_seconds: 2" in text
    return text


def kill_session(daemon) -> int:
    """``kill -9`` of the daemon and everything in its session (code server, run workers)."""
    members = _session_members(daemon.pid)
    for pid in members:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    daemon.wait(timeout=30)
    return len(members)


def wait_until(predicate, timeout: float, what: str, log: Path):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.5)
    pytest.fail(f"timed out waiting for {what}\n{log.read_text()[-3000:]}")


def toy_a_submitted_jobs(processing: str) -> bool:
    state = home.attempt_work_dir(processing, "toy_a", 1) / "toy_a" / "0" / "collector_input" / "jobs.json"
    try:
        entries = json.loads(state.read_text())["jobs"].values()
    except (OSError, ValueError, KeyError):
        return False
    return len(entries) == 2 and all(e.get("job_id") for e in entries)


def fail_the_held_run(dagster_home: Path, stop: threading.Event, failed: list[str]) -> None:
    """What a launch that times out does: Dagster marks the queued run failed; it never starts."""
    instance = dg.DagsterInstance.from_config(str(dagster_home))
    try:
        while not stop.is_set() and not failed:
            for run in instance.get_runs(filters=dg.RunsFilter(tags={"dagster/run_key": HELD_KEY})):
                if run.status == dg.DagsterRunStatus.QUEUED:
                    instance.report_run_failed(
                        run, "User code server request timed out due to taking longer than 60 seconds"
                    )
                    failed.append(run.run_id)
            stop.wait(0.5)
    finally:
        instance.dispose()


def test_the_loop_survives_a_killed_daemon_and_a_run_failed_before_start(toy_loop):
    root = toy_loop
    dagster_home = root / "dagster"
    prepare_dagster_home(dagster_home, instance_yaml())
    # toy_a's subjobs take a while: the kill lands while they run
    env = toy_daemon_env(root, B2CAL_TOY_SLEEP_S="12")
    log = root / "logs" / "daemon.log"
    service = loop_service(database_url(), str(TOY_SCRIPTS))
    stop, failed = threading.Event(), []
    watcher = threading.Thread(target=fail_the_held_run, args=(dagster_home, stop, failed), daemon=True)
    watcher.start()
    daemon = start_daemon(env, log)
    try:
        wait_until(lambda: toy_a_submitted_jobs("p1"), 600, "p1's toy_a collector jobs", log)
        assert service.step_states("p1")["toy_a"] == "running"
        assert kill_session(daemon) >= 2  # the daemon and at least its code server
        time.sleep(3)
        # started again the way the README's Operations section says: the same command
        daemon = start_daemon(env, log)
        wait_for_loop(service, ["p1", "p2"], daemon, log, timeout_s=900)
        assert wait_for_runs(dagster_home) == 0
    finally:
        stop.set()
        stop_daemon(daemon)
        watcher.join(timeout=10)

    # nothing lost, nothing done twice: one attempt per step, every toy_a subjob submitted once
    with service.session() as s:
        for processing in ("p1", "p2"):
            for step in STEPS:
                made = attempts.list_attempts(s, processing, step)
                assert [(a.number, a.state) for a in made] == [(1, "finished")], (processing, step)
            (toy_a,) = attempts.list_attempts(s, processing, "toy_a")
            subjobs = collector_jobs(jobs.list_jobs(s, toy_a.id))
            # a subjob that ended while no run watched it is re-attached by its exit code (tries 0 then)
            assert len(subjobs) == 2 and all(j.tries <= 1 for j in subjobs), [
                (j.name, j.tries) for j in subjobs
            ]
            outputs = home.attempt_work_dir(processing, "toy_a", 1) / "toy_a" / "0" / "collector_output"
            assert not [p for p in outputs.rglob("stdout.*")]  # no subjob was submitted a second time
        (p1_toy_a,) = attempts.list_attempts(s, "p1", "toy_a")
        assert p1_toy_a.resumes == 1  # the killed run's attempt was taken over, not run again
        actions = [
            (e.calibration, e.action) for e in audit.list_audit(s, processing="p1", user="auto", limit=500)
        ]
    assert ("toy_a", "loop_resumed") in actions
    assert failed and ("toy_b", "loop_relaunched") in actions

    instance = dg.DagsterInstance.from_config(str(dagster_home))
    try:
        runs = [
            r for r in instance.get_runs() if r.tags.get("dagster/sensor_name") == "calibration_loop_sensor"
        ]
        keys = [r.tags["dagster/run_key"] for r in runs]
        assert len(keys) == len(set(keys))  # Dagster started no run key twice
        by_key = {r.tags["dagster/run_key"]: r for r in runs}
        assert by_key[HELD_KEY].status == dg.DagsterRunStatus.FAILURE
        assert by_key[HELD_KEY + "|g1"].status == dg.DagsterRunStatus.SUCCESS
        killed = by_key["p1|toy_a|1|deadline"]
        assert killed.status == dg.DagsterRunStatus.FAILURE  # found by run monitoring
        resumed = [r for k, r in by_key.items() if k.startswith("p1|toy_a|1|resume|")]
        assert [r.status for r in resumed] == [dg.DagsterRunStatus.SUCCESS]
        assert resumed[0].tags["b2cal/resume_run_id"] == killed.run_id
    finally:
        instance.dispose()
