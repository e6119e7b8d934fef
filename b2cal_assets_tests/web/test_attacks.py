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


# -- item 3: the lockout counts names as the directory does, and holds under parallel guesses ----


def _counting_app(web_workspace, ldap_server, audit_log, limits):
    from b2cal_assets.web.app import build_app
    from b2cal_assets.web.ldap_auth import LdapAuthenticator
    from b2cal_assets.web.login import LoginService
    from b2cal_assets_tests.web.conftest import assigned_expert, auth_config

    config = auth_config(ldap_server, limits=limits)
    real = LdapAuthenticator(config.ldap).authenticate
    calls: list[str] = []

    def counted(username: str, password: str):
        calls.append(username)
        return real(username, password)

    login_service = LoginService(config, authenticate=counted, audit=audit_log)
    app = build_app(web_workspace, login=login_service, assigned_expert=assigned_expert, audit=audit_log)
    return app, calls


def test_thirty_parallel_guesses_reach_ldap_at_most_the_limit(web_workspace, ldap_server, audit_log):
    from concurrent.futures import ThreadPoolExecutor

    from starlette.testclient import TestClient

    from b2cal_assets.web.config import LoginLimits
    from b2cal_assets_tests.web.conftest import login

    limits = LoginLimits(max_failures_per_user=5, max_failures_per_address=100, lockout_seconds=600)
    app, calls = _counting_app(web_workspace, ldap_server, audit_log, limits)

    def guess(i: int) -> int:
        with TestClient(app, follow_redirects=False) as c:
            return login(c, "bob", f"guess-{i}").status_code

    with ThreadPoolExecutor(max_workers=10) as pool:
        codes = list(pool.map(guess, range(30)))
    assert len(calls) <= 5, calls
    assert codes.count(401) == len(calls) and codes.count(429) == 30 - len(calls)
    assert not any(e["action"] == "web.login" for e in audit_log)


def test_lockout_counts_names_as_the_directory_compares_them(web_workspace, ldap_server, audit_log):
    from starlette.testclient import TestClient

    from b2cal_assets.web.config import LoginLimits
    from b2cal_assets.web.sessions import SESSION_COOKIE
    from b2cal_assets_tests.web.conftest import login

    limits = LoginLimits(max_failures_per_user=3, max_failures_per_address=100, lockout_seconds=600)
    app, calls = _counting_app(web_workspace, ldap_server, audit_log, limits)
    with TestClient(app, follow_redirects=False) as c:
        for name in ("bob", "BOB", "\uff42\uff4f\uff42"):  # the last is fullwidth "bob" (NFKC: bob)
            assert login(c, name, "guess").status_code == 401
        before = len(calls)
        assert login(c, "\uff22\uff2f\uff22", ldap_server.password("bob")).status_code == 429
        assert len(calls) == before and SESSION_COOKIE not in c.cookies


# -- item 7: a directory user named like the loop's automatic user cannot pass as it -------------


def test_directory_user_named_like_the_automatic_user_cannot_log_in(client, ldap_server, audit_log):
    from b2cal_assets.web.sessions import SESSION_COOKIE
    from b2cal_assets_tests.web.conftest import login

    response = login(client, "Auto", ldap_server.password("Auto"))
    assert response.status_code == 403 and "loop uses for itself" in response.text
    assert SESSION_COOKIE not in client.cookies
    assert not any(e["action"] == "web.login" for e in audit_log)


# -- item 5: proxy headers only from configured proxies ------------------------------------------


def test_forwarded_headers_from_an_unconfigured_peer_are_ignored(monkeypatch):
    """A local process sending X-Forwarded-For from 127.0.0.1 cannot pose as another client."""
    import asyncio

    from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

    from b2cal_assets.web.serve import uvicorn_config

    seen: list = []

    async def app(scope, receive, send):
        seen.append((scope["client"], scope["scheme"]))

    def served_as(proxies: str | None):
        if proxies is None:
            monkeypatch.delenv("B2CAL_TRUSTED_PROXIES", raising=False)
        else:
            monkeypatch.setenv("B2CAL_TRUSTED_PROXIES", proxies)
        config = uvicorn_config(app, host="127.0.0.1", port=0)
        config.load()
        scope = {
            "type": "http",
            "client": ("127.0.0.1", 5555),
            "scheme": "http",
            "headers": [(b"x-forwarded-for", b"203.0.113.9"), (b"x-forwarded-proto", b"https")],
        }
        seen.clear()
        asyncio.run(config.loaded_app(scope, None, None))
        return isinstance(getattr(config.loaded_app, "app", None), ProxyHeadersMiddleware), seen[0]

    wrapped, (client, scheme) = served_as(None)
    assert not wrapped and client == ("127.0.0.1", 5555) and scheme == "http"
    wrapped, (client, scheme) = served_as("127.0.0.1")
    assert client[0] == "203.0.113.9" and scheme == "https"


# -- item 6: --no-auth still checks Host and Origin, and serves loopback only ---------------------


def test_no_auth_refuses_rebound_hosts_and_cross_site_launches(web_workspace):
    from starlette.testclient import TestClient

    from b2cal_assets.web.app import build_app

    app = build_app(web_workspace, login=None)
    before = runs(web_workspace)
    params = launch_params(CAF_X, "p1")
    with TestClient(app, base_url="http://127.0.0.1:3000") as local:
        evil = local.post(
            "/graphql",
            json={"query": LAUNCH, "variables": params},
            headers={"origin": "http://evil.example"},
        )
        assert evil.status_code == 403
        assert local.get("/server_info").status_code == 200
    with TestClient(app, base_url="http://rebound.evil.example:3000") as rebound:
        response = rebound.post("/graphql", json={"query": LAUNCH, "variables": params})
        assert response.status_code == 403 and "Host" in response.json()["error"]
    assert runs(web_workspace) == before


def test_no_auth_will_not_listen_beyond_loopback():
    import argparse

    from b2cal_assets.cli import UserError, web

    parser = argparse.ArgumentParser()
    web.register(parser.add_subparsers())
    args = parser.parse_args(["web", "--no-auth", "--host", "0.0.0.0"])
    with pytest.raises(UserError, match="loopback"):
        args.func(args)


# -- item 7: framing, oversized logins, batched GraphQL ------------------------------------------


def test_ui_pages_cannot_be_framed(client, login_as):
    for response in (client.get("/login"), login_as("victor").get("/", headers={"accept": "text/html"})):
        assert response.status_code == 200
        assert response.headers["x-frame-options"] == "DENY"
        assert "frame-ancestors 'none'" in response.headers["content-security-policy"]


def test_an_oversized_login_is_refused_before_ldap_is_asked(web_workspace, ldap_server, audit_log):
    from starlette.testclient import TestClient

    from b2cal_assets.web.config import LoginLimits
    from b2cal_assets_tests.web.conftest import csrf_token

    app, calls = _counting_app(web_workspace, ldap_server, audit_log, LoginLimits())
    with TestClient(app, follow_redirects=False) as c:
        token = csrf_token(c.get("/login").text)
        response = c.post(
            "/login", data={"username": "alice", "password": "x" * (2 << 20), "csrf_token": token}
        )
    assert response.status_code == 413
    assert calls == []


def test_a_batched_graphql_array_gets_a_clear_400(login_as, web_workspace):
    ada = login_as("ada")
    before = runs(web_workspace)
    operation = {"query": LAUNCH, "variables": launch_params(CAF_X, "p1")}
    response = ada.post("/graphql", json=[operation, operation])
    assert response.status_code == 400 and "one operation per request" in response.json()["error"]
    assert runs(web_workspace) == before
    assert ada.post("/graphql", json={"query": "{ version }"}).status_code == 200


# -- item 4: logout and role changes reach every worker and survive a restart --------------------


@pytest.fixture
def session_db(b2cal_home):
    from b2cal_assets.db.engine import database_url, ensure_schema, make_engine

    url = database_url()
    ensure_schema(url)
    return make_engine(url)


def _app_with_store(web_workspace, config, audit_log, store):
    from b2cal_assets.web.app import build_app
    from b2cal_assets.web.login import LoginService
    from b2cal_assets_tests.web.conftest import assigned_expert

    login_service = LoginService(config, audit=audit_log, session_store=store)
    return build_app(web_workspace, login=login_service, assigned_expert=assigned_expert, audit=audit_log)


def test_a_logged_out_cookie_is_refused_by_every_worker_and_after_a_restart(
    web_workspace, ldap_server, audit_log, session_db
):
    from starlette.testclient import TestClient

    from b2cal_assets.web.session_store import DbSessionStore
    from b2cal_assets.web.sessions import SESSION_COOKIE
    from b2cal_assets_tests.web.conftest import auth_config, csrf_token, login

    config = auth_config(ldap_server)
    worker_a = _app_with_store(web_workspace, config, audit_log, DbSessionStore(session_db))
    worker_b = _app_with_store(web_workspace, config, audit_log, DbSessionStore(session_db))
    with TestClient(worker_a, follow_redirects=False) as a, TestClient(worker_b, follow_redirects=False) as b:
        assert login(a, "alice", ldap_server.password("alice")).status_code == 303
        stolen = a.cookies[SESSION_COOKIE]
        b.cookies.set(SESSION_COOKIE, stolen)
        assert b.get("/server_info").status_code == 200
        assert a.post("/logout", data={"csrf_token": csrf_token(a.get("/logout").text)}).status_code == 303
        assert b.get("/server_info").status_code == 401  # the other worker
        before = runs(web_workspace)
        assert (
            b.post("/graphql", json={"query": LAUNCH, "variables": launch_params(CAF_X, "p1")}).status_code
            == 401
        )
        assert runs(web_workspace) == before
    restarted = _app_with_store(web_workspace, config, audit_log, DbSessionStore(session_db))
    with TestClient(restarted, follow_redirects=False) as c:
        c.cookies.set(SESSION_COOKIE, stolen)
        assert c.get("/server_info").status_code == 401


def test_a_user_removed_from_every_group_loses_the_session_at_the_next_refresh(
    web_workspace, ldap_server, audit_log, session_db
):
    """nora's session says expert (as if she was in b2cal-experts at login); LDAP now gives her no group."""
    from starlette.testclient import TestClient

    from b2cal_assets.web.login import ldap_role_lookup
    from b2cal_assets.web.roles import Role
    from b2cal_assets.web.session_store import DbSessionStore
    from b2cal_assets.web.sessions import SESSION_COOKIE, SessionCodec
    from b2cal_assets_tests.web.conftest import search_config

    config = search_config(ldap_server)
    lookup = ldap_role_lookup(config)
    assert lookup("mary") == Role.MANAGER and lookup("nora") is None  # the real directory, re-read
    store = DbSessionStore(session_db, refresh=lookup, refresh_seconds=0)
    app = _app_with_store(web_workspace, config, audit_log, store)
    with TestClient(app, follow_redirects=False) as c:
        value, _user = SessionCodec(config.secret_key, config.session, store).issue("nora", Role.EXPERT)
        c.cookies.set(SESSION_COOKIE, value)
        before = runs(web_workspace)
        response = c.post("/graphql", json={"query": LAUNCH, "variables": launch_params(CAF_X, "p1")})
        assert response.status_code == 401
        assert runs(web_workspace) == before
        mary_value, _ = SessionCodec(config.secret_key, config.session, store).issue("mary", Role.VIEWER)
        c.cookies.set(SESSION_COOKIE, mary_value)  # promoted since: the fresh role counts
        assert 'id="b2cal-user-role">manager<' in c.get("/", headers={"accept": "text/html"}).text


def test_a_csrf_token_from_another_session_is_refused(login_as, ldap_server):
    """victor's valid token and nonce, planted in alice's browser, cannot log alice out."""
    from b2cal_assets.web.sessions import CSRF_COOKIE
    from b2cal_assets_tests.web.conftest import csrf_token

    victor = login_as("victor")
    token = csrf_token(victor.get("/logout").text)
    nonce = victor.cookies[CSRF_COOKIE]
    alice = login_as("alice")
    alice.cookies.set(CSRF_COOKIE, nonce)
    assert alice.post("/logout", data={"csrf_token": token}).status_code == 400
    assert alice.get("/server_info").status_code == 200  # still logged in: nothing changed
    own = csrf_token(alice.get("/logout").text)
    assert alice.post("/logout", data={"csrf_token": own}).status_code == 303
