"""A local process pool: each job is its wrapper script in its own process group, at most N at a time."""

from __future__ import annotations

import contextlib
import itertools
import os
import signal
import subprocess
import time
import uuid
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from b2cal_assets.backends.base import BatchBackend, JobHandle, JobSpec, JobState, JobStatus
from b2cal_assets.backends.wrapper import read_exit_code, write_wrapper
from b2cal_assets.files import atomic_write_text

__all__ = ["LocalBackend"]

PID_FILE = "pid"


@dataclass
class _Job:
    spec: JobSpec
    handle: JobHandle
    process: subprocess.Popen[bytes] | None = None
    cancelled: bool = False


class LocalBackend(BatchBackend):
    """Run jobs as local processes, ``max_processes`` at a time; queued jobs start as slots free up.

    Jobs start in ``submit`` (as far as slots allow) and in ``poll``. A job this instance did not
    start (a restart re-attached to it) is followed through the ``pid`` file the backend leaves in
    its workdir and its ``exit_code`` file.
    """

    name = "local"

    def __init__(self, max_processes: int = 4, *, kill_timeout_s: float = 10.0) -> None:
        if max_processes < 1:
            raise ValueError("max_processes must be at least 1")
        self.max_processes = max_processes
        self.kill_timeout_s = kill_timeout_s
        self._jobs: dict[str, _Job] = {}
        self._queue: deque[str] = deque()
        self._ids = itertools.count(1)
        self._prefix = f"local-{uuid.uuid4().hex[:8]}"

    def submit(self, jobs: Sequence[JobSpec]) -> list[JobHandle]:
        handles = []
        for spec in jobs:
            write_wrapper(spec)
            (Path(spec.workdir) / PID_FILE).unlink(missing_ok=True)
            job_id = f"{self._prefix}-{next(self._ids)}"
            handle = JobHandle(self.name, job_id, spec.name, Path(spec.workdir))
            self._jobs[job_id] = _Job(spec, handle)
            self._queue.append(job_id)
            handles.append(handle)
        self._start_queued()
        return handles

    def poll(self, handles: Sequence[JobHandle]) -> dict[str, JobStatus]:
        self._start_queued()
        out: dict[str, JobStatus] = {}
        for handle in handles:
            job = self._jobs.get(handle.job_id)
            status = self._status(job) if job is not None else _foreign_status(handle)
            if status is not None:
                out[handle.job_id] = status
        return out

    def cancel(self, handles: Sequence[JobHandle]) -> None:
        to_wait = []
        for handle in handles:
            job = self._jobs.get(handle.job_id)
            if job is None:
                _kill_foreign(handle)
                continue
            job.cancelled = True
            if handle.job_id in self._queue:
                self._queue.remove(handle.job_id)
            elif job.process is not None and job.process.poll() is None:
                _killpg(job.process.pid, signal.SIGTERM)
                to_wait.append(job.process)
        deadline = time.monotonic() + self.kill_timeout_s
        for process in to_wait:
            try:
                process.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _killpg(process.pid, signal.SIGKILL)
                process.wait()

    # -- internals ------------------------------------------------------------------------------

    def _running(self) -> int:
        return sum(1 for j in self._jobs.values() if j.process is not None and j.process.poll() is None)

    def _start_queued(self) -> None:
        free = self.max_processes - self._running()
        while free > 0 and self._queue:
            job = self._jobs[self._queue.popleft()]
            workdir = Path(job.spec.workdir)
            job.process = subprocess.Popen(
                ["bash", str(workdir / "run.sh")],
                cwd=workdir,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
            free -= 1
            try:
                atomic_write_text(workdir / PID_FILE, f"{job.process.pid}\n")
            except OSError:
                # without its pid file a restarted loop could not follow the job: stop it, say where
                _killpg(job.process.pid, signal.SIGKILL)
                job.process.wait()
                raise

    def _status(self, job: _Job) -> JobStatus:
        if job.process is None:
            if job.cancelled:
                return JobStatus(JobState.CANCELLED, None, "cancelled before it started")
            return JobStatus(JobState.PENDING)
        returncode = job.process.poll()
        if returncode is None:
            return JobStatus(JobState.RUNNING)
        if job.cancelled:
            return JobStatus(JobState.CANCELLED, read_exit_code(job.spec.workdir), "cancelled")
        code = read_exit_code(job.spec.workdir)
        if code is None:
            # the wrapper died without writing its exit code (killed with SIGKILL, ...)
            return JobStatus(JobState.FAILED, returncode, f"wrapper ended with {returncode} and no exit_code")
        if code == 0:
            return JobStatus(JobState.DONE, 0)
        return JobStatus(JobState.FAILED, code, f"exit code {code}")


def _foreign_pid(handle: JobHandle) -> int | None:
    try:
        return int((Path(handle.workdir) / PID_FILE).read_text().strip())
    except (OSError, ValueError):
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


def _foreign_status(handle: JobHandle) -> JobStatus | None:
    """A job started by another instance: decided by its files; unknown ones are not reported."""
    code = read_exit_code(handle.workdir)
    if code is not None:
        return (
            JobStatus(JobState.DONE, 0)
            if code == 0
            else JobStatus(JobState.FAILED, code, f"exit code {code}")
        )
    pid = _foreign_pid(handle)
    if pid is not None and _alive(pid):
        return JobStatus(JobState.RUNNING)
    return None


def _kill_foreign(handle: JobHandle) -> None:
    pid = _foreign_pid(handle)
    if pid is not None and read_exit_code(handle.workdir) is None and _alive(pid):
        _killpg(pid, signal.SIGTERM)


def _killpg(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)
