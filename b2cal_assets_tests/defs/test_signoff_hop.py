"""An automatic sign-off requests its ready dependents' runs at once, not at the next loop sensor tick.

The upstream run is made as the daemon makes a loop sensor run (with a code location behind it), so
the sign-off step can queue the dependent's run in the same code location; the queue is the
instance's queued run coordinator, which nothing dequeues here: the test sees what was requested.
"""

import sys

import dagster as dg
import pytest
from dagster._core.code_pointer import ModuleCodePointer
from dagster._core.definitions.job_base import InMemoryJob
from dagster._core.execution.api import execute_run
from dagster._core.origin import JobPythonOrigin, RepositoryPythonOrigin
from dagster._core.remote_origin import InProcessCodeLocationOrigin, RemoteJobOrigin, RemoteRepositoryOrigin
from dagster._core.types.loadable_target_origin import LoadableTargetOrigin

from b2cal_assets.db.engine import database_url
from b2cal_assets.defs.hops import create_loop_run, loop_job
from b2cal_assets.defs.keys import payloads_key, signoff_key
from b2cal_assets.defs.sensors import LOOP_SENSOR, DagsterRuns
from b2cal_assets.loop import admin
from b2cal_assets.loop.factory import loop_service
from b2cal_assets_tests.defs import toy
from b2cal_assets_tests.defs.conftest import TOY_SCRIPTS, make_processing, make_site
from b2cal_assets_tests.defs.driver import evaluate

QUEUED = {"run_coordinator": {"module": "dagster._core.run_coordinator", "class": "QueuedRunCoordinator"}}
MODULE = "b2cal_assets.definitions"
JOB = "__ASSET_JOB"


def _origins() -> tuple[RemoteJobOrigin, JobPythonOrigin]:
    """Where a daemon-made run says its code is (the runs here are executed in this process)."""
    location = InProcessCodeLocationOrigin(
        LoadableTargetOrigin(executable_path=sys.executable, module_name=MODULE)
    )
    remote = RemoteJobOrigin(RemoteRepositoryOrigin(location, "__repository__"), JOB)
    code = JobPythonOrigin(
        JOB, RepositoryPythonOrigin(sys.executable, ModuleCodePointer(MODULE, "defs", None))
    )
    return remote, code


class _JobOfRepository(InMemoryJob):
    """The job as a run worker loads it: with its repository (an ``InMemoryJob`` has none)."""

    def __init__(self, job: dg.JobDefinition, repository) -> None:
        super().__init__(job)
        self.repository = repository

    def get_repository_definition(self):
        return self.repository

    def get_subset(self, **selection):
        return _JobOfRepository(super().get_subset(**selection).get_definition(), self.repository)


def _run_as_the_daemon_would(defs: dg.Definitions, request: dg.RunRequest, instance) -> dg.DagsterRun:
    job = loop_job(defs.get_repository_def())
    run = create_loop_run(instance, job, request, *_origins())
    execute_run(_JobOfRepository(job, defs.get_repository_def()), run, instance)
    ended = instance.get_run_by_id(run.run_id)
    assert ended.status == dg.DagsterRunStatus.SUCCESS, instance.all_logs(run.run_id)[-5:]
    return ended


def _loop_runs(instance, calibration: str) -> list[dg.DagsterRun]:
    return [
        r
        for r in instance.get_runs(filters=dg.RunsFilter(tags={"dagster/sensor_name": LOOP_SENSOR}))
        if payloads_key(calibration) in (r.asset_selection or set())
    ]


def _sign_off_toy_a(defs, instance, service=None) -> None:
    """The sensors' first ticks request toy_a; its run computes and signs off (automatic site).

    With ``service``, toy_a's window is open first and its expert submits (it starts at once: the
    site does not hold jobs until the deadline)."""
    evaluate(defs, "data_arrival_sensor", instance)
    if service is not None:
        evaluate(defs, "calibration_loop_sensor", instance)
        assert service.step_states("p1")["toy_a"] == "window_open"
        service.submit("p1", "toy_a", by="alice", expert_config={})
    requests = evaluate(defs, "calibration_loop_sensor", instance).run_requests
    (toy_a,) = [r for r in requests if payloads_key("toy_a") in (r.asset_selection or [])]
    _run_as_the_daemon_would(defs, toy_a, instance)


@pytest.fixture(autouse=True)
def launch_at_signoff(monkeypatch):
    monkeypatch.setenv("B2CAL_LAUNCH_AT_SIGNOFF", "true")  # experimental, off by default


@pytest.fixture
def one_processing(toy_home):
    def make(window_hours: float) -> None:
        make_site()
        admin.register_files(toy.generate(toy_home / "data", range(1, 3)), site_name="toy_site")
        make_processing("p1", range(1, 3), window_hours=window_hours)

    return make


def test_an_automatic_signoff_queues_the_dependent_once_without_a_sensor_tick(one_processing, toy_defs):
    one_processing(window_hours=0.0)
    service = loop_service(database_url(), str(TOY_SCRIPTS))
    with dg.instance_for_test(overrides=QUEUED) as instance:
        _sign_off_toy_a(toy_defs, instance)
        assert service.step_states("p1")["toy_a"] == "signed_off"
        # no sensor tick since the sign-off: toy_b's run is already waiting in Dagster's queue
        (run,) = _loop_runs(instance, "toy_b")
        assert run.status == dg.DagsterRunStatus.QUEUED
        assert run.asset_selection == {payloads_key("toy_b"), signoff_key("toy_b")}
        assert run.tags["dagster/partition"] == "p1"
        assert run.job_name == loop_job(toy_defs.get_repository_def()).name  # the sensor's own job
        assert service.step_states("p1")["toy_b"] == "submitted"
        # the loop sees it as the run of its request, so the next tick requests nothing for toy_b
        assert DagsterRuns(instance).by_key(run.tags["dagster/run_key"]).run_id == run.run_id
        again = evaluate(toy_defs, "calibration_loop_sensor", instance).run_requests
        assert [r for r in again if payloads_key("toy_b") in (r.asset_selection or [])] == []
        assert len(_loop_runs(instance, "toy_b")) == 1


def test_a_dependent_with_a_submission_window_waits_for_the_sensor(one_processing, toy_defs):
    one_processing(window_hours=1.0)
    service = loop_service(database_url(), str(TOY_SCRIPTS))
    with dg.instance_for_test(overrides=QUEUED) as instance:
        _sign_off_toy_a(toy_defs, instance, service)
        assert service.step_states("p1")["toy_a"] == "signed_off"
        assert service.step_states("p1")["toy_b"] == "window_open"
        assert _loop_runs(instance, "toy_b") == []
