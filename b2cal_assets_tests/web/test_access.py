"""Nothing but the login page and the health check without a session: HTTP, the GraphQL websocket and
the webserver's /report_* endpoints included; cross-site requests refused."""

from __future__ import annotations

import pytest
from starlette.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

pytestmark = pytest.mark.ldap

QUERY = "{ repositoriesOrError { __typename } }"


def test_only_login_and_health_are_public(client):
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/login").status_code == 200
    for path in ("/", "/assets", "/runs", "/server_info", "/graphql", "/logs/x/y.out", "/download_debug/abc"):
        response = client.get(path)
        assert response.status_code == 401, path
        assert "dagster" not in response.text.lower(), path
    assert client.post("/graphql", json={"query": QUERY}).status_code == 401
    page = client.get("/assets/payloads/caf_x", headers={"accept": "text/html"})
    assert page.status_code == 303
    assert page.headers["location"] == "/login?next=/assets/payloads/caf_x"


def test_report_endpoints_refused_without_login(client, web_workspace):
    from dagster import AssetKey

    key = AssetKey(["signoff", "caf_x"])
    before = web_workspace.instance.get_latest_materialization_event(key)
    for kind in ("report_asset_materialization", "report_asset_check", "report_asset_observation"):
        response = client.post(f"/{kind}/signoff/caf_x", json={"partition": "p1"})
        assert response.status_code == 401, kind
    assert web_workspace.instance.get_latest_materialization_event(key) == before


def test_graphql_websocket_refused_without_login(client):
    with (
        pytest.raises(WebSocketDisconnect) as refused,
        client.websocket_connect("/graphql", subprotocols=["graphql-ws"]) as ws,
    ):
        ws.send_json({"type": "connection_init"})
        ws.receive_json()
    assert refused.value.code == 4401


def test_graphql_websocket_after_login_carries_subscriptions_not_mutations(login_as):
    client = login_as("ada")  # even an admin: mutations go over HTTP, where they are checked
    with client.websocket_connect("/graphql", subprotocols=["graphql-ws"]) as ws:
        ws.send_json({"type": "connection_init"})
        assert ws.receive_json()["type"] == "connection_ack"
        ws.send_json({"type": "start", "id": "1", "payload": {"query": "mutation { setNuxSeen }"}})
        with pytest.raises(WebSocketDisconnect) as refused:
            ws.receive_json()
    assert refused.value.code == 4403


def test_cross_site_requests_are_refused(login_as):
    client = login_as("ada")
    evil = {"origin": "http://evil.example"}
    assert client.post("/graphql", json={"query": QUERY}, headers=evil).status_code == 403
    same = {"origin": "http://testserver"}
    assert client.post("/graphql", json={"query": QUERY}, headers=same).status_code == 200
    with (
        pytest.raises(WebSocketDisconnect),
        client.websocket_connect("/graphql", subprotocols=["graphql-ws"], headers=evil) as ws,
    ):
        ws.receive_json()


def test_mutations_only_as_json_post(login_as):
    client = login_as("ada")
    response = client.get(
        "/graphql", params={"query": "mutation { reloadWorkspace { __typename ... on Error { message } } }"}
    )
    body = response.json()
    assert body["data"]["reloadWorkspace"]["__typename"] == "UnauthorizedError"
    assert "JSON POST" in body["data"]["reloadWorkspace"]["message"]
    assert client.get("/graphql", params={"query": QUERY}).json()["data"]["repositoriesOrError"]


def test_no_session_leaks_between_clients(web_app, login_as):
    login_as("ada")
    with TestClient(web_app, follow_redirects=False) as stranger:
        assert stranger.post("/graphql", json={"query": QUERY}).status_code == 401
