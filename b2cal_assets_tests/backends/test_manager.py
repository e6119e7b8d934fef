"""The job manager against a scripted fake backend (no processes) and the real local backend."""

import itertools
import json
from collections.abc import Sequence
from pathlib import Path

import pytest

from b2cal_assets.backends.base import BackendError, BatchBackend, JobHandle, JobSpec, JobState, JobStatus
from b2cal_assets.backends.local import LocalBackend
from b2cal_assets.backends.manager import (
    JobManager,
    JobsCancelled,
    Progress,
    RetryPolicy,
    SubmitPolicy,
    xrootd_env,
)


class FakeClock:
    def __init__(self):
        self.now = 0.0
        self.sleeps = []

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds


class FakeBackend(BatchBackend):
    """Each job runs for ``duration`` polls; ``outcomes[name]`` lists the exit code per try."""

    name = "fake"

    def __init__(self, duration=2, outcomes=None, forget=()):
        self.duration = duration
        self.outcomes = {k: list(v) for k, v in (outcomes or {}).items()}
        self.forget = set(forget)
        self.submits: list[list[str]] = []
        self.polls = 0
        self.cancelled: list[str] = []
        self.live_counts: list[int] = []
        self._jobs: dict[str, dict] = {}
        self._n = 0

    def submit(self, jobs: Sequence[JobSpec]) -> list[JobHandle]:
        self.submits.append([j.name for j in jobs])
        handles = []
        for spec in jobs:
            self._n += 1
            job_id = str(self._n)
            codes = self.outcomes.get(spec.name, [])
            code = codes.pop(0) if codes else 0
            self._jobs[job_id] = {"spec": spec, "left": self.duration, "code": code, "done": False}
            handles.append(JobHandle(self.name, job_id, spec.name, Path(spec.workdir)))
        self.live_counts.append(sum(not j["done"] for j in self._jobs.values()))
        return handles

    def poll(self, handles: Sequence[JobHandle]) -> dict[str, JobStatus]:
        self.polls += 1
        out = {}
        for h in handles:
            job = self._jobs[h.job_id]
            job["left"] -= 1
            if job["left"] > 0:
                out[h.job_id] = JobStatus(JobState.RUNNING)
                continue
            if not job["done"]:
                job["done"] = True
                (Path(h.workdir) / "exit_code").write_text(f"{job['code']}\n")
            if job["spec"].name in self.forget:
                continue
            code = job["code"]
            out[h.job_id] = JobStatus(JobState.DONE if code == 0 else JobState.FAILED, code)
        return out

    def cancel(self, handles: Sequence[JobHandle]) -> None:
        self.cancelled.extend(h.job_id for h in handles)
        for h in handles:
            self._jobs[h.job_id]["done"] = True


def _specs(tmp_path, n):
    specs = []
    for i in range(n):
        workdir = tmp_path / f"job{i}"
        workdir.mkdir(exist_ok=True)
        specs.append(JobSpec(name=f"job{i}", argv=("true",), workdir=workdir))
    return specs


def _manager(backend, clock, **kw):
    submit = kw.pop("submit", SubmitPolicy(poll_interval_s=5.0))
    return JobManager(backend, submit=submit, clock=clock, sleep=clock.sleep, **kw)


def test_chunks_and_global_limit(tmp_path):
    clock, backend = FakeClock(), FakeBackend(duration=2)
    manager = _manager(
        backend, clock, submit=SubmitPolicy(max_jobs_in_system=5, chunk_size=2, poll_interval_s=5)
    )
    results = manager.run(_specs(tmp_path, 9))
    assert [r.state for r in results] == [JobState.DONE] * 9
    assert all(len(chunk) <= 2 for chunk in backend.submits)
    assert max(backend.live_counts) <= 5
    # waiting for room never spins: a zero sleep (room just freed) is always followed by a full one
    assert all(a > 0 or b > 0 for a, b in itertools.pairwise(clock.sleeps))
    assert all(s in (0, 5) for s in clock.sleeps)
    assert sorted(name for chunk in backend.submits for name in chunk) == sorted(f"job{i}" for i in range(9))


def test_chunk_interval_spaces_submissions(tmp_path):
    clock, backend = FakeClock(), FakeBackend(duration=1)
    submit_times = []
    original = backend.submit
    backend.submit = lambda jobs: (submit_times.append(clock.now), original(jobs))[1]
    manager = _manager(
        backend, clock, submit=SubmitPolicy(chunk_size=2, chunk_interval_s=30, poll_interval_s=5)
    )
    manager.run(_specs(tmp_path, 6))
    assert len(submit_times) == 3
    assert all(b - a >= 30 for a, b in itertools.pairwise(submit_times))


def test_one_poll_per_cycle(tmp_path):
    clock, backend = FakeClock(), FakeBackend(duration=3)
    cycles = []
    _manager(backend, clock).run(_specs(tmp_path, 4), on_progress=cycles.append)
    assert backend.polls == len(cycles) == 3
    assert cycles[-1] == Progress(total=4, pending=0, running=0, done=4, failed=0, retrying=0)
    assert cycles[0].running == 4


def test_failed_once_is_retried_after_the_delay(tmp_path):
    clock, backend = FakeClock(), FakeBackend(duration=1, outcomes={"job0": [1, 0]})
    submit_times = []
    original = backend.submit
    backend.submit = lambda jobs: (submit_times.append((clock.now, [j.name for j in jobs])), original(jobs))[
        1
    ]
    progress = []
    manager = _manager(backend, clock, retry=RetryPolicy(max_retries=3, retry_delay_s=1800))
    (result,) = manager.run(_specs(tmp_path, 1), on_progress=progress.append)
    assert result.state == JobState.DONE and result.tries == 2
    assert [names for _, names in submit_times] == [["job0"], ["job0"]]
    assert submit_times[1][0] - submit_times[0][0] >= 1800
    assert any(p.retrying == 1 for p in progress)


def test_gives_up_after_max_retries(tmp_path):
    clock, backend = FakeClock(), FakeBackend(duration=1, outcomes={"job0": [2, 2, 2]})
    manager = _manager(backend, clock, retry=RetryPolicy(max_retries=2, retry_delay_s=10))
    (result,) = manager.run(_specs(tmp_path, 1))
    assert result.state == JobState.FAILED
    assert result.tries == 3 and result.exit_code == 2
    assert len(backend.submits) == 3


def test_forgotten_job_is_decided_by_its_exit_code_after_the_grace(tmp_path):
    clock, backend = FakeClock(), FakeBackend(duration=1, forget={"job0", "job1"}, outcomes={"job1": [4]})
    manager = _manager(
        backend,
        clock,
        submit=SubmitPolicy(poll_interval_s=5, forgotten_grace_s=60),
        retry=RetryPolicy(max_retries=0),
    )
    done, failed = manager.run(_specs(tmp_path, 2))
    assert done.state == JobState.DONE
    assert failed.state == JobState.FAILED and failed.exit_code == 4
    assert clock.now >= 60


def test_should_cancel_cancels_live_jobs(tmp_path):
    clock, backend = FakeClock(), FakeBackend(duration=100)
    polls = []
    with pytest.raises(JobsCancelled, match="cancelled on request"):
        _manager(backend, clock).run(
            _specs(tmp_path, 3), on_progress=polls.append, should_cancel=lambda: len(polls) >= 2
        )
    assert sorted(backend.cancelled) == ["1", "2", "3"]


def test_exception_in_progress_callback_cancels_and_raises(tmp_path):
    clock, backend = FakeClock(), FakeBackend(duration=100)

    def boom(progress):
        raise KeyboardInterrupt

    with pytest.raises(JobsCancelled) as info:
        _manager(backend, clock).run(_specs(tmp_path, 2), on_progress=boom)
    assert isinstance(info.value.__cause__, KeyboardInterrupt)
    assert len(backend.cancelled) == 2


def test_state_file_reattaches_instead_of_resubmitting(tmp_path):
    state = tmp_path / "jobs.json"
    specs = _specs(tmp_path, 3)
    clock, backend = FakeClock(), FakeBackend(duration=100)
    on_disk = []

    def crash(progress):
        # what a killed process leaves behind: the state file as it was, jobs still in the system
        on_disk.append(state.read_text())
        raise SystemExit("killed")

    backend.cancel = lambda handles: None
    with pytest.raises(SystemExit):
        _manager(backend, clock, state_file=state).run(specs, on_progress=crash)
    state.write_text(on_disk[0])
    assert len(json.loads(on_disk[0])["jobs"]) == 3
    (specs[2].workdir / "exit_code").write_text("0\n")  # job2 finished meanwhile
    for job in backend._jobs.values():
        job["left"] = 1
    results = _manager(backend, clock, state_file=state).run(specs)
    assert len(backend.submits) == 1  # nothing submitted again
    assert [r.state for r in results] == [JobState.DONE] * 3
    assert [r.handle.job_id for r in results] == ["1", "2", "3"]


def test_with_the_local_backend(tmp_path):
    specs = _specs(tmp_path, 3)
    specs = [
        JobSpec(s.name, ("bash", "-c", f"echo {s.name}; exit {i % 2}"), s.workdir)
        for i, s in enumerate(specs)
    ]
    manager = JobManager(
        LocalBackend(max_processes=2),
        submit=SubmitPolicy(poll_interval_s=0.05),
        retry=RetryPolicy(max_retries=1, retry_delay_s=0.05),
    )
    results = manager.run(specs)
    assert [r.state for r in results] == [JobState.DONE, JobState.FAILED, JobState.DONE]
    assert results[1].tries == 2 and results[1].exit_code == 1
    assert (specs[1].workdir / "stdout.1").read_text() == "job1\n"  # the first try's log is kept


def test_xrootd_env_is_five_times_the_defaults():
    env = xrootd_env()
    assert env == {
        "XRD_CONNECTIONWINDOW": "600",
        "XRD_CONNECTIONRETRY": "25",
        "XRD_REQUESTTIMEOUT": "9000",
        "XRD_STREAMTIMEOUT": "300",
    }


class FlakyBackend(FakeBackend):
    """The scheduler's status query fails ``failures`` times in a row, then answers again."""

    def __init__(self, failures, **kw):
        super().__init__(**kw)
        self.failures = failures
        self.failed_queries = 0

    def poll(self, handles):
        if self.failed_queries < self.failures:
            self.failed_queries += 1
            raise BackendError(f"squeue: slurm_load_jobs error: Socket timed out (try {self.failed_queries})")
        return super().poll(handles)


def test_failed_status_queries_in_a_row_keep_the_jobs_with_backoff(tmp_path, caplog):
    clock, backend = FakeClock(), FlakyBackend(failures=3, duration=2)
    warnings = []
    submit = SubmitPolicy(poll_interval_s=5.0, max_failed_polls=5)
    with caplog.at_level("WARNING", logger="b2cal_assets.backends.manager"):
        results = _manager(backend, clock, submit=submit).run(_specs(tmp_path, 3), on_warning=warnings.append)
    assert [r.state for r in results] == [JobState.DONE] * 3
    assert backend.submits == [["job0", "job1", "job2"]]  # nothing resubmitted
    assert backend.cancelled == []
    assert [r.tries for r in results] == [1, 1, 1]
    assert len(warnings) == 3 and "1 of 5 tolerated" in warnings[0] and "Socket timed out" in warnings[0]
    assert len([r for r in caplog.records if "status query failed" in r.message]) == 3
    assert clock.sleeps[:3] == [5.0, 10.0, 20.0]  # the wait doubles after each failed query


def test_more_failed_status_queries_than_tolerated_give_up_and_cancel(tmp_path):
    clock, backend = FakeClock(), FlakyBackend(failures=100, duration=100)
    submit = SubmitPolicy(poll_interval_s=1.0, max_failed_polls=2)
    with pytest.raises(JobsCancelled, match="status query failed 3 times in a row") as info:
        _manager(backend, clock, submit=submit).run(_specs(tmp_path, 2))
    assert isinstance(info.value.__cause__, BackendError)
    assert backend.failed_queries == 3
    assert sorted(backend.cancelled) == ["1", "2"]


def test_the_local_backend_survives_failed_status_queries(tmp_path):
    class FlakyLocal(LocalBackend):
        queries = 0

        def poll(self, handles):
            self.queries += 1
            if self.queries <= 3:
                raise BackendError(f"status query {self.queries} failed")
            return super().poll(handles)

    backend = FlakyLocal(max_processes=2)
    submitted = []
    real_submit = backend.submit
    backend.submit = lambda specs: submitted.extend(s.name for s in specs) or real_submit(specs)
    specs = [JobSpec(s.name, ("bash", "-c", "sleep 0.2"), s.workdir) for s in _specs(tmp_path, 3)]
    manager = JobManager(backend, submit=SubmitPolicy(poll_interval_s=0.02, poll_backoff_max_s=0.05))
    results = manager.run(specs)
    assert [r.state for r in results] == [JobState.DONE] * 3
    assert submitted == ["job0", "job1", "job2"] and [r.tries for r in results] == [1, 1, 1]



def test_on_done_hears_each_job_once_as_it_ends_and_a_failing_one_never(tmp_path):
    clock = FakeClock()
    backend = FakeBackend(duration=1, outcomes={"job1": [1, 1]})
    heard: list[tuple[str, int]] = []
    manager = _manager(
        backend,
        clock,
        retry=RetryPolicy(max_retries=1, retry_delay_s=0),
        submit=SubmitPolicy(max_jobs_in_system=1, poll_interval_s=5.0),
    )
    results = manager.run(
        _specs(tmp_path, 3), on_done=lambda r: heard.append((r.spec.name, len(backend.submits)))
    )
    assert [r.state for r in results] == [JobState.DONE, JobState.FAILED, JobState.DONE]
    assert [name for name, _ in heard] == ["job0", "job2"]
    assert heard[0][1] == 1  # heard before the next job was even submitted


def test_on_done_hears_a_job_an_earlier_manager_saw_finish(tmp_path):
    specs = _specs(tmp_path, 2)
    (specs[0].workdir / "exit_code").write_text("0\n")
    clock, backend = FakeClock(), FakeBackend(duration=1)
    heard = []
    manager = _manager(backend, clock, state_file=tmp_path / "jobs.json")
    manager.run(specs, on_done=lambda r: heard.append(r.spec.name))
    assert heard == ["job0", "job1"] and backend.submits == [["job1"]]


def test_an_error_in_on_done_stops_the_jobs(tmp_path):
    clock, backend = FakeClock(), FakeBackend(duration=1)

    def boom(_result):
        raise RuntimeError("registering failed")

    manager = _manager(backend, clock, submit=SubmitPolicy(max_jobs_in_system=1, poll_interval_s=5.0))
    with pytest.raises(JobsCancelled, match="registering failed"):
        manager.run(_specs(tmp_path, 2), on_done=boom)
    assert backend.submits == [["job0"]]  # the next job was never submitted
