"""Which Dagster runs are stuck, and whether the daemon runs: what ``b2cal status`` tells an operator."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import dagster as dg

from b2cal_assets.defs.launcher import LocalRunLauncher, process_alive, worker_pid

QUEUED_TOO_LONG_S = 600.0
STARTING_TOO_LONG_S = 120.0
DAEMON_SILENT_S = 120.0


@dataclass(frozen=True)
class StuckRun:
    run_id: str
    status: str
    partition: str
    what: str  # the run key, or the assets it materialises
    age_s: float
    problem: str
    next_step: str  # what the loop (or Dagster) does about it, or what the operator does


def open_instance(dagster_home: Path) -> dg.DagsterInstance | None:
    """The instance of ``dagster_home`` if it has been set up, else None (nothing to report)."""
    if not (dagster_home / "dagster.yaml").exists():
        return None
    return dg.DagsterInstance.from_config(str(dagster_home))


def stuck_runs(instance: dg.DagsterInstance, now: float | None = None) -> list[StuckRun]:
    now = now or time.time()
    statuses = [
        dg.DagsterRunStatus.QUEUED,
        dg.DagsterRunStatus.NOT_STARTED,
        dg.DagsterRunStatus.STARTING,
        dg.DagsterRunStatus.STARTED,
        dg.DagsterRunStatus.CANCELING,
    ]
    monitoring = instance.run_monitoring_enabled
    start_timeout = instance.run_monitoring_start_timeout_seconds
    poll = instance.run_monitoring_poll_interval_seconds
    out: list[StuckRun] = []
    for record in instance.get_run_records(filters=dg.RunsFilter(statuses=statuses), limit=500):
        run = record.dagster_run
        since = record.start_time or record.create_timestamp.timestamp()
        age = now - since
        problem = next_step = ""
        status = run.status
        if status == dg.DagsterRunStatus.QUEUED and age > QUEUED_TOO_LONG_S:
            problem = f"queued for {age / 60:.0f} min"
            next_step = "the daemon starts queued runs: is it running? (see below)"
        elif status in (dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTING) and (
            age > STARTING_TOO_LONG_S
        ):
            problem = f"not started after {age:.0f} s"
            next_step = (
                f"run monitoring fails it after {start_timeout} s; then the loop launches the step again"
                if monitoring
                else "run monitoring is off: enable it in dagster.yaml, or terminate the run"
            )
        elif status == dg.DagsterRunStatus.STARTED and isinstance(instance.run_launcher, LocalRunLauncher):
            pid, logged = worker_pid(instance, run.run_id)
            if pid is not None:
                alive, why = process_alive(pid, started_before=logged)
                if not alive:
                    problem = f"its worker (pid {pid}) is gone: {why}"
                    next_step = (
                        f"run monitoring marks it failed within {poll} s; then the loop resumes its attempt "
                        "from the checkpoint"
                        if monitoring
                        else "run monitoring is off: terminate the run; the loop then resumes its attempt"
                    )
        elif status == dg.DagsterRunStatus.CANCELING and age > instance.run_monitoring_cancel_timeout_seconds:
            problem = f"cancelling for {age / 60:.0f} min"
            next_step = "run monitoring marks it cancelled; the loop then fails its attempt"
        if problem:
            out.append(
                StuckRun(
                    run_id=run.run_id,
                    status=status.value,
                    partition=run.tags.get("dagster/partition", ""),
                    what=run.tags.get("dagster/run_key")
                    or ", ".join(k.to_user_string() for k in sorted(run.asset_selection or [], key=str)),
                    age_s=age,
                    problem=problem,
                    next_step=next_step,
                )
            )
    return out


def daemon_problem(instance: dg.DagsterInstance, now: float | None = None) -> str:
    """Empty when the daemon's heartbeat is recent; else one line saying what stops without it."""
    now = now or time.time()
    beats = instance.get_daemon_heartbeats()
    if not beats:
        return (
            "the Dagster daemon has never run on this instance: no sensor ticks and no run starts "
            "(start it: dagster-daemon run, or make dev)"
        )
    latest = max(b.timestamp for b in beats.values())
    if now - latest > DAEMON_SILENT_S:
        return (
            f"the Dagster daemon's last heartbeat was {(now - latest) / 60:.0f} min ago: sensors do not tick "
            "and queued runs do not start; start it again (see README: Operations)"
        )
    return ""
