"""Who may change what through the UI's GraphQL API: viewers nothing, experts their own calibrations,
managers every calibration action, admins everything; launches carry the user; all is audited."""

from __future__ import annotations

import pytest

from b2cal_assets_tests.web.conftest import gql, launch

pytestmark = pytest.mark.ldap

CAF_X = ["payloads", "caf_x"]
CAF_Y = ["payloads", "caf_y"]


def run_tags(workspace, run_id: str) -> dict[str, str]:
    return dict(workspace.instance.get_run_by_id(run_id).tags)


def test_expert_launches_own_calibration_and_is_recorded(login_as, web_workspace, audit_log):
    alice = login_as("alice")
    result = launch(alice, CAF_X, "p1")
    assert result["__typename"] == "LaunchRunSuccess", result
    tags = run_tags(web_workspace, result["run"]["runId"])
    assert tags["b2cal/user"] == "alice" and tags["b2cal/role"] == "expert"
    assert tags["dagster/partition"] == "p1"
    entry = next(e for e in audit_log if e["action"] == "ui.launchPipelineExecution")
    assert (entry["user"], entry["processing"], entry["calibration"], entry["allowed"]) == (
        "alice",
        "p1",
        "caf_x",
        True,
    )


def test_expert_signs_off_own_calibration(login_as):
    result = launch(login_as("alice"), ["signoff", "caf_x"], "p1")
    assert result["__typename"] == "LaunchRunSuccess", result


def test_expert_refused_another_experts_calibration(login_as, audit_log):
    alice = login_as("alice")
    result = launch(alice, CAF_Y, "p1")
    assert result["__typename"] == "UnauthorizedError"
    assert "assigned to bob" in result["message"] and "caf_y" in result["message"]
    # the same calibration in another processing belongs to bob too
    assert launch(alice, CAF_X, "p2")["__typename"] == "UnauthorizedError"
    refused = [e for e in audit_log if e["action"] == "ui.launchPipelineExecution" and not e["allowed"]]
    assert refused and refused[0]["user"] == "alice"


def test_expert_refused_without_partition_or_outside_calibrations(login_as):
    alice = login_as("alice")
    assert "no" in launch(alice, CAF_X, None)["message"]
    assert launch(alice, ["cdst", "cdst"], "p1")["__typename"] == "UnauthorizedError"
    assert launch(alice, None, "p1")["__typename"] == "UnauthorizedError"  # a whole job


def test_viewer_refused_every_mutation_but_can_query(login_as, web_workspace):
    victor = login_as("victor")
    result = launch(victor, CAF_X, "p1")
    assert result["__typename"] == "UnauthorizedError"
    for mutation in (
        'terminateRun(runId: "nope") { __typename }',
        'addDynamicPartition(partitionKey: "p9", partitionsDefName: "processing", repositorySelector: '
        '{repositoryName: "__repository__", repositoryLocationName: "b2cal"}) { __typename }',
        "reloadWorkspace { __typename }",
        'wipeAssets(assetPartitionRanges: [{assetKey: {path: ["payloads", "caf_x"]}}]) { __typename }',
        'reportRunlessAssetEvents(eventParams: {eventType: MATERIALIZATION, assetKey: {path: ["signoff", "caf_x"]}, '
        'partitionKeys: ["p1"]}) { __typename }',
        'setConcurrencyLimit(concurrencyKey: "k", limit: 1)',
    ):
        body = gql(victor, f"mutation {{ {mutation} }}")
        value = next(iter(body["data"].values())) if body["data"] else None
        assert (value is None and body.get("errors")) or value["__typename"] == "UnauthorizedError", (
            mutation,
            body,
        )
    assert "p9" not in web_workspace.instance.get_dynamic_partitions("processing")
    assets = gql(victor, "{ assetNodes { assetKey { path } } }")["data"]["assetNodes"]
    assert {"payloads/caf_x", "signoff/caf_x", "cdst/cdst"} <= {
        "/".join(a["assetKey"]["path"]) for a in assets
    }


def test_viewer_gets_the_read_only_ui(login_as):
    perms = gql(login_as("victor"), "{ permissions { permission value } }")["data"]["permissions"]
    assert not {p["permission"]: p["value"] for p in perms}["launch_pipeline_execution"]
    perms = gql(login_as("alice"), "{ permissions { permission value } }")["data"]["permissions"]
    assert {p["permission"]: p["value"] for p in perms}["launch_pipeline_execution"]


REEXECUTE = """
mutation Re($p: ReexecutionParams!) {
  launchPipelineReexecution(reexecutionParams: $p) {
    __typename ... on LaunchRunSuccess { run { runId } } ... on Error { message }
  }
}
"""


def test_reexecution_only_by_the_assigned_expert(login_as, web_workspace):
    run_id = launch(login_as("alice"), CAF_X, "p1")["run"]["runId"]
    params = {"p": {"parentRunId": run_id, "strategy": "ALL_STEPS"}}
    bob = gql(login_as("bob"), REEXECUTE, params)["data"]["launchPipelineReexecution"]
    assert bob["__typename"] == "UnauthorizedError" and "assigned to alice" in bob["message"]
    again = gql(login_as("alice"), REEXECUTE, params)["data"]["launchPipelineReexecution"]
    # the re-execution itself may fail for a run that never ran; what matters is it was not refused
    assert again["__typename"] != "UnauthorizedError", again
    if again["__typename"] == "LaunchRunSuccess":
        assert run_tags(web_workspace, again["run"]["runId"])["b2cal/user"] == "alice"


BACKFILL = """
mutation B($p: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $p) { __typename ... on LaunchBackfillSuccess { backfillId } ... on Error { message } }
}
"""


def test_backfills_checked_per_processing(login_as, web_workspace):
    alice = login_as("alice")
    own = {"p": {"assetSelection": [{"path": CAF_X}], "partitionNames": ["p1"]}}
    result = gql(alice, BACKFILL, own)["data"]["launchPartitionBackfill"]
    assert result["__typename"] == "LaunchBackfillSuccess", result
    backfill = web_workspace.instance.get_backfill(result["backfillId"])
    assert backfill.tags["b2cal/user"] == "alice"
    both = {"p": {"assetSelection": [{"path": CAF_X}], "partitionNames": ["p1", "p2"]}}
    assert gql(alice, BACKFILL, both)["data"]["launchPartitionBackfill"]["__typename"] == "UnauthorizedError"
    every = {"p": {"assetSelection": [{"path": CAF_X}], "allPartitions": True}}
    assert gql(alice, BACKFILL, every)["data"]["launchPartitionBackfill"]["__typename"] == "UnauthorizedError"


TERMINATE = "mutation T($id: String!) { terminateRun(runId: $id) { __typename ... on Error { message } } }"


def test_stopping_a_run_follows_the_calibration(login_as):
    run_id = launch(login_as("alice"), CAF_X, "p1")["run"]["runId"]
    assert (
        gql(login_as("bob"), TERMINATE, {"id": run_id})["data"]["terminateRun"]["__typename"]
        == "UnauthorizedError"
    )
    assert (
        gql(login_as("alice"), TERMINATE, {"id": run_id})["data"]["terminateRun"]["__typename"]
        != "UnauthorizedError"
    )


def add_partition(client, key: str) -> dict:
    return gql(
        client,
        f'mutation {{ addDynamicPartition(partitionKey: "{key}", partitionsDefName: "processing", '
        'repositorySelector: {repositoryName: "__repository__", repositoryLocationName: "b2cal"}) '
        "{ __typename ... on Error { message } } }",
    )["data"]["addDynamicPartition"]


def test_manager_may_do_every_calibration_action_but_not_admin_things(login_as, web_workspace, b2cal_home):
    from b2cal_assets.db.engine import database_url, ensure_schema
    from b2cal_assets.loop import admin
    from b2cal_assets_tests.loop.conftest import add_processing, add_site

    mary = login_as("mary")
    assert launch(mary, CAF_Y, "p1")["__typename"] == "LaunchRunSuccess"
    assert launch(mary, ["cdst", "cdst"], "p2")["__typename"] == "LaunchRunSuccess"
    ensure_schema(database_url())
    add_site("site_p3")
    admin.write_global_tag("toy_base", {"ToyA": {"mean": [0.0]}})
    add_processing("p3", "site_p3")
    added = add_partition(mary, "p3")
    assert added["__typename"] == "AddDynamicPartitionSuccess", added
    reload = gql(mary, "mutation { reloadWorkspace { __typename ... on Error { message } } }")["data"][
        "reloadWorkspace"
    ]
    assert reload["__typename"] == "UnauthorizedError" and "admins only" in reload["message"]
    # a mutation this project does not know is for admins only
    body = gql(mary, 'mutation { setConcurrencyLimit(concurrencyKey: "k", limit: 1) }')
    assert body["data"] is None or body["data"]["setConcurrencyLimit"] is None
    assert "admins only" in body["errors"][0]["message"]


def test_admin_may_do_everything(login_as):
    ada = login_as("ada")
    assert launch(ada, CAF_Y, "p2")["__typename"] == "LaunchRunSuccess"
    assert (
        gql(ada, 'mutation { setConcurrencyLimit(concurrencyKey: "k", limit: 1) }')["data"][
            "setConcurrencyLimit"
        ]
        is True
    )


def test_report_endpoints_need_a_manager(login_as, web_workspace):
    from dagster import AssetKey

    key = AssetKey(["signoff", "caf_x"])
    before = web_workspace.instance.get_latest_materialization_event(key)
    for user in ("victor", "alice"):
        response = login_as(user).post(
            "/report_asset_materialization/signoff/caf_x", json={"partition": "p1"}
        )
        assert response.status_code == 403, user
    assert web_workspace.instance.get_latest_materialization_event(key) == before
    response = login_as("mary").post("/report_asset_materialization/signoff/caf_x", json={"partition": "p1"})
    assert response.status_code == 200, response.text
    assert web_workspace.instance.get_latest_materialization_event(key) != before


def test_a_partition_that_is_not_a_processing_is_refused(login_as, web_workspace, b2cal_home):
    from b2cal_assets.db.engine import database_url, ensure_schema

    ensure_schema(database_url())
    refused = add_partition(login_as("mary"), "typo_processing")
    assert refused["__typename"] == "UnauthorizedError"
    assert "'typo_processing' is not a processing" in refused["message"]
    assert "b2cal processing create" in refused["message"]
    assert "typo_processing" not in web_workspace.instance.get_dynamic_partitions("processing")
