"""The local process pool: parallel limit, exit codes, cancel."""

import time

from b2cal_assets.backends.base import JobSpec, JobState
from b2cal_assets.backends.local import LocalBackend


def _specs(tmp_path, n, script):
    specs = []
    for i in range(n):
        workdir = tmp_path / f"job{i}"
        workdir.mkdir()
        specs.append(JobSpec(name=f"job{i}", argv=("bash", "-c", script), workdir=workdir))
    return specs


def _wait(backend, handles, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        statuses = backend.poll(handles)
        if all(s.state.finished for s in statuses.values()) and len(statuses) == len(handles):
            return statuses
        time.sleep(0.05)
    raise AssertionError(f"jobs did not finish: {statuses}")


def test_runs_at_most_max_processes_at_once(tmp_path):
    backend = LocalBackend(max_processes=2)
    # each job waits for a release file, so we can see how many run at the same time
    release = tmp_path / "release"
    specs = _specs(tmp_path, 5, f"touch started; while [ ! -e {release} ]; do sleep 0.05; done")
    handles = backend.submit(specs)
    assert len({h.job_id for h in handles}) == 5
    time.sleep(0.5)
    states = [s.state for s in backend.poll(handles).values()]
    assert states.count(JobState.RUNNING) == 2
    assert states.count(JobState.PENDING) == 3
    assert sum((s.workdir / "started").exists() for s in specs) <= 2
    release.touch()
    statuses = _wait(backend, handles)
    assert all(s.state == JobState.DONE and s.exit_code == 0 for s in statuses.values())
    assert all((s.workdir / "started").exists() for s in specs)


def test_failed_job_reports_its_exit_code(tmp_path):
    backend = LocalBackend()
    (handle,) = backend.submit(_specs(tmp_path, 1, "echo broken >&2; exit 7"))
    status = _wait(backend, [handle])[handle.job_id]
    assert status.state == JobState.FAILED
    assert status.exit_code == 7


def test_cancel_kills_running_and_drops_queued_jobs(tmp_path):
    backend = LocalBackend(max_processes=1, kill_timeout_s=10)
    handles = backend.submit(_specs(tmp_path, 2, "sleep 60"))
    time.sleep(0.3)
    backend.cancel(handles)
    statuses = backend.poll(handles)
    assert {s.state for s in statuses.values()} == {JobState.CANCELLED}
    # the running one was killed through the wrapper's trap
    assert (handles[0].workdir / "exit_code").read_text().strip() == "143"
    assert not (handles[1].workdir / "stdout").exists()


def test_a_new_backend_instance_follows_jobs_by_their_files(tmp_path):
    first = LocalBackend()
    (handle,) = first.submit(_specs(tmp_path, 1, "exit 0"))
    _wait(first, [handle])
    second = LocalBackend()
    assert second.poll([handle])[handle.job_id].state == JobState.DONE
