"""Run monitoring in the embedded instance: on in both configs, and able to see a killed run worker."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import yaml
from dagster._core.events import EngineEventData
from dagster._core.launcher.base import WorkerStatus
from dagster._core.storage.dagster_run import DagsterRun, DagsterRunStatus
from dagster._core.utils import make_new_run_id

from b2cal_assets.defs.instance import (
    DEFAULT_INSTANCE_YAML,
    REPO_DAGSTER_YAML,
    dagster_env,
    prepare_dagster_home,
)
from b2cal_assets.defs.launcher import LocalRunLauncher, process_alive
from b2cal_assets.defs.run_health import daemon_problem, stuck_runs


def test_both_instance_configs_monitor_runs_and_agree():
    repo = yaml.safe_load(REPO_DAGSTER_YAML.read_text())
    assert repo == yaml.safe_load(DEFAULT_INSTANCE_YAML)
    monitoring = repo["run_monitoring"]
    assert monitoring["enabled"] is True
    assert 120 <= monitoring["start_timeout_seconds"] <= 600  # a loaded 2-core machine launches slowly
    assert monitoring["poll_interval_seconds"] <= 30
    assert monitoring["max_runtime_seconds"] == 0  # calibrations may run for days
    assert repo["run_launcher"] == {"module": "b2cal_assets.defs.launcher", "class": "LocalRunLauncher"}
    assert repo["run_retries"] == {"enabled": False}  # the loop resumes runs itself
    assert repo["code_servers"]["local_startup_timeout"] >= 300  # a code server loads slowly under load


def test_dagster_processes_wait_longer_for_the_code_server_unless_the_operator_says(monkeypatch):
    monkeypatch.delenv("DAGSTER_GRPC_TIMEOUT_SECONDS", raising=False)
    monkeypatch.setenv("DAGSTER_SENSOR_GRPC_TIMEOUT_SECONDS", "400")
    env = dagster_env({"B2CAL_HOME": "/x"})
    assert int(env["DAGSTER_GRPC_TIMEOUT_SECONDS"]) >= 180  # Dagster's 60 s failed launches under load
    assert env["DAGSTER_SENSOR_GRPC_TIMEOUT_SECONDS"] == "400" and env["B2CAL_HOME"] == "/x"


def test_an_old_b2cal_config_is_brought_up_to_date_and_an_operators_is_kept(tmp_path):
    ours = tmp_path / "ours"
    ours.mkdir()
    old = REPO_DAGSTER_YAML.read_text().split("run_launcher:")[0]  # as written before run monitoring
    (ours / "dagster.yaml").write_text(old)
    prepare_dagster_home(ours)
    assert (ours / "dagster.yaml").read_text() == REPO_DAGSTER_YAML.read_text()
    instance = dg.DagsterInstance.from_config(str(ours))
    try:
        assert instance.run_monitoring_enabled and isinstance(instance.run_launcher, LocalRunLauncher)
        assert instance.run_launcher.supports_check_run_worker_health
    finally:
        instance.dispose()
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    (theirs / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    prepare_dagster_home(theirs)
    assert (theirs / "dagster.yaml").read_text() == "telemetry:\n  enabled: false\n"


def _started_run(instance, pid: int | None) -> DagsterRun:
    run = DagsterRun(job_name="__ASSET_JOB", run_id=make_new_run_id(), status=DagsterRunStatus.STARTED)
    instance.add_run(run)
    if pid is not None:
        instance.report_engine_event(
            f"Started process for run (pid: {pid}).", run, EngineEventData.in_process(pid)
        )
    return run


def test_the_launcher_sees_a_killed_worker(tmp_path):
    prepare_dagster_home(tmp_path)
    instance = dg.DagsterInstance.from_config(str(tmp_path))
    worker = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        launcher = instance.run_launcher
        alive = _started_run(instance, worker.pid)
        assert launcher.check_run_worker_health(alive).status == WorkerStatus.RUNNING
        assert launcher.check_run_worker_health(_started_run(instance, None)).status == WorkerStatus.RUNNING
        assert stuck_runs(instance) == []
        worker.kill()
        time.sleep(0.2)  # not reaped yet: a zombie is no worker either
        health = launcher.check_run_worker_health(alive)
        assert health.status == WorkerStatus.FAILED and f"pid {worker.pid}" in (health.msg or "")
        worker.wait()
        assert launcher.check_run_worker_health(alive).status == WorkerStatus.FAILED
        (stuck,) = stuck_runs(instance)
        assert stuck.run_id == alive.run_id and "is gone" in stuck.problem
        assert "the loop resumes its attempt" in stuck.next_step
        assert "never run" in daemon_problem(instance)
    finally:
        worker.kill()
        worker.wait()
        instance.dispose()


def test_a_recycled_pid_is_not_the_worker():
    me = Path("/proc/self").resolve().name
    assert process_alive(int(me))[0]
    alive, why = process_alive(int(me), started_before=time.time() - 3600 * 24 * 365)
    assert not alive and "younger process" in why
    assert process_alive(2**22 + 17) == (False, "no such process")


def test_b2cal_status_shows_stuck_runs_and_a_silent_daemon(b2cal_home, monkeypatch, capsys):
    from b2cal_assets.cli import main
    from b2cal_assets.db.engine import database_url, ensure_schema

    ensure_schema(database_url())
    dagster_home = b2cal_home / "dagster"
    monkeypatch.setenv("DAGSTER_HOME", str(dagster_home))
    prepare_dagster_home(dagster_home)
    instance = dg.DagsterInstance.from_config(str(dagster_home))
    worker = subprocess.Popen([sys.executable, "-c", "pass"])
    worker.wait()
    try:
        dead = _started_run(instance, worker.pid)
    finally:
        instance.dispose()
    assert main(["status"]) == 0
    out = capsys.readouterr().out
    assert "DAEMON: the Dagster daemon has never run" in out
    assert "1 Dagster run(s) stuck" in out and dead.run_id[:8] in out and "is gone" in out
    assert main(["status", "--no-runs"]) == 0
    assert "stuck" not in capsys.readouterr().out
