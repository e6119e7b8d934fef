"""Logging in through the real slapd: passwords, groups to roles, injection, lockout, CSRF, logout."""

from __future__ import annotations

import pytest
from itsdangerous import TimestampSigner, URLSafeTimedSerializer
from starlette.testclient import TestClient

from b2cal_assets.web.config import LoginLimits
from b2cal_assets.web.sessions import SESSION_COOKIE
from b2cal_assets_tests.web.conftest import (
    SECRET_KEY,
    auth_config,
    csrf_token,
    login,
    make_app,
    search_config,
)

pytestmark = pytest.mark.ldap


def test_right_password_logs_in_with_a_safe_cookie_and_serves_the_ui(client, ldap_server, audit_log):
    response = login(client, "alice", ldap_server.password("alice"), next_path="/assets")
    assert response.status_code == 303
    assert response.headers["location"] == "/assets"
    cookie = next(h for h in response.headers.get_list("set-cookie") if h.startswith(SESSION_COOKIE + "="))
    lowered = cookie.lower()
    assert "httponly" in lowered and "samesite=lax" in lowered and "max-age=28800" in lowered
    assert "secure" not in lowered  # plain http: a Secure cookie would never come back

    page = client.get("/assets", headers={"accept": "text/html"})
    assert page.status_code == 200
    assert 'id="b2cal-user-name">alice<' in page.text and 'id="b2cal-user-role">expert<' in page.text
    assert any(e["action"] == "web.login" and e["user"] == "alice" for e in audit_log)


def test_cookie_is_secure_behind_https(web_app, ldap_server):
    with TestClient(web_app, base_url="https://b2cal.example", follow_redirects=False) as https_client:
        response = login(https_client, "bob", ldap_server.password("bob"))
    assert response.status_code == 303
    cookie = next(h for h in response.headers.get_list("set-cookie") if h.startswith(SESSION_COOKIE + "="))
    assert "secure" in cookie.lower()


def test_wrong_or_empty_password_is_refused(client, ldap_server):
    for password in ("not-her-password", ldap_server.password("bob"), ""):
        response = login(client, "alice", password)
        assert response.status_code in (400, 401), password  # empty: the form itself is incomplete
        assert SESSION_COOKIE not in client.cookies
    assert "Wrong user name or password" in login(client, "alice", "nope").text
    assert client.get("/server_info").status_code == 401


@pytest.mark.parametrize(
    ("username", "role"),
    [("alice", "expert"), ("victor", "viewer"), ("mary", "manager"), ("ada", "admin")],
)
def test_groups_map_to_roles(client, ldap_server, username, role):
    assert login(client, username, ldap_server.password(username)).status_code == 303
    page = client.get("/", headers={"accept": "text/html"})
    assert f'id="b2cal-user-role">{role}<' in page.text


def test_user_in_no_b2cal_group_cannot_log_in(client, ldap_server):
    response = login(client, "nora", ldap_server.password("nora"))
    assert response.status_code == 403
    assert "no group that may use b2cal" in response.text
    assert SESSION_COOKIE not in client.cookies


def test_role_mapping_is_configurable(web_workspace, ldap_server, audit_log):
    from dataclasses import replace

    from b2cal_assets.web.roles import Role

    config = auth_config(ldap_server)
    config = replace(config, role_groups={**config.role_groups, Role.ADMIN: ("b2cal-experts",)})
    with TestClient(make_app(web_workspace, config, audit_log), follow_redirects=False) as c:
        assert login(c, "alice", ldap_server.password("alice")).status_code == 303
        assert 'id="b2cal-user-role">admin<' in c.get("/", headers={"accept": "text/html"}).text


INJECTIONS = [
    "*",
    "a*",
    "alice)(uid=*",
    "*)(|(uid=*",
    "alice\\",
    "alice,ou=people",
    "uid=alice",
    "alice\x00",
    " alice",
]


@pytest.mark.parametrize("mode", ["dn_template", "search"])
def test_injection_in_user_names_never_logs_in(web_workspace, ldap_server, audit_log, mode):
    config = auth_config(ldap_server) if mode == "dn_template" else search_config(ldap_server)
    with TestClient(make_app(web_workspace, config, audit_log), follow_redirects=False) as c:
        for username in INJECTIONS:
            response = login(c, username, ldap_server.password("alice"))
            assert response.status_code == 401, (username, response.status_code, response.text[:300])
            assert SESSION_COOKIE not in c.cookies
        # DN-special characters in a real name are escaped, not refused
        response = login(c, "lee,k+1", ldap_server.password("lee,k+1"))
        assert response.status_code == 303, response.text
        assert 'id="b2cal-user-name">lee,k+1<' in c.get("/", headers={"accept": "text/html"}).text


def test_search_then_bind_logs_in_with_the_service_account(web_workspace, ldap_server, audit_log):
    with TestClient(
        make_app(web_workspace, search_config(ldap_server), audit_log), follow_redirects=False
    ) as c:
        assert login(c, "mary", ldap_server.password("mary")).status_code == 303
        assert 'id="b2cal-user-role">manager<' in c.get("/", headers={"accept": "text/html"}).text


def test_repeated_failures_lock_the_user_name_then_the_address(web_workspace, ldap_server, audit_log):
    limits = LoginLimits(max_failures_per_user=3, max_failures_per_address=5, lockout_seconds=600)
    with TestClient(
        make_app(web_workspace, auth_config(ldap_server, limits=limits), audit_log), follow_redirects=False
    ) as c:
        for _ in range(3):
            assert login(c, "bob", "guess").status_code == 401
        locked = login(c, "bob", ldap_server.password("bob"))  # even the right password now
        assert locked.status_code == 429
        assert "Too many failed logins" in locked.text
        assert SESSION_COOKIE not in c.cookies
        assert login(c, "BOB", ldap_server.password("bob")).status_code == 429  # same name, other case
        # another user from the same address is not locked yet ...
        assert login(c, "mary", ldap_server.password("mary")).status_code == 303
        c.cookies.clear()
        # ... until the address reaches its own limit
        for _ in range(2):
            assert login(c, "victor", "guess").status_code == 401
        assert login(c, "ada", ldap_server.password("ada")).status_code == 429


def test_login_form_needs_its_csrf_token(client, ldap_server):
    client.get("/login")
    response = client.post(
        "/login",
        data={"username": "alice", "password": ldap_server.password("alice"), "csrf_token": "forged"},
    )
    assert response.status_code == 400
    assert SESSION_COOKIE not in client.cookies


def test_logout_needs_csrf_and_ends_the_session_for_good(client, ldap_server, audit_log):
    assert login(client, "alice", ldap_server.password("alice")).status_code == 303
    stolen = client.cookies[SESSION_COOKIE]
    assert client.post("/logout", data={"csrf_token": "forged"}).status_code == 400
    assert client.get("/server_info").status_code == 200  # still logged in

    token = csrf_token(client.get("/logout").text)
    response = client.post("/logout", data={"csrf_token": token})
    assert response.status_code == 303 and response.headers["location"] == "/login"
    assert client.get("/server_info").status_code == 401
    client.cookies.set(SESSION_COOKIE, stolen)  # a copied cookie stops working too
    assert client.get("/server_info").status_code == 401
    assert any(e["action"] == "web.logout" for e in audit_log)


def test_expired_or_forged_sessions_are_refused(client):
    class NineHoursAgo(TimestampSigner):
        def get_timestamp(self) -> int:
            return super().get_timestamp() - 9 * 3600  # the default session lasts 8 h

    expired = URLSafeTimedSerializer(SECRET_KEY, salt="b2cal-session", signer=NineHoursAgo).dumps(
        {"u": "ada", "r": "admin", "s": "x"}
    )
    forged = URLSafeTimedSerializer("another-key-of-sufficient-length-000000", salt="b2cal-session").dumps(
        {"u": "ada", "r": "admin", "s": "x"}
    )
    fresh = URLSafeTimedSerializer(SECRET_KEY, salt="b2cal-session").dumps(
        {"u": "ada", "r": "admin", "s": "x"}
    )
    client.cookies.set(SESSION_COOKIE, fresh)
    assert client.get("/server_info").status_code == 200  # so it is the age, or the key, that refuses below
    for value in (expired, forged, "garbage"):
        client.cookies.set(SESSION_COOKIE, value)
        assert client.get("/server_info").status_code == 401


def test_open_redirects_after_login_are_refused(client, ldap_server):
    for target in ("//evil.example/x", "https://evil.example", "/\\evil.example"):
        response = login(client, "alice", ldap_server.password("alice"), next_path=target)
        assert response.headers["location"] == "/b2cal"  # the landing page, not elsewhere
        client.cookies.clear()
