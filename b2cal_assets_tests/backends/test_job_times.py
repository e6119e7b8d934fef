"""Each job's own start and end travel from its wrapper through the manager to the job row and `b2cal status --jobs`."""

from __future__ import annotations

import pytest

from b2cal_assets.backends.base import JobSpec, JobState
from b2cal_assets.backends.local import LocalBackend
from b2cal_assets.backends.manager import JobManager, RetryPolicy, SubmitPolicy
from b2cal_assets.caf.runner import SubjobRecord
from b2cal_assets.cli import main
from b2cal_assets.loop.service import LoopService
from b2cal_assets_tests.defs.conftest import TOY_SCRIPTS
from b2cal_assets_tests.loop.helpers import toy_loop


def _run(tmp_path, commands, retry=None):
    specs = []
    for i, command in enumerate(commands):
        workdir = tmp_path / "jobs" / str(i)
        workdir.mkdir(parents=True)
        specs.append(JobSpec(f"toy_a.0.{i}", ("bash", "-c", command), workdir))
    manager = JobManager(
        LocalBackend(max_processes=2),
        submit=SubmitPolicy(poll_interval_s=0.05),
        retry=retry or RetryPolicy(max_retries=0),
    )
    return manager.run(specs)


def test_the_manager_reads_each_jobs_own_start_and_end(tmp_path):
    results = _run(tmp_path, ["sleep 0.2", "exit 3"])
    assert [r.state for r in results] == [JobState.DONE, JobState.FAILED]
    for r in results:  # a failed job has its times too
        assert r.started_at is not None and r.finished_at is not None
        assert r.started_at <= r.finished_at
    assert results[0].finished_at - results[0].started_at >= 0.2


def test_a_retried_job_keeps_the_times_of_its_last_try(tmp_path):
    marker = tmp_path / "tried"
    (result,) = _run(
        tmp_path,
        [f"if [ -e {marker} ]; then exit 0; fi; touch {marker}; exit 1"],
        retry=RetryPolicy(max_retries=1, retry_delay_s=0.3),
    )
    assert result.state == JobState.DONE and result.tries == 2
    assert result.started_at is not None and result.started_at >= marker.stat().st_mtime


@pytest.fixture
def service(b2cal_home, db_url, monkeypatch) -> LoopService:
    monkeypatch.setenv("B2CAL_CALIBRATIONS_DIR", str(TOY_SCRIPTS))
    monkeypatch.setenv("B2CAL_DATABASE_URL", db_url)
    return toy_loop(b2cal_home, {"p1": range(1, 3)})


def test_the_job_row_keeps_the_jobs_own_duration(tmp_path, service, capsys):
    ticket = service.begin_attempt(
        "p1", "toy_a", submitted_by="alice", expert_config={}, job_config={}, dagster_run_id="run-1"
    )
    results = _run(tmp_path, ["sleep 2.1", "true"])
    records = [
        SubjobRecord(
            "toy_a", 0, r.spec.name, r.state.value, r.exit_code, r.spec.workdir, r.tries, r.started_at, r.finished_at
        )
        for r in results
    ]
    # what the runner checkpoints and the loop records, also after a resume re-reads the checkpoint
    service.record_subjobs(ticket, "local", [SubjobRecord.from_json(r.to_json()).to_json() for r in records])
    slow, fast = service.job_rows("p1", "toy_a")
    assert slow.duration_s is not None and slow.duration_s >= 2.0  # stored to the second on MariaDB
    assert fast.duration_s is not None and fast.duration_s < slow.duration_s
    assert main(["status", "--processing", "p1", "--jobs", "--no-runs"]) == 0
    lines = capsys.readouterr().out.splitlines()
    header = next(line for line in lines if "tries" in line and "logs" in line)
    slow_line = next(line for line in lines if "toy_a/iteration_0/toy_a.0.0" in line)
    assert "ran" in header and f"{slow.duration_s:.0f} s" in slow_line
    # jobs recorded without times (an older checkpoint) have none
    service.record_subjobs(
        ticket, "local", [{"calibration": "toy_a", "iteration": 0, "name": "old", "state": "done", "exit_code": 0}]
    )
    assert service.job_rows("p1", "toy_a")[-1].duration_s is None
