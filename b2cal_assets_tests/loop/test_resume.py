"""Re-executing the Dagster run of a failed attempt resumes that attempt instead of starting over."""

from b2cal_assets.db.engine import database_url
from b2cal_assets.loop.factory import loop_service
from b2cal_assets.loop.service import AUTO_USER
from b2cal_assets_tests.defs.conftest import TOY_SCRIPTS, toy_home, toy_loop  # noqa: F401


def test_reexecution_resumes_the_attempt_in_its_workdir(toy_loop):  # noqa: F811
    service = loop_service(database_url(), str(TOY_SCRIPTS))
    service.tick()  # windows open; the 0 h window submits the defaults at once
    first = service.begin_attempt(
        "p1", "toy_a", submitted_by=AUTO_USER, expert_config={}, job_config={}, dagster_run_id="run-1"
    )
    service.fail_attempt(first, "node crashed", subjob="toy_a.0.1")
    assert service.step_states("p1")["toy_a"] == "failed"

    resumed = service.begin_attempt(
        "p1",
        "toy_a",
        submitted_by=AUTO_USER,
        expert_config={},
        job_config={},
        dagster_run_id="run-2",
        resume_run_ids=["run-1", "run-1"],
    )
    assert (resumed.attempt_id, resumed.number, resumed.workdir) == (first.attempt_id, 1, first.workdir)
    assert service.step_states("p1")["toy_a"] == "running"

    # a re-execution of some other run is no resume: it is a resubmission, a new attempt in a new directory
    service.fail_attempt(resumed, "again")
    again = service.begin_attempt(
        "p1",
        "toy_a",
        submitted_by="alice",
        expert_config={"scale": 1.1},
        job_config={},
        dagster_run_id="run-3",
        resume_run_ids=["unrelated"],
    )
    assert (again.number, again.expert_config) == (2, {"scale": 1.1})
    assert again.attempt_id != first.attempt_id and again.workdir != first.workdir
