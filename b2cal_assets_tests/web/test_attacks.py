"""Attacks on the permission layer (issue 10), each sent as the attacker would against the real slapd
login and the real webserver app, asserting the refusal and that nothing changed."""

from __future__ import annotations

import pytest

from b2cal_assets.db.repo import signoffs
from b2cal_assets.loop.authority import require_authority
from b2cal_assets.loop.service import LoopError
from b2cal_assets.web.graphql_guard import (
    ADMIN_ONLY,
    LAUNCHES,
    MANAGER_ONLY,
    OPEN_TO_ALL,
    REEXECUTIONS,
    TERMINATIONS,
)
from b2cal_assets_tests.web.conftest import LAUNCH, gql, launch, launch_params

pytestmark = pytest.mark.ldap

CAF_X = ["payloads", "caf_x"]
REEXECUTE = """
mutation Re($p: ReexecutionParams!) {
  launchPipelineReexecution(reexecutionParams: $p) {
    __typename ... on LaunchRunSuccess { run { runId } } ... on Error { message }
  }
}
"""

BACKFILL_MUTATION = """
mutation B($p: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $p) { __typename ... on LaunchBackfillSuccess { backfillId } ... on Error { message } }
}
"""


def runs(workspace) -> int:
    return workspace.instance.get_runs_count()


def test_reexecution_with_a_partition_tag_is_refused(login_as, web_workspace):
    """alice re-executes her own p1 run, moving it to p2 (bob's) with a tag: refused, no run."""
    alice = login_as("alice")
    run_id = launch(alice, CAF_X, "p1")["run"]["runId"]
    before = runs(web_workspace)
    for tag in ({"key": "dagster/partition", "value": "p2"}, {"key": "b2cal/user", "value": "bob"}):
        params = {"p": {"parentRunId": run_id, "strategy": "ALL_STEPS", "extraTags": [tag]}}
        result = gql(alice, REEXECUTE, params)["data"]["launchPipelineReexecution"]
        assert result["__typename"] == "UnauthorizedError", result
        assert tag["key"] in result["message"]
    assert runs(web_workspace) == before


def test_launch_with_forged_system_tags_is_refused(login_as, web_workspace):
    alice = login_as("alice")
    before = runs(web_workspace)
    for tags in ({"b2cal/user": "mary"}, {"b2cal/role": "admin"}, {"dagster/backfill": "x"}):
        result = launch(alice, CAF_X, "p1", extra_tags=tags)
        assert result["__typename"] == "UnauthorizedError", (tags, result)
    assert runs(web_workspace) == before


def test_backfill_of_own_processing_with_a_partition_tag_is_refused(login_as, web_workspace):
    alice = login_as("alice")
    before = len(web_workspace.instance.get_backfills())
    params = {
        "p": {
            "assetSelection": [{"path": CAF_X}],
            "partitionNames": ["p1"],
            "tags": [{"key": "dagster/partition", "value": "p2"}],
        }
    }
    result = gql(alice, BACKFILL_MUTATION, params)["data"]["launchPartitionBackfill"]
    assert result["__typename"] == "UnauthorizedError", result
    assert len(web_workspace.instance.get_backfills()) == before


def test_launch_cannot_reconfigure_resources(login_as, web_workspace):
    """Run config that sets a batch resource (extra_lines run as the service account) is refused."""
    alice = login_as("alice")
    before = runs(web_workspace)
    params = launch_params(CAF_X, "p1")
    params["executionParams"]["runConfigData"] = {
        "resources": {"slurm_backend": {"config": {"extra_lines": ["touch /tmp/pwned"]}}}
    }
    result = gql(alice, LAUNCH, params)["data"]["launchPipelineExecution"]
    assert result["__typename"] == "UnauthorizedError" and "resources" in result["message"], result
    assert runs(web_workspace) == before


def test_every_mutation_of_the_schema_is_classified(web_workspace):
    """Fails when Dagster adds a mutation the guard does not name (it would be admin-only, unreviewed)."""
    from dagster_graphql.schema import create_schema

    names = set(create_schema().graphql_schema.mutation_type.fields)
    known = (
        OPEN_TO_ALL
        | LAUNCHES
        | REEXECUTIONS
        | TERMINATIONS
        | MANAGER_ONLY
        | ADMIN_ONLY
        | {"launchMultipleRuns", "launchPartitionBackfill", "terminateRuns", "reportRunlessAssetEvents"}
    )
    assert names - known == set(), "classify these mutations in web/graphql_guard.py"


def test_loop_refuses_sign_off_and_launch_by_someone_not_assigned(toy_service):
    """The loop's own check: bob (an expert) is not toy_a's expert; nothing is signed off."""
    with pytest.raises(LoopError, match="assigned to alice"):
        require_authority(toy_service, "p2", "toy_a", by="bob", role="expert", action="sign off")
    with pytest.raises(LoopError, match="assigned to alice"):
        require_authority(toy_service, "p2", "toy_a", by="bob", role="", action="launch")
    with toy_service.session() as s:
        assert signoffs.list_signoffs(s, "p2", "toy_a") == []
    require_authority(toy_service, "p2", "toy_a", by="alice", role="expert", action="sign off")
    require_authority(toy_service, "p2", "toy_a", by="mary", role="manager", action="sign off")
    require_authority(toy_service, "p2", "toy_a", by="auto", role="", action="sign off")
