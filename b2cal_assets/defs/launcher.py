"""Dagster's default run launcher, with the run-worker health check that run monitoring needs.

The embedded instance (``dagster.yaml``) runs each run in a worker process of the code server on this
machine. Dagster's own launcher cannot tell whether that worker is still alive, so a run whose worker was
``kill -9``ed together with the daemon and its code server stays STARTED for ever. This launcher answers
run monitoring's question from the worker's pid, which Dagster records when the worker starts ("Started
process for run (pid: N)"): the process must exist, not be a zombie, and be older than that record (a
recycled pid is a younger process). Monitoring then marks the run failed, and the loop's reconciliation
resumes the attempt from its checkpoint (``loop/reconcile.py``).

Only for code servers on the same machine as the daemon (the embedded setup); the Docker deployment
uses the ``DockerRunLauncher``, which checks its containers itself.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import dagster as dg
from dagster._core.launcher.base import CheckRunHealthResult, WorkerStatus
from dagster._core.launcher.default_run_launcher import DefaultRunLauncher

PID_MESSAGE = "Started process for run (pid: "


class LocalRunLauncher(DefaultRunLauncher):
    """``DefaultRunLauncher`` + ``check_run_worker_health`` by pid (run monitoring on one machine)."""

    @property
    def supports_check_run_worker_health(self) -> bool:
        return True

    def check_run_worker_health(self, run) -> CheckRunHealthResult:
        pid, logged_at = worker_pid(self._instance, run.run_id)
        if pid is None:
            # nothing recorded yet (the worker is starting): run monitoring's start timeout covers it
            return CheckRunHealthResult(WorkerStatus.RUNNING, "no run worker pid recorded yet")
        alive, why = process_alive(pid, started_before=logged_at)
        if alive:
            return CheckRunHealthResult(WorkerStatus.RUNNING, f"run worker pid {pid} is alive")
        return CheckRunHealthResult(WorkerStatus.FAILED, f"the run worker (pid {pid}) is gone: {why}")


def worker_pid(instance, run_id: str) -> tuple[int | None, float | None]:
    """The pid of the run's (latest) worker and when Dagster recorded it, from the run's engine events."""
    records = instance.get_records_for_run(
        run_id, of_type=dg.DagsterEventType.ENGINE_EVENT, limit=50, ascending=False
    ).records
    for record in records:
        entry = record.event_log_entry
        if not (entry.message or "").startswith(PID_MESSAGE):
            continue
        event = entry.dagster_event
        metadata = event.engine_event_data.metadata if event is not None else {}
        value: Any = getattr(metadata.get("pid"), "value", metadata.get("pid"))
        try:
            return int(value), entry.timestamp
        except (TypeError, ValueError):
            continue
    return None, None


def process_alive(pid: int, started_before: float | None = None) -> tuple[bool, str]:
    """Is ``pid`` a live process (not a zombie) that started no later than ``started_before``?"""
    stat = Path(f"/proc/{pid}/stat")
    try:
        fields = stat.read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False, "no such process"
        except PermissionError:
            return True, ""
        return True, ""  # no /proc: trust the signal check
    if fields[0] in ("Z", "X"):
        return False, "the process ended (zombie)"
    if started_before is not None:
        started = _process_start(fields)
        if started is not None and started > started_before + 5.0:
            return False, "its pid now belongs to a younger process"
    return True, ""


def _process_start(fields: list[str]) -> float | None:
    """Start time of a process in seconds since the epoch, from /proc/<pid>/stat and /proc/stat."""
    try:
        ticks = int(fields[19])  # field 22 of stat; fields[0] is field 3
        boot = next(
            int(line.split()[1])
            for line in Path("/proc/stat").read_text().splitlines()
            if line.startswith("btime")
        )
        return boot + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return None
