"""Run many jobs on one backend without babysitting: chunks, a global limit, retries, cancel, re-attach.

The experience of the calibration centres (paper, section on batch systems): submissions are spaced
over time and kept under a global job limit, the scheduler is asked once per cycle about all jobs,
a job the scheduler forgot is decided by its ``exit_code`` file, and failed jobs are resubmitted
automatically after a delay (30 minutes by default). When a job ends, its own start and end (the
wrapper's ``times`` file) are read into its result, so the queue wait is told apart from the run.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from b2cal_assets.backends.base import BackendError, BatchBackend, JobHandle, JobSpec, JobState, JobStatus
from b2cal_assets.backends.wrapper import (
    EXIT_CODE_FILE,
    STDERR_FILE,
    STDOUT_FILE,
    TIMES_FILE,
    JobTimes,
    read_exit_code,
    read_job_times,
)
from b2cal_assets.files import atomic_write_text

__all__ = [
    "JobManager",
    "JobResult",
    "JobsCancelled",
    "Progress",
    "RetryPolicy",
    "SubmitPolicy",
    "xrootd_env",
]

_log = logging.getLogger(__name__)

# XRootD client defaults (XrdCl): connection window 120 s, 5 connection retries,
# request timeout 1800 s, stream timeout 60 s.
_XRD_DEFAULT_WINDOW_S = 120
_XRD_DEFAULT_REQUEST_TIMEOUT_S = 1800
_XRD_DEFAULT_STREAM_TIMEOUT_S = 60


def xrootd_env(timeout_s: int = 600, retries: int = 25) -> dict[str, str]:
    """XRootD client settings for jobs; the defaults are 5x the client's own (the paper's fix for flaky reads).

    ``timeout_s`` is the connection window; the request and stream timeouts scale by the same factor.
    """
    factor = timeout_s / _XRD_DEFAULT_WINDOW_S
    return {
        "XRD_CONNECTIONWINDOW": str(int(timeout_s)),
        "XRD_CONNECTIONRETRY": str(int(retries)),
        "XRD_REQUESTTIMEOUT": str(round(_XRD_DEFAULT_REQUEST_TIMEOUT_S * factor)),
        "XRD_STREAMTIMEOUT": str(round(_XRD_DEFAULT_STREAM_TIMEOUT_S * factor)),
    }


@dataclass(frozen=True)
class RetryPolicy:
    """A failed job is submitted again after ``retry_delay_s``, at most ``max_retries`` times."""

    max_retries: int = 3
    retry_delay_s: float = 1800.0


@dataclass(frozen=True)
class SubmitPolicy:
    """How fast jobs enter the batch system and how often it is asked about them."""

    max_jobs_in_system: int = 1000
    chunk_size: int = 100
    chunk_interval_s: float = 0.0
    poll_interval_s: float = 5.0
    forgotten_grace_s: float = 60.0
    # a scheduler that is briefly slow is normal at hundreds of jobs: up to this many status queries
    # may fail in a row (each followed by a longer wait, up to poll_backoff_max_s) before the jobs are given up
    max_failed_polls: int = 5
    poll_backoff_max_s: float = 300.0

    def __post_init__(self) -> None:
        if self.max_jobs_in_system < 1 or self.chunk_size < 1:
            raise ValueError("max_jobs_in_system and chunk_size must be at least 1")
        if self.max_failed_polls < 0:
            raise ValueError("max_failed_polls must not be negative")

    def backoff_s(self, failures: int) -> float:
        """The wait after ``failures`` failed status queries in a row: the poll interval, doubled each time."""
        base = max(self.poll_interval_s, 0.1)
        backoff: float = base * 2 ** max(failures - 1, 0)
        return min(backoff, max(self.poll_backoff_max_s, base))


@dataclass
class JobResult:
    spec: JobSpec
    handle: JobHandle | None
    state: JobState
    exit_code: int | None
    tries: int
    reason: str | None = None
    #: the last try's own start and end (Unix epoch seconds, from the wrapper); None when unknown
    started_at: float | None = None
    finished_at: float | None = None


@dataclass(frozen=True)
class Progress:
    """Counts after one cycle; ``pending`` = waiting to be submitted or queued in the batch system."""

    total: int
    pending: int
    running: int
    done: int
    failed: int
    retrying: int

    def __str__(self) -> str:
        return (
            f"{self.done}/{self.total} done, {self.running} running, {self.pending} pending, "
            f"{self.retrying} waiting to retry, {self.failed} failed"
        )


class JobsCancelled(RuntimeError):
    """The jobs were cancelled: on request, on an interrupt, or because something failed (``__cause__``)."""


_NO_TIMES = JobTimes(None, None)

# internal states of one spec
_WAITING = "waiting"  # not submitted yet (or waiting for its retry time)
_LIVE = "live"  # submitted, not decided
_DONE = "done"
_FAILED = "failed"


@dataclass
class _Track:
    spec: JobSpec
    key: str
    phase: str = _WAITING
    handle: JobHandle | None = None
    backend_state: JobState = JobState.PENDING
    tries: int = 0
    not_before: float = 0.0
    unseen_since: float | None = None
    exit_code: int | None = None
    reason: str | None = None
    times: JobTimes = _NO_TIMES
    #: this job's entry of the state file as last written, and what it was made from
    saved: tuple[tuple[Any, ...], str] | None = None

    def entry(self) -> str:
        """This job's ``"key": {...}`` of the state file, encoded again only when it has changed."""
        assert self.handle is not None
        h = self.handle
        made_from = (h.backend, h.job_id, h.name, h.workdir, self.tries, self.phase)
        if self.saved is None or self.saved[0] != made_from:
            entry = {
                "backend": h.backend,
                "job_id": h.job_id if self.phase == _LIVE else None,
                "name": h.name,
                "workdir": str(h.workdir),
                "tries": self.tries,
                "phase": self.phase,
            }
            self.saved = (made_from, f"{json.dumps(self.key)}: {json.dumps(entry, sort_keys=True)}")
        return self.saved[1]

    def result(self) -> JobResult:
        state = {_DONE: JobState.DONE, _FAILED: JobState.FAILED}.get(self.phase, self.backend_state)
        return JobResult(
            self.spec,
            self.handle,
            state,
            self.exit_code,
            self.tries,
            self.reason,
            self.times.started_at,
            self.times.finished_at,
        )

    def ended(self) -> None:
        """The try has ended: keep its own start and end before a retry's wrapper overwrites them."""
        self.times = read_job_times(self.spec.workdir)


class JobManager:
    """Submit ``specs`` to ``backend`` and follow them until each is done or has failed for good.

    ``clock`` and ``sleep`` are injectable so tests can run the retry delay without waiting. With a
    ``state_file``, submitted handles are saved so that a new manager over the same specs re-attaches
    to jobs still in the system instead of submitting them twice, and skips jobs whose
    ``exit_code`` file already says 0.
    """

    def __init__(
        self,
        backend: BatchBackend,
        submit: SubmitPolicy | None = None,
        retry: RetryPolicy | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        state_file: Path | None = None,
    ) -> None:
        self.backend = backend
        self.submit_policy = submit or SubmitPolicy()
        self.retry_policy = retry or RetryPolicy()
        self.clock = clock
        self.sleep = sleep
        self.state_file = Path(state_file) if state_file is not None else None
        self._on_warning: Callable[[str], None] | None = None
        self._on_done: Callable[[JobResult], None] | None = None

    # -- public ---------------------------------------------------------------------------------

    def run(
        self,
        specs: Sequence[JobSpec],
        on_progress: Callable[[Progress], None] | None = None,
        should_cancel: Callable[[], bool] | None = None,
        on_warning: Callable[[str], None] | None = None,
        on_done: Callable[[JobResult], None] | None = None,
    ) -> list[JobResult]:
        """Results in the order of ``specs``; raises ``JobsCancelled`` after cancelling live jobs.

        ``on_warning`` hears each failed status query that is tolerated (they are logged too).
        ``on_done`` hears each job once, in the cycle it is seen done (a job an earlier manager saw
        finish, too), so its outputs are used while the others run; an error there stops the jobs.
        """
        tracks = self._tracks(specs)
        self._attach(tracks)
        self._on_warning = on_warning
        self._on_done = on_done
        try:
            return self._loop(tracks, on_progress, should_cancel)
        except JobsCancelled:
            self._cancel_live(tracks)
            raise
        except (Exception, KeyboardInterrupt) as exc:
            cancelled = self._cancel_live(tracks)
            raise JobsCancelled(
                f"{cancelled} job(s) cancelled because of {type(exc).__name__}: {exc}"
            ) from exc
        except BaseException:
            self._cancel_live(tracks)
            raise

    # -- the loop -------------------------------------------------------------------------------

    def _loop(
        self,
        tracks: list[_Track],
        on_progress: Callable[[Progress], None] | None,
        should_cancel: Callable[[], bool] | None,
    ) -> list[JobResult]:
        last_chunk_at: float | None = None
        failed_polls = 0
        reported: set[str] = set()
        while True:
            self._report_done(tracks, reported)
            if should_cancel is not None and should_cancel():
                live = sum(t.phase == _LIVE for t in tracks)
                raise JobsCancelled(f"cancelled on request; {live} live job(s) cancelled")
            last_chunk_at = self._submit_due(tracks, last_chunk_at)
            try:
                self._poll(tracks)
            except BackendError as exc:  # the query failed (or timed out); the jobs did not
                failed_polls += 1
                self._query_failed(failed_polls, exc)
                self.sleep(self.submit_policy.backoff_s(failed_polls))
                continue
            failed_polls = 0
            self._report_done(tracks, reported)
            if on_progress is not None:
                on_progress(self._progress(tracks))
            if all(t.phase in (_DONE, _FAILED) for t in tracks):
                return [t.result() for t in tracks]
            self.sleep(self._sleep_time(tracks, last_chunk_at))

    def _report_done(self, tracks: list[_Track], reported: set[str]) -> None:
        if self._on_done is None:
            return
        for t in tracks:
            if t.phase == _DONE and t.key not in reported:
                reported.add(t.key)
                self._on_done(t.result())

    def _query_failed(self, failures: int, exc: Exception) -> None:
        """Log a failed status query (a timeout is one too); after ``max_failed_polls`` in a row, give up."""
        limit = self.submit_policy.max_failed_polls
        if failures > limit:
            raise BackendError(
                f"the {self.backend.name} status query failed {failures} times in a row "
                f"(at most {limit} are tolerated); last error: {exc}"
            ) from exc
        message = (
            f"{self.backend.name} status query failed ({failures} of {limit} tolerated in a row), "
            f"jobs kept, next try in {self.submit_policy.backoff_s(failures):.3g} s: {exc}"
        )
        _log.warning("%s", message)
        if self._on_warning is not None:
            self._on_warning(message)

    def _submit_due(self, tracks: list[_Track], last_chunk_at: float | None) -> float | None:
        policy = self.submit_policy
        while True:
            now = self.clock()
            due = [t for t in tracks if t.phase == _WAITING and t.not_before <= now]
            room = policy.max_jobs_in_system - sum(t.phase == _LIVE for t in tracks)
            if not due or room <= 0:
                return last_chunk_at
            if last_chunk_at is not None and now - last_chunk_at < policy.chunk_interval_s:
                return last_chunk_at
            chunk = due[: min(policy.chunk_size, room)]
            for t in chunk:
                _prepare_workdir(t.spec.workdir, t.tries)
            handles = self.backend.submit([t.spec for t in chunk])
            if len(handles) != len(chunk):
                raise RuntimeError(
                    f"backend {self.backend.name} returned {len(handles)} handles for {len(chunk)} jobs"
                )
            for t, handle in zip(chunk, handles, strict=True):
                t.phase, t.handle, t.backend_state = _LIVE, handle, JobState.PENDING
                t.tries += 1
                t.unseen_since, t.exit_code, t.reason = None, None, None
                t.times = _NO_TIMES
            last_chunk_at = now
            self._save(tracks)
            if policy.chunk_interval_s > 0:
                return last_chunk_at

    def _poll(self, tracks: list[_Track]) -> None:
        live = [t for t in tracks if t.phase == _LIVE]
        if not live:
            return
        statuses = self.backend.poll([t.handle for t in live if t.handle is not None])
        now = self.clock()
        changed = False
        for t in live:
            assert t.handle is not None
            status = statuses.get(t.handle.job_id)
            if status is None:
                status = self._forgotten(t, now)
                if status is None:
                    continue
            else:
                t.unseen_since = None
            t.backend_state = status.state
            if status.reason:
                t.reason = status.reason
            if status.state == JobState.DONE:
                t.phase, t.exit_code = _DONE, status.exit_code if status.exit_code is not None else 0
                t.ended()
                changed = True  # a new manager must see it done (a stale exit_code file is not proof)
            elif status.state in (JobState.FAILED, JobState.CANCELLED):
                self._failed(t, status, now)
                t.ended()
                changed = True
        if changed:
            self._save(tracks)

    def _forgotten(self, t: _Track, now: float) -> JobStatus | None:
        """A job the backend no longer reports: wait the grace period, then trust its exit_code file."""
        if t.unseen_since is None:
            t.unseen_since = now
        if now - t.unseen_since < self.submit_policy.forgotten_grace_s:
            return None
        code = read_exit_code(t.spec.workdir)
        if code == 0:
            return JobStatus(JobState.DONE, 0)
        if code is None:
            return JobStatus(
                JobState.FAILED, None, "the batch system forgot the job and it left no exit_code"
            )
        return JobStatus(JobState.FAILED, code, f"exit code {code}")

    def _failed(self, t: _Track, status: JobStatus, now: float) -> None:
        t.exit_code = status.exit_code
        t.reason = status.reason or (
            f"exit code {status.exit_code}" if status.exit_code is not None else status.state.value
        )
        if t.tries <= self.retry_policy.max_retries:
            t.phase = _WAITING
            t.not_before = now + self.retry_policy.retry_delay_s
        else:
            t.phase = _FAILED
            t.backend_state = JobState.FAILED

    def _sleep_time(self, tracks: list[_Track], last_chunk_at: float | None) -> float:
        """The poll interval (so ``should_cancel`` stays responsive), shortened when a retry or chunk is due sooner."""
        now = self.clock()
        wait = self.submit_policy.poll_interval_s
        waiting = [t.not_before for t in tracks if t.phase == _WAITING]
        room = self.submit_policy.max_jobs_in_system - sum(t.phase == _LIVE for t in tracks)
        if waiting and room > 0:
            next_due = min(waiting)
            if last_chunk_at is not None:
                next_due = max(next_due, last_chunk_at + self.submit_policy.chunk_interval_s)
            wait = min(wait, next_due - now)
        return max(wait, 0.0)

    @staticmethod
    def _progress(tracks: list[_Track]) -> Progress:
        pending = running = done = failed = retrying = 0
        for t in tracks:
            if t.phase == _DONE:
                done += 1
            elif t.phase == _FAILED:
                failed += 1
            elif t.phase == _WAITING:
                if t.tries:
                    retrying += 1
                else:
                    pending += 1
            elif t.backend_state == JobState.RUNNING:
                running += 1
            else:
                pending += 1
        return Progress(len(tracks), pending, running, done, failed, retrying)

    def _cancel_live(self, tracks: list[_Track]) -> int:
        live = [t for t in tracks if t.phase == _LIVE and t.handle is not None]
        if live:
            try:
                self.backend.cancel([t.handle for t in live if t.handle is not None])
            except Exception as exc:  # keep the original error; say the cancel failed too
                raise JobsCancelled(
                    f"cancelling {len(live)} live job(s) on backend {self.backend.name} failed: {exc}; "
                    "they may still run: cancel them by hand"
                ) from exc
        for t in live:
            t.phase, t.backend_state, t.reason = _FAILED, JobState.CANCELLED, "cancelled"
        self._save(tracks)
        return len(live)

    # -- state file -----------------------------------------------------------------------------

    def _tracks(self, specs: Sequence[JobSpec]) -> list[_Track]:
        tracks, seen = [], set()
        for spec in specs:
            workdir = os.fspath(spec.workdir)
            key = f"{spec.name}@{workdir if os.path.isabs(workdir) else Path(workdir).absolute()}"
            if key in seen:
                raise ValueError(f"job {spec.name} appears twice with the same workdir {spec.workdir}")
            seen.add(key)
            tracks.append(_Track(spec, key))
        return tracks

    def _attach(self, tracks: list[_Track]) -> None:
        """Re-attach to jobs saved by an earlier manager; skip jobs whose exit_code says 0."""
        if self.state_file is None:
            return
        saved = self._load()
        for t in tracks:
            if read_exit_code(t.spec.workdir) == 0:
                t.phase, t.exit_code, t.backend_state = _DONE, 0, JobState.DONE
                t.ended()
                entry = saved.get(t.key)
                if entry and entry.get("job_id"):
                    t.handle = _handle_from(entry, t.spec)
                continue
            entry = saved.get(t.key)
            if entry and entry.get("job_id") and entry.get("backend") == self.backend.name:
                t.handle = _handle_from(entry, t.spec)
                t.phase, t.tries = _LIVE, int(entry.get("tries", 1))

    def _load(self) -> dict[str, dict[str, Any]]:
        assert self.state_file is not None
        try:
            data = json.loads(self.state_file.read_text())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise ValueError(
                f"job state file {self.state_file} is unreadable ({exc}); remove it to submit all jobs again"
            ) from None
        return dict(data.get("jobs", {}))

    def _save(self, tracks: list[_Track]) -> None:
        if self.state_file is None:
            return
        self.state_file.parent.mkdir(parents=True, exist_ok=True)
        # this runs after every chunk and every cycle that failed a job: each job's entry is encoded
        # once per change, not once per save (tens of ms per save at a few hundred jobs otherwise)
        jobs = ", ".join(t.entry() for t in tracks if t.handle is not None)
        atomic_write_text(self.state_file, f'{{"jobs": {{{jobs}}}, "version": 1}}')


def _handle_from(entry: dict[str, Any], spec: JobSpec) -> JobHandle:
    return JobHandle(
        backend=str(entry["backend"]),
        job_id=str(entry["job_id"]),
        name=str(entry.get("name", spec.name)),
        workdir=Path(entry.get("workdir", spec.workdir)),
    )


def _prepare_workdir(workdir: Path, tries: int) -> None:
    """Before a resubmission: drop the stale exit_code and times, keep the last try's logs as ``<log>.<try>``."""
    # plain os calls on strings: this runs for every job before its chunk is submitted, and pathlib's
    # own parsing costs about three times the system calls
    path = os.fspath(workdir)
    try:
        os.mkdir(path)  # the caller has usually made it: one system call that fails
    except FileExistsError:
        pass
    except FileNotFoundError:
        os.makedirs(path, exist_ok=True)
    for name in (EXIT_CODE_FILE, TIMES_FILE):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(path, name))
    if tries:
        for name in (STDOUT_FILE, STDERR_FILE):
            log = os.path.join(path, name)
            if os.path.exists(log):
                os.replace(log, os.path.join(path, f"{name}.{tries}"))
