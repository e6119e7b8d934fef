"""Faults between the calibration database and Dagster, through a real Dagster instance and the sensors.

Runs are executed in process, with the run-key and sensor tags the daemon gives them; the faults are
made the way they happen: a run that Dagster fails before it starts (a launch that timed out), a sensor
result that never becomes a run, a run whose worker dies before it records its end, a failed subjob
and a manager's restart. Each test counts attempts and collector subjobs: nothing lost, nothing twice.
"""

from __future__ import annotations

import dagster as dg
import pytest
from dagster._core.errors import DagsterExecutionInterruptedError
from dagster._core.storage.dagster_run import DagsterRun, DagsterRunStatus
from dagster._core.utils import make_new_run_id

from b2cal_assets import home
from b2cal_assets.cli import main
from b2cal_assets.db.engine import database_url
from b2cal_assets.db.repo import attempts, jobs
from b2cal_assets.defs.sensors import DagsterRuns
from b2cal_assets.loop.factory import loop_service
from b2cal_assets.loop.reconcile import RESUME_TAG
from b2cal_assets.loop.service import LoopService
from b2cal_assets_tests.defs.conftest import TOY_SCRIPTS, toy_loop_one  # noqa: F401
from b2cal_assets_tests.defs.driver import evaluate, sensor_tags
from b2cal_assets_tests.loop.daemon_like import Daemon, run
from b2cal_assets_tests.loop.helpers import collector_jobs

STEPS = ("toy_a", "toy_b", "cdst", "toy_c")


def service():
    return loop_service(database_url(), str(TOY_SCRIPTS))


def loop_requests(defs, instance, step=None):
    requests = evaluate(defs, "calibration_loop_sensor", instance).run_requests
    return [r for r in requests if step is None or r.run_key.split("|")[1] == step]


def fail_before_start(instance, request: dg.RunRequest, message: str) -> str:
    """What Dagster does when a launch times out: the run exists with the request's key, and fails."""
    tagged = DagsterRun(
        job_name="__ASSET_JOB",
        run_id=make_new_run_id(),
        tags=sensor_tags(request),
        status=DagsterRunStatus.NOT_STARTED,
    )
    instance.add_run(tagged)
    instance.report_run_failed(tagged, message)
    return tagged.run_id


def attempts_by_step(processing="p1") -> dict[str, list[tuple[int, str]]]:
    with service().session() as s:
        out: dict[str, list[tuple[int, str]]] = {}
        for a in attempts.list_attempts(s, processing):
            out.setdefault(a.calibration, []).append((a.number, a.state))
        return out


def subjob_dirs(processing: str, step: str, number: int):
    return sorted(
        (home.attempt_work_dir(processing, step, number) / step / "0" / "collector_output").iterdir()
    )


def settle_all(daemon: Daemon):
    for _ in range(4):
        daemon.settle()
    assert service().step_states("p1") == dict.fromkeys(STEPS, "signed_off"), service().step_states("p1")


def test_a_run_failed_before_it_started_is_launched_again(toy_loop_one, toy_defs, capsys):  # noqa: F811
    with dg.instance_for_test() as instance:
        daemon = Daemon(toy_defs, instance)
        evaluate(toy_defs, "data_arrival_sensor", instance)
        (first,) = loop_requests(toy_defs, instance, "toy_a")
        failed = fail_before_start(
            instance, first, "User code server request timed out due to taking longer than 60 seconds"
        )
        assert DagsterRuns(instance).by_key(first.run_key).status == "FAILURE"
        (again,) = loop_requests(toy_defs, instance, "toy_a")
        assert again.run_key == first.run_key + "|g1"
        daemon.launched.add(again.run_key)
        assert run(toy_defs, again, instance).success
        settle_all(daemon)
        assert attempts_by_step() == {step: [(1, "finished")] for step in STEPS}
        assert main(["status", "--processing", "p1"]) == 0
        out = capsys.readouterr().out
        assert "relaunched" not in out  # signed off: history, not a note any more
        assert main(["audit", "--processing", "p1"]) == 0
        audit = capsys.readouterr().out
        assert "loop_relaunched" in audit and failed in audit
        assert main(["tickets", "--processing", "p1"]) == 0
        assert "timed out due to taking longer than 60 seconds" in capsys.readouterr().out


def test_a_lost_sensor_result_is_requested_again(toy_loop_one, toy_defs, capsys):  # noqa: F811
    with dg.instance_for_test() as instance:
        evaluate(toy_defs, "data_arrival_sensor", instance)
        (lost,) = loop_requests(toy_defs, instance, "toy_a")  # the daemon dies before it makes the run
        assert main(["status", "--processing", "p1"]) == 0
        capsys.readouterr()
        (again,) = loop_requests(toy_defs, instance, "toy_a")
        assert again.run_key == lost.run_key
        assert main(["status", "--processing", "p1"]) == 0
        assert "requested_again" in capsys.readouterr().out
        daemon = Daemon(toy_defs, instance)
        settle_all(daemon)
        runs = [r for r in instance.get_runs() if r.tags.get("dagster/run_key", "").startswith("p1|toy_a|1|")]
        assert len([r for r in runs if r.tags["dagster/run_key"] == lost.run_key]) == 1
        assert attempts_by_step() == {step: [(1, "finished")] for step in STEPS}


def test_an_attempt_whose_worker_died_resumes_without_rerunning_subjobs(
    toy_loop_one,  # noqa: F811
    toy_defs,
    monkeypatch,
):
    real = LoopService.finish_attempt
    calls = []

    def dies_once(self, ticket, *args, **kwargs):
        calls.append(ticket.attempt_id)
        if ticket.calibration == "toy_a" and len([c for c in calls if c == ticket.attempt_id]) == 1:
            # the worker is killed after its jobs, before it records them (the database was down, say)
            raise DagsterExecutionInterruptedError("the run worker was killed")
        return real(self, ticket, *args, **kwargs)

    monkeypatch.setattr(LoopService, "finish_attempt", dies_once)
    with dg.instance_for_test() as instance:
        daemon = Daemon(toy_defs, instance)
        made = daemon.settle(max_rounds=1)
        (died,) = [r for req, r in made if req.run_key.startswith("p1|toy_a|")]
        assert not died.success
        assert attempts_by_step()["toy_a"] == [(1, "running")]  # not failed: its run was interrupted
        before = {p: (p / "exit_code").stat().st_mtime_ns for p in subjob_dirs("p1", "toy_a", 1)}
        (resume,) = loop_requests(toy_defs, instance, "toy_a")
        assert resume.tags[RESUME_TAG] == died.run_id and resume.run_key == "p1|toy_a|1|resume|g1"
        settle_all(daemon)
        assert attempts_by_step() == {step: [(1, "finished")] for step in STEPS}
        after = {p: (p / "exit_code").stat().st_mtime_ns for p in subjob_dirs("p1", "toy_a", 1)}
        assert after == before and len(after) == 2  # no subjob ran again
        assert not [f for p in after for f in p.iterdir() if f.name.startswith("stdout.")]
        with service().session() as s:
            (attempt,) = attempts.list_attempts(s, "p1", "toy_a")
            assert attempt.resumes == 1 and attempt.dagster_run_id != died.run_id
            assert len(collector_jobs(jobs.list_jobs(s, attempt.id))) == 2


def test_a_restart_with_unchanged_settings_reruns_only_the_failed_subjob(
    toy_loop_one,  # noqa: F811
    toy_defs,
    monkeypatch,
):
    broken = home.b2cal_home() / "toy_a.fail"
    broken.mkdir()
    (broken / "hadron_calib_e1_r2.root").touch()  # the node reading run 2 is broken
    with dg.instance_for_test() as instance:
        daemon = Daemon(toy_defs, instance)
        daemon.settle(max_rounds=1)
        assert attempts_by_step()["toy_a"] == [(1, "failed")]
        dirs = subjob_dirs("p1", "toy_a", 1)
        done = [p for p in dirs if (p / "exit_code").read_text().strip() == "0"]
        assert len(done) == 1
        kept = (done[0] / "exit_code").stat().st_mtime_ns
        (broken / "hadron_calib_e1_r2.root").unlink()  # the node is fixed
        assert main(["manage", "restart", "p1", "toy_a", "--user", "mgr"]) == 0
        settle_all(daemon)
        assert attempts_by_step()["toy_a"] == [(1, "failed"), (2, "finished")]
        with service().session() as s:
            second = attempts.list_attempts(s, "p1", "toy_a")[1]
            assert second.workdir == str(home.attempt_work_dir("p1", "toy_a", 1))  # its checkpoint
        assert (done[0] / "exit_code").stat().st_mtime_ns == kept  # the good subjob did not run again
        assert not [f for f in done[0].iterdir() if f.name.startswith("stdout.")]
        (again,) = [p for p in dirs if p != done[0]]
        assert (again / "exit_code").read_text().strip() == "0" and (again / "stdout.1").exists()


@pytest.mark.parametrize("state", ["STARTED", "NOT_STARTED"])
def test_the_run_of_a_restarted_attempt_is_terminated(toy_loop_one, toy_defs, state):  # noqa: F811
    with dg.instance_for_test() as instance:
        evaluate(toy_defs, "data_arrival_sensor", instance)
        (request,) = loop_requests(toy_defs, instance, "toy_a")
        stuck = DagsterRun(
            job_name="__ASSET_JOB",
            run_id=make_new_run_id(),
            tags=sensor_tags(request),
            status=DagsterRunStatus[state],
        )
        instance.add_run(stuck)
        service().begin_attempt(
            "p1", "toy_a", submitted_by="auto", expert_config={}, job_config={}, dagster_run_id=stuck.run_id
        )
        service().restart("p1", "toy_a", by="mgr")
        report = service().tick(runs=DagsterRuns(instance))
        assert report.terminate == [stuck.run_id]
        # the sensor asks the run coordinator to terminate it (the test instance's launcher cannot:
        # the sensor logs that and tries again at the next tick)
        evaluate(toy_defs, "calibration_loop_sensor", instance)
