"""`b2cal web` as a user runs it: clear errors for bad settings, the loud --no-auth mode, and the
served UI behind the LDAP login with the calibration DB deciding who is assigned and keeping the audit."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from b2cal_assets.web.serve import DAGSTER_YAML
from b2cal_assets_tests.web.conftest import LAUNCH, SECRET_KEY, TEST_DEFS_MODULE, csrf_token, launch_params

REPO = Path(__file__).resolve().parents[2]
B2CAL = [sys.executable, "-m", "b2cal_assets.cli"]


def _clean_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("B2CAL_", "DAGSTER_HOME"))}
    env["B2CAL_HOME"] = str(tmp_path / "home")
    (tmp_path / "home").mkdir(exist_ok=True)
    dagster_home = tmp_path / "dagster"
    dagster_home.mkdir(exist_ok=True)
    (dagster_home / "dagster.yaml").write_text(DAGSTER_YAML)
    env["DAGSTER_HOME"] = str(dagster_home)
    return env


def _b2cal(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([*B2CAL, *args], env=env, cwd=REPO, capture_output=True, text=True, timeout=120)


def test_missing_login_settings_are_named(tmp_path):
    env = _clean_env(tmp_path)
    result = _b2cal(["web", "-m", TEST_DEFS_MODULE], env)
    assert result.returncode == 2
    assert "B2CAL_LDAP_URL" in result.stderr and "--no-auth" in result.stderr
    assert "Traceback" not in result.stderr

    env.update(
        B2CAL_LDAP_URL="ldap://127.0.0.1:1",
        B2CAL_LDAP_USER_DN_TEMPLATE="uid={username},dc=x",
        B2CAL_LDAP_GROUP_BASE="dc=x",
    )
    result = _b2cal(["web", "-m", TEST_DEFS_MODULE], env)
    assert result.returncode == 2 and "B2CAL_SECRET_KEY" in result.stderr

    config = tmp_path / "login.yaml"
    config.write_text("ldap:\n  bind_password: hunter2\n")
    result = _b2cal(["web", "--config", str(config), "-m", TEST_DEFS_MODULE], env)
    assert result.returncode == 2 and "B2CAL_LDAP_BIND_PASSWORD" in result.stderr

    config.write_text("ldap:\n  urll: ldap://x\n")
    result = _b2cal(["web", "--config", str(config), "-m", TEST_DEFS_MODULE], env)
    assert result.returncode == 2 and "ldap.urll" in result.stderr

    result = _b2cal(["web", "--config", str(tmp_path / "nope.toml")], env)
    assert result.returncode == 2 and "does not exist" in result.stderr


def test_unknown_definitions_module_is_named(tmp_path):
    result = _b2cal(["web", "--no-auth", "-m", "no_such_module_xyz"], _clean_env(tmp_path))
    assert result.returncode == 2
    assert "no_such_module_xyz" in result.stderr and "Traceback" not in result.stderr


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Served:
    def __init__(self, args: list[str], env: dict[str, str], log: Path):
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        self._log_file = log.open("w")
        self.process = subprocess.Popen(
            [*B2CAL, "web", "--port", str(self.port), *args],
            env=env,
            cwd=REPO,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
        )

    def wait(self) -> None:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"b2cal web exited {self.process.returncode}: {self.log.read_text()[-2000:]}")
            try:
                if httpx.get(self.url + "/healthz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        pytest.fail(f"b2cal web did not answer: {self.log.read_text()[-2000:]}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log_file.close()


@pytest.fixture
def serve_b2cal(tmp_path) -> Iterator:
    started: list[Served] = []

    def _serve(args: list[str], env: dict[str, str]) -> Served:
        served = Served(args, env, tmp_path / f"web-{len(started)}.log")
        started.append(served)
        served.wait()
        return served

    yield _serve
    for served in started:
        served.stop()


@pytest.mark.slow
def test_no_auth_is_loud_on_the_console_and_in_the_page(tmp_path, serve_b2cal):
    served = serve_b2cal(["--no-auth", "-m", TEST_DEFS_MODULE], _clean_env(tmp_path))
    page = httpx.get(served.url + "/", headers={"accept": "text/html"})
    assert page.status_code == 200
    assert 'id="b2cal-no-auth-banner"' in page.text and "LOGIN IS OFF" in page.text
    assert "LOGIN IS OFF" in served.log.read_text()


@pytest.mark.slow
@pytest.mark.ldap
def test_served_with_ldap_login_db_assignments_and_audit(tmp_path, serve_b2cal, ldap_server):
    from b2cal_assets.db.engine import dispose_engine, make_engine, session_scope, upgrade_to_head
    from b2cal_assets.db.repo.audit import list_audit
    from b2cal_assets.db.repo.calibrations import ensure_calibrations
    from b2cal_assets.db.repo.processings import create_processing
    from b2cal_assets.db.repo.sites import ensure_site

    env = _clean_env(tmp_path)
    db_url = f"sqlite:///{tmp_path / 'home' / 'b2cal.db'}"
    upgrade_to_head(db_url)
    with session_scope(make_engine(db_url)) as s:
        ensure_site(s, "kek")
        create_processing(s, "p1", "prompt", "kek", (0, 1, 0, -1))
        ensure_calibrations(s, "p1", {"caf_x": "alice", "caf_y": "bob"})
    subprocess.run(  # the Dagster partition of the processing
        [
            sys.executable,
            "-c",
            "from dagster import DagsterInstance; "
            "DagsterInstance.get().add_dynamic_partitions('processing', ['p1'])",
        ],
        env=env,
        check=True,
        timeout=120,
    )
    config = tmp_path / "login.toml"
    config.write_text(
        f'[ldap]\nurl = "{ldap_server.url}"\nuser_search_base = "{ldap_server.people_dn}"\n'
        f'bind_dn = "{ldap_server.service_dn}"\ngroup_base = "{ldap_server.groups_dn}"\n'
        '[roles]\nexpert = ["b2cal-experts"]\n'
    )
    env.update(B2CAL_SECRET_KEY=SECRET_KEY, B2CAL_LDAP_BIND_PASSWORD=ldap_server.service_password)
    served = serve_b2cal(["--config", str(config), "-m", TEST_DEFS_MODULE], env)

    with httpx.Client(base_url=served.url, timeout=120) as alice:
        assert alice.post("/graphql", json={"query": "{ version }"}).status_code == 401
        token = csrf_token(alice.get("/login").text)
        response = alice.post(
            "/login",
            data={"username": "alice", "password": ldap_server.password("alice"), "csrf_token": token},
        )
        assert response.status_code == 303, response.text
        own = alice.post(
            "/graphql", json={"query": LAUNCH, "variables": launch_params(["payloads", "caf_x"], "p1")}
        )
        assert own.json()["data"]["launchPipelineExecution"]["__typename"] == "LaunchRunSuccess", own.text
        other = alice.post(
            "/graphql", json={"query": LAUNCH, "variables": launch_params(["payloads", "caf_y"], "p1")}
        )
        refused = other.json()["data"]["launchPipelineExecution"]
        assert refused["__typename"] == "UnauthorizedError" and "assigned to bob" in refused["message"]

    with session_scope(make_engine(db_url)) as s:
        entries = [(e.user, e.action, e.processing, e.calibration) for e in list_audit(s, user="alice")]
    assert ("alice", "ui.launchPipelineExecution", "p1", "caf_x") in entries
    assert ("alice", "web.login", "", "") in entries
    dispose_engine(db_url)
