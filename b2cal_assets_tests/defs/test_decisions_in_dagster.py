"""Decisions made on the calibration page or the CLI show in Dagster, with who made them; the loop's
runs of an expert's submission or a manager's restart carry the real submitter and reason."""

from __future__ import annotations

import dagster as dg
import pytest

from b2cal_assets.db.engine import database_url
from b2cal_assets.defs.keys import REASON_TAG, REQUESTED_BY_TAG, SUBMITTED_BY_TAG, payloads_key, signoff_key
from b2cal_assets.defs.sensors import DECISIONS_SENSOR
from b2cal_assets.loop import admin
from b2cal_assets.loop.factory import loop_service
from b2cal_assets_tests.defs import toy
from b2cal_assets_tests.defs.conftest import TOY_SCRIPTS, make_processing, make_site
from b2cal_assets_tests.defs.driver import evaluate
from b2cal_assets_tests.loop.daemon_like import Daemon

ACCEPTED = "accepted"


def service():
    return loop_service(database_url(), str(TOY_SCRIPTS))


@pytest.fixture
def manual_loop(toy_home):
    """One processing over runs 1-2 at a site where experts sign off by hand."""
    make_site(policy="manual")
    admin.register_files(toy.generate(toy_home / "data", range(1, 3)), site_name="toy_site")
    make_processing("p1", range(1, 3))
    return toy_home


def check_history(instance, calibration: str, partition: str):
    key = dg.AssetCheckKey(signoff_key(calibration), ACCEPTED)
    records = instance.event_log_storage.get_asset_check_execution_history(key, limit=20)
    return [r for r in records if r.partition == partition]  # newest first


def signoff_materializations(instance, calibration: str, partition: str):
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=signoff_key(calibration), asset_partitions=[partition]), limit=20
    ).records
    return [r.asset_materialization for r in records]


def test_a_reject_on_the_page_or_cli_fails_the_signoff_check_in_dagster(manual_loop, toy_defs):
    with dg.instance_for_test() as instance:
        daemon = Daemon(toy_defs, instance)
        daemon.settle()
        assert service().step_states("p1")["toy_a"] == "finished"
        service().sign_off("p1", "toy_a", decision="reject", by="alice", comment="offset", automatic=False)
        evaluate(toy_defs, DECISIONS_SENSOR, instance)
        (latest, *_) = check_history(instance, "toy_a", "p1")
        assert latest.status.value == "FAILED"
        metadata = latest.event.dagster_event.event_specific_data.metadata
        assert metadata["by"].value == "alice" and metadata["comment"].value == "offset"
        (mat,) = signoff_materializations(instance, "toy_a", "p1")
        assert mat.metadata["decision"].value == "reject" and mat.metadata["by"].value == "alice"


def test_an_accept_outside_dagster_materialises_the_signoff_once(manual_loop, toy_defs):
    with dg.instance_for_test() as instance:
        daemon = Daemon(toy_defs, instance)
        daemon.settle()
        service().sign_off("p1", "toy_a", decision="accept", by="alice", automatic=False)
        cursor = evaluate(toy_defs, DECISIONS_SENSOR, instance).cursor
        evaluate(toy_defs, DECISIONS_SENSOR, instance, cursor)  # the next tick reports nothing again
        (mat,) = signoff_materializations(instance, "toy_a", "p1")
        assert (mat.metadata["decision"].value, mat.metadata["by"].value) == ("accept", "alice")
        (check,) = check_history(instance, "toy_a", "p1")
        assert check.status.value == "SUCCEEDED"
        # the upstream sign-off is there: Dagster sees signoff/toy_a of p1 materialised
        assert instance.get_materialized_partitions(signoff_key("toy_a")) == {"p1"}


def test_a_reject_materialised_in_dagster_fails_its_check_and_is_not_reported_twice(manual_loop, toy_defs):
    with dg.instance_for_test() as instance:
        daemon = Daemon(toy_defs, instance)
        daemon.settle()
        result = daemon.launch(
            [signoff_key("toy_a")], "p1", user="alice", config={"decision": "reject", "comment": "bad"}
        )
        assert result.success
        assert service().step_states("p1")["toy_a"] == "rejected"
        evaluate(toy_defs, DECISIONS_SENSOR, instance)
        (check,) = check_history(instance, "toy_a", "p1")
        assert check.status.value == "FAILED"
        assert len(signoff_materializations(instance, "toy_a", "p1")) == 1


def test_managers_actions_outside_dagster_are_observations_with_who(manual_loop, toy_defs):
    with dg.instance_for_test() as instance:
        Daemon(toy_defs, instance).settle()
        service().exclude("p1", "toy_b", by="mgr", reason="detector off")
        service().reassign("p1", "toy_c", expert="dave", by="mgr")
        evaluate(toy_defs, DECISIONS_SENSOR, instance)
        seen = {}
        for calibration in ("toy_b", "toy_c"):
            records = instance.fetch_observations(
                dg.AssetRecordsFilter(asset_key=payloads_key(calibration), asset_partitions=["p1"]), limit=5
            ).records
            (observation,) = (r.asset_observation for r in records)
            seen[calibration] = (observation.metadata["decision"].value, observation.metadata["by"].value)
        assert seen == {"toy_b": ("exclude", "mgr"), "toy_c": ("reassign", "mgr")}


@pytest.fixture
def window_loop(toy_home):
    """p1 with a 48 h window at a site that starts jobs at once."""
    make_site()
    admin.register_files(toy.generate(toy_home / "data", range(1, 3)), site_name="toy_site")
    make_processing("p1", range(1, 3), window_hours=48)
    return toy_home


def deadline_of(calibration: str, processing: str = "p1"):
    (row,) = [r for r in service().status_rows(processing) if r.step == calibration]
    assert row.deadline is not None
    return row.deadline


def toy_a_request(defs, instance):
    (request,) = [
        r
        for r in evaluate(defs, "calibration_loop_sensor", instance).run_requests
        if r.run_key.split("|")[1] == "toy_a"
    ]
    return request


def test_an_experts_submission_runs_under_their_name_not_as_the_deadline_default(window_loop, toy_defs):
    with dg.instance_for_test() as instance:
        daemon = Daemon(toy_defs, instance)
        daemon.settle()  # opens the windows
        deadline = deadline_of("toy_a")
        service().submit("p1", "toy_a", by="alice", expert_config={"scale": 1.01})
        assert deadline_of("toy_a") == deadline  # the deadline is kept
        request = toy_a_request(toy_defs, instance)
        assert (request.tags[SUBMITTED_BY_TAG], request.tags[REASON_TAG], request.tags[REQUESTED_BY_TAG]) == (
            "alice",
            "submission",
            "alice",
        )
        daemon.settle()
        (materialization,) = [
            e.materialization
            for _, result in daemon.results
            for e in result.get_asset_materialization_events()
            if e.asset_key == payloads_key("toy_a")
        ]
        assert materialization.metadata["submitted_by"].value == "alice"


def test_a_managers_restart_runs_as_a_restart_by_the_manager(window_loop, toy_defs):
    with dg.instance_for_test() as instance:
        daemon = Daemon(toy_defs, instance)
        daemon.settle()
        service().submit("p1", "toy_a", by="alice", expert_config={"scale": 1.01})
        daemon.settle()
        assert service().step_states("p1")["toy_a"] in ("finished", "signed_off")
        service().sign_off("p1", "toy_a", decision="reject", by="alice", automatic=False)
        service().restart("p1", "toy_a", by="mgr")
        request = toy_a_request(toy_defs, instance)
        assert (request.tags[SUBMITTED_BY_TAG], request.tags[REASON_TAG], request.tags[REQUESTED_BY_TAG]) == (
            "alice",
            "restart",
            "mgr",
        )


def test_a_partition_that_is_not_a_processing_is_removed_by_the_loop(manual_loop, toy_defs):
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("processing", ["typo_processing"])
        evaluate(toy_defs, "calibration_loop_sensor", instance)
        assert instance.get_dynamic_partitions("processing") == ["p1"]
