"""Slurm backend against the real single-node cluster of ``.ci/services/slurm.sh``."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from b2cal_assets.backends.base import JobHandle, JobSpec, JobState, JobStatus
from b2cal_assets.backends.commands import CommandResult, SubprocessRunner
from b2cal_assets.backends.manager import JobManager, JobsCancelled, RetryPolicy, SubmitPolicy
from b2cal_assets.backends.slurm import SlurmBackend, SlurmOptions
from b2cal_assets.backends.wrapper import read_exit_code
from b2cal_assets_tests.fixtures.services import CountingRunner

pytestmark = [pytest.mark.slurm, pytest.mark.slow]


@pytest.fixture
def runner(slurm_cluster) -> CountingRunner:
    return CountingRunner(SubprocessRunner(env=slurm_cluster))


def _spec(tmp_path: Path, name: str, script: str, **kwargs) -> JobSpec:
    workdir = tmp_path / name
    workdir.mkdir(parents=True)
    return JobSpec(name, ("bash", "-c", script), workdir, **kwargs)


def _wait_for(
    backend: SlurmBackend,
    handles: list[JobHandle],
    done: Callable[[dict[str, JobStatus]], bool],
    timeout_s: float = 180,
) -> dict[str, JobStatus]:
    deadline = time.monotonic() + timeout_s
    while True:
        statuses = backend.poll(handles)
        if done(statuses):
            return statuses
        if time.monotonic() > deadline:
            pytest.fail(f"Slurm jobs did not get there in {timeout_s} s: {statuses}")
        time.sleep(0.5)


def _all_finished(handles):
    return lambda st: len(st) == len(handles) and all(s.state.finished for s in st.values())


def _our_live_jobs(slurm_cluster, handles: list[JobHandle]) -> str:
    arrays = sorted({h.job_id.partition("_")[0] for h in handles})
    proc = subprocess.run(
        ["squeue", "-h", "-r", "-o", "%i %T", "-j", ",".join(arrays)],
        env={"SLURM_CONF": slurm_cluster["SLURM_CONF"], "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=False,
    )
    return proc.stdout.strip()


def test_an_array_runs_to_the_end_and_exit_3_is_failed_with_code_3(tmp_path, runner):
    backend = SlurmBackend(runner=runner)
    specs = [
        _spec(tmp_path, "ok0", "echo out-$FOO", env={"FOO": "bar"}),
        _spec(tmp_path, "ok1", "echo two >&2"),
        _spec(tmp_path, "bad", "echo failing; exit 3"),
    ]
    handles = backend.submit(specs)
    assert runner.count("sbatch") == 1
    arrays = {h.job_id.partition("_")[0] for h in handles}
    assert len(arrays) == 1

    statuses = _wait_for(backend, handles, _all_finished(handles))
    ok0, ok1, bad = (statuses[h.job_id] for h in handles)
    assert ok0.state == JobState.DONE and ok0.exit_code == 0
    assert ok1.state == JobState.DONE
    assert bad.state == JobState.FAILED and bad.exit_code == 3
    assert (specs[0].workdir / "stdout").read_text() == "out-bar\n"
    assert (specs[1].workdir / "stderr").read_text() == "two\n"
    assert read_exit_code(specs[2].workdir) == 3


def test_scancel_cancels_a_running_job(tmp_path, runner, slurm_cluster):
    backend = SlurmBackend(runner=runner)
    spec = _spec(tmp_path, "sleeper", "echo started; sleep 300")
    handles = backend.submit([spec])
    _wait_for(backend, handles, lambda st: any(s.state == JobState.RUNNING for s in st.values()))
    backend.cancel(handles)
    statuses = _wait_for(backend, handles, _all_finished(handles), timeout_s=60)
    assert statuses[handles[0].job_id].state == JobState.CANCELLED
    assert _our_live_jobs(slurm_cluster, handles) == ""
    # the wrapper got SIGTERM and left its exit code for a manager that finds the job forgotten
    deadline = time.monotonic() + 30
    while read_exit_code(spec.workdir) is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert read_exit_code(spec.workdir) == 143


def test_jobs_purged_from_squeue_are_found_in_the_jobcomp_file(tmp_path, runner, slurm_jobcomp_file):
    backend = SlurmBackend(runner=runner)
    specs = [_spec(tmp_path, "ok", "true"), _spec(tmp_path, "bad", "exit 4")]
    handles = backend.submit(specs)
    _wait_for(backend, handles, _all_finished(handles))

    def squeue_after_min_job_age(argv, *, stdin=None):
        if argv[0] == "squeue":  # what squeue says once Slurm has purged the jobs (MinJobAge)
            return CommandResult(tuple(argv), 1, "", "slurm_load_jobs error: Invalid job id specified\n")
        return runner(argv, stdin=stdin)

    purged = SlurmBackend(runner=squeue_after_min_job_age)
    assert purged.poll(handles) == {}
    with_jobcomp = SlurmBackend(runner=squeue_after_min_job_age, jobcomp_file=slurm_jobcomp_file)
    deadline = time.monotonic() + 30
    while len(statuses := with_jobcomp.poll(handles)) < 2 and time.monotonic() < deadline:
        time.sleep(0.5)  # slurmctld appends to the file when it logs the job's end
    ok, bad = (statuses[h.job_id] for h in handles)
    assert ok.state == JobState.DONE
    assert bad.state == JobState.FAILED and bad.exit_code == 4


def test_a_held_job_is_reported_held_with_its_reason(tmp_path, runner):
    backend = SlurmBackend(options=SlurmOptions(extra_lines=("#SBATCH --hold",)), runner=runner)
    handles = backend.submit([_spec(tmp_path, "held", "true")])
    try:
        statuses = _wait_for(backend, handles, lambda st: bool(st), timeout_s=30)
        status = statuses[handles[0].job_id]
        assert status.state == JobState.HELD
        assert status.reason == "JobHeldUser"
    finally:
        backend.cancel(handles)


def test_a_job_slurm_does_not_know_gets_no_status(tmp_path, runner):
    backend = SlurmBackend(runner=runner)
    assert backend.poll([JobHandle("slurm", "987654321_0", "ghost", tmp_path)]) == {}


def test_500_subjobs_are_tracked_with_one_squeue_per_cycle(tmp_path, runner):
    backend = SlurmBackend(runner=runner)
    specs = [_spec(tmp_path, f"j{i:03d}", f"echo {i}") for i in range(500)]
    cycles = []
    manager = JobManager(
        backend,
        submit=SubmitPolicy(max_jobs_in_system=1000, chunk_size=500, poll_interval_s=2.0),
        retry=RetryPolicy(max_retries=0),
    )
    results = manager.run(specs, on_progress=cycles.append)
    assert [r.state for r in results] == [JobState.DONE] * 500
    assert runner.count("sbatch") == 1
    assert runner.count("squeue") == len(cycles)
    assert (specs[499].workdir / "stdout").read_text() == "499\n"


def test_a_subjob_that_fails_once_is_retried_and_succeeds(tmp_path, runner):
    backend = SlurmBackend(runner=runner)
    flaky = _spec(tmp_path, "flaky", "if [ -f tried ]; then echo second; else touch tried; exit 7; fi")
    steady = _spec(tmp_path, "steady", "echo fine")
    manager = JobManager(
        backend,
        submit=SubmitPolicy(poll_interval_s=0.5),
        retry=RetryPolicy(max_retries=2, retry_delay_s=1.0),
    )
    flaky_result, steady_result = manager.run([flaky, steady])
    assert flaky_result.state == JobState.DONE and flaky_result.tries == 2
    assert steady_result.state == JobState.DONE and steady_result.tries == 1
    assert (flaky.workdir / "stdout").read_text() == "second\n"
    assert runner.count("sbatch") == 2


def test_a_cancelled_run_leaves_no_job_behind(tmp_path, runner, slurm_cluster):
    backend = SlurmBackend(runner=runner)
    specs = [_spec(tmp_path, f"long{i}", "sleep 300") for i in range(6)]
    seen_running = []

    def should_cancel() -> bool:
        return bool(seen_running)

    def on_progress(progress) -> None:
        if progress.running:
            seen_running.append(progress)

    manager = JobManager(backend, submit=SubmitPolicy(poll_interval_s=0.5), retry=RetryPolicy(max_retries=0))
    with pytest.raises(JobsCancelled):
        manager.run(specs, on_progress=on_progress, should_cancel=should_cancel)
    assert runner.count("sbatch") == 1
    assert runner.count("scancel") == 1
    array_id = next(c for c in runner.calls if c[0] == "squeue")[-1]
    handles = [JobHandle("slurm", f"{array_id}_{i}", "x", tmp_path) for i in range(6)]
    deadline = time.monotonic() + 60
    while _our_live_jobs(slurm_cluster, handles) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert _our_live_jobs(slurm_cluster, handles) == ""


def _failing_squeue(tmp_path: Path, failures: int) -> Path:
    """A ``squeue`` first on PATH: its first call hangs (a timeout), the next ones fail, then the real one runs."""
    real = subprocess.run(["bash", "-c", "command -v squeue"], capture_output=True, text=True).stdout.strip()
    bindir = tmp_path / "bin"
    bindir.mkdir()
    counter = tmp_path / "squeue-calls"
    script = bindir / "squeue"
    script.write_text(
        "#!/bin/bash\n"
        f'n=$(( $(cat {counter} 2>/dev/null || echo 0) + 1 )); echo $n > {counter}\n'
        f"if [ $n -eq 1 ]; then exec sleep 5; fi\n"
        f'if [ $n -le {failures} ]; then echo "squeue: error: slurm_load_jobs error: Socket timed out" >&2; exit 1; fi\n'
        f'exec {real} "$@"\n'
    )
    script.chmod(0o755)
    return bindir


def test_squeue_failing_three_times_in_a_row_keeps_the_jobs(tmp_path, slurm_cluster):
    import os

    bindir = _failing_squeue(tmp_path, failures=3)
    env = {**slurm_cluster, "PATH": f"{bindir}:{os.environ['PATH']}"}
    runner = CountingRunner(SubprocessRunner(env=env, timeout_s=1.0))
    specs = [_spec(tmp_path, f"job{i}", "sleep 1; echo done") for i in range(3)]
    warnings: list[str] = []
    manager = JobManager(
        SlurmBackend(runner=runner),
        submit=SubmitPolicy(poll_interval_s=0.3, poll_backoff_max_s=1.0, forgotten_grace_s=30),
        retry=RetryPolicy(max_retries=2, retry_delay_s=0.1),
    )
    results = manager.run(specs, on_warning=warnings.append)
    assert [r.state for r in results] == [JobState.DONE] * 3
    assert [r.tries for r in results] == [1, 1, 1]
    assert runner.count("sbatch") == 1  # nothing resubmitted
    assert runner.count("scancel") == 0
    assert len(warnings) == 3
    assert "did not answer within 1 s" in warnings[0]  # the timeout is a failed query, not a failed job
    assert "Socket timed out" in warnings[1] and "Socket timed out" in warnings[2]
    assert int((tmp_path / "squeue-calls").read_text()) > 3
