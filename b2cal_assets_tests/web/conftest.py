"""Fixtures of the web tests: one Dagster workspace per session (a code server subprocess serving
``defs_for_web``), the app behind the real slapd login, and helpers to log in and send GraphQL."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
from starlette.testclient import TestClient

from b2cal_assets.loop.service import LoopService
from b2cal_assets.web.app import build_app
from b2cal_assets.web.config import AuthConfig, LdapSettings, LoginLimits, SessionSettings
from b2cal_assets.web.login import LoginService
from b2cal_assets.web.serve import DAGSTER_YAML, workspace_context
from b2cal_assets_tests.defs.conftest import TOY_SCRIPTS
from b2cal_assets_tests.fixtures.ldap import LdapServer
from b2cal_assets_tests.loop.helpers import fake_run, toy_loop

TEST_DEFS_MODULE = "b2cal_assets_tests.web.defs_for_web"
PROCESSINGS = ("p1", "p2")
# who is assigned which calibration in which processing
ASSIGNED = {("p1", "caf_x"): "alice", ("p1", "caf_y"): "bob", ("p2", "caf_x"): "bob", ("p2", "caf_y"): "bob"}
SECRET_KEY = "test-secret-key-0123456789-abcdefghijklmnop"


def assigned_expert(processing: str, calibration: str) -> str | None:
    return ASSIGNED.get((processing, calibration))


class AuditLog(list):
    """An audit sink that keeps what it is told."""

    def __call__(
        self, user: str, action: str, processing: str, calibration: str, details: dict[str, Any]
    ) -> None:
        self.append(
            {"user": user, "action": action, "processing": processing, "calibration": calibration, **details}
        )


def auth_config(ldap: LdapServer, *, limits: LoginLimits | None = None, **ldap_settings: Any) -> AuthConfig:
    settings = LdapSettings(
        url=ldap.url,
        user_dn_template=f"uid={{username}},{ldap.people_dn}",
        group_base=ldap.groups_dn,
    )
    return AuthConfig(
        ldap=replace(settings, **ldap_settings),
        secret_key=SECRET_KEY,
        session=SessionSettings(),
        limits=limits or LoginLimits(),
    )


def search_config(ldap: LdapServer, **kwargs: Any) -> AuthConfig:
    """Search-then-bind through the service account."""
    return auth_config(
        ldap,
        user_dn_template="",
        user_search_base=ldap.people_dn,
        bind_dn=ldap.service_dn,
        bind_password=ldap.service_password,
        **kwargs,
    )


@pytest.fixture(scope="session")
def dagster_home(tmp_path_factory) -> Iterator[str]:
    home = tmp_path_factory.mktemp("dagster_home")
    (home / "dagster.yaml").write_text(DAGSTER_YAML)
    old = os.environ.get("DAGSTER_HOME")
    os.environ["DAGSTER_HOME"] = str(home)
    try:
        yield str(home)
    finally:
        if old is None:
            os.environ.pop("DAGSTER_HOME", None)
        else:
            os.environ["DAGSTER_HOME"] = old


@pytest.fixture(scope="session")
def web_workspace(dagster_home):
    with workspace_context(TEST_DEFS_MODULE) as context:
        context.instance.add_dynamic_partitions("processing", list(PROCESSINGS))
        yield context


@pytest.fixture
def audit_log() -> AuditLog:
    return AuditLog()


def make_app(workspace, config: AuthConfig, audit: AuditLog):
    login = LoginService(config, audit=audit)
    return build_app(workspace, login=login, assigned_expert=assigned_expert, audit=audit)


def make_pages_app(workspace, config: AuthConfig, audit: AuditLog, service: LoopService):
    """The app whose calibration pages (``/b2cal/...``) act on ``service``."""
    login = LoginService(config, audit=audit)
    return build_app(
        workspace, login=login, assigned_expert=assigned_expert, audit=audit, loop=lambda: service
    )


@pytest.fixture
def toy_service(b2cal_home, monkeypatch) -> LoopService:
    """p1 (runs 1-2) and p2 (runs 3-4) with 48 h windows: toy_a's window open in both, and in p2 a
    finished toy_a attempt with its payloads."""
    monkeypatch.setenv("B2CAL_CALIBRATIONS_DIR", str(TOY_SCRIPTS))
    service = toy_loop(b2cal_home, {"p1": range(1, 3), "p2": range(3, 5)})
    fake_run(service, "p2", "toy_a", {"ToyA": {"mean": [2.5]}})
    return service


@pytest.fixture
def web_app(web_workspace, ldap_server, audit_log):
    return make_app(web_workspace, auth_config(ldap_server), audit_log)


@pytest.fixture
def client(web_app) -> Iterator[TestClient]:
    with TestClient(web_app, follow_redirects=False) as test_client:
        yield test_client


def csrf_token(page_html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', page_html)
    assert found, "no CSRF token in the page"
    return found.group(1)


def login(client: TestClient, username: str, password: str, next_path: str = "/"):
    token = csrf_token(client.get("/login").text)
    return client.post(
        "/login", data={"username": username, "password": password, "csrf_token": token, "next": next_path}
    )


@pytest.fixture
def login_as(web_app, ldap_server):
    """``login_as("alice")``: a client holding alice's session (password from the directory)."""
    clients: list[TestClient] = []

    def _login(username: str) -> TestClient:
        test_client = TestClient(web_app, follow_redirects=False)
        test_client.__enter__()
        clients.append(test_client)
        response = login(test_client, username, ldap_server.password(username))
        assert response.status_code == 303, response.text
        return test_client

    yield _login
    for test_client in clients:
        test_client.__exit__(None, None, None)


def gql(client: TestClient, query: str, variables: dict | None = None) -> dict:
    response = client.post("/graphql", json={"query": query, "variables": variables or {}})
    body = response.json()
    assert "data" in body, body
    return body


LAUNCH = """
mutation Launch($executionParams: ExecutionParams!) {
  launchPipelineExecution(executionParams: $executionParams) {
    __typename
    ... on LaunchRunSuccess { run { runId tags { key value } } }
    ... on Error { message }
  }
}
"""


def launch_params(asset: list[str] | None, processing: str | None, extra_tags: dict | None = None) -> dict:
    tags = [{"key": "dagster/partition", "value": processing}] if processing else []
    tags += [{"key": k, "value": v} for k, v in (extra_tags or {}).items()]
    selector = {
        "repositoryLocationName": "b2cal",
        "repositoryName": "__repository__",
        "pipelineName": "__ASSET_JOB",
    }
    if asset is not None:
        selector["assetSelection"] = [{"path": asset}]
    return {"executionParams": {"selector": selector, "mode": "default", "executionMetadata": {"tags": tags}}}


def launch(
    client: TestClient, asset: list[str] | None, processing: str | None, extra_tags: dict | None = None
) -> dict:
    return gql(client, LAUNCH, launch_params(asset, processing, extra_tags))["data"][
        "launchPipelineExecution"
    ]
