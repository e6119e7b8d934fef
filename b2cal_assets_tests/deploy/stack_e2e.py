"""The deployment for real (`make deploy-test`): images built, the compose stack up, a processing to the end.

Needs a Docker API: Docker itself, or podman's (``.ci/services/podman.sh``, started here if
``DOCKER_HOST`` is unset). The file is not collected by a plain ``pytest`` (its name): it builds images
and runs a whole loop in containers, minutes of work; ``make deploy-test`` names it.

The stack is compose project ``b2cal`` with its named volumes: the test starts from empty volumes and
removes them at the end, so do not run it on a machine whose deployment you want to keep.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from b2cal_assets_tests.deploy.engine import LOCAL_BASE, REPO, STATE, exports, uses_podman
from b2cal_assets_tests.fixtures.home import skip_or_fail
from b2cal_assets_tests.fixtures.ldap import GROUPS_DN, PEOPLE_DN, running_slapd

pytestmark = [pytest.mark.slow, pytest.mark.ldap, pytest.mark.timeout(3600)]

DOCKER = REPO / "docker"
# the stack with the optional overlay: run containers may start job containers (the framework's)
COMPOSE_FILES = ("-f", str(DOCKER / "compose.yaml"), "-f", str(DOCKER / "compose.container-jobs.yaml"))
GATEWAY = "172.29.80.1"  # the host on the stack's network (docker/compose.yaml's subnet)
HTTPS_PORT = 18443
PROCESSING = "prompt_deploy"
SITE = "deploy_site"
DATA = "/data/b2cal/data"
LOOP_TIMEOUT_S = 1800


@dataclass
class Stack:
    compose: str
    env: dict[str, str]
    tls_dir: Path

    def run(self, *args: str, check: bool = True, timeout: float = 900) -> subprocess.CompletedProcess:
        done = subprocess.run(
            [self.compose, *COMPOSE_FILES, *args],
            env=self.env,
            cwd=DOCKER,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and done.returncode != 0:
            pytest.fail(
                f"docker compose {' '.join(args)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
            )
        return done

    def cli(self, *args: str, stdin: str | None = None) -> str:
        """A command inside the code-server container (as its user, b2cal)."""
        cmd = [self.compose, *COMPOSE_FILES, "exec", "-T", "codeserver", *args]
        done = subprocess.run(
            cmd, env=self.env, cwd=DOCKER, capture_output=True, text=True, input=stdin, timeout=300
        )
        assert done.returncode == 0, f"{' '.join(args)}: {done.stderr}{done.stdout}"
        return done.stdout

    def up(self) -> None:
        self.run("up", "-d", "--wait", "--wait-timeout", "600", timeout=900)

    def docker(self, *args: str) -> str:
        done = subprocess.run(["docker", *args], env=self.env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        return done.stdout

    def status(self, processing: str = PROCESSING) -> list[dict]:
        return json.loads(self.cli("b2cal", "status", "--processing", processing, "--json"))[processing][
            "calibrations"
        ]

    def wait_signed_off(self, processing: str) -> list[dict]:
        """The processing's calibrations once all are signed off (or excluded); fails on the first failure."""
        deadline = time.monotonic() + LOOP_TIMEOUT_S
        rows: list[dict] = []
        while time.monotonic() < deadline:
            rows = self.status(processing)
            if rows and all(r["state"] in ("signed_off", "excluded") for r in rows):
                break
            failed = [r for r in rows if r["state"] in ("failed", "rejected")]
            assert not failed, failed
            time.sleep(10)
        assert rows and all(r["state"] == "signed_off" for r in rows), [(r["step"], r["state"]) for r in rows]
        assert all(r["payloads"] > 0 for r in rows if r["step"].startswith("caf_")), rows
        return rows

    def https(self) -> httpx.Client:
        verify = ssl.create_default_context(cafile=str(self.tls_dir / "server.crt"))
        return httpx.Client(base_url=f"https://localhost:{HTTPS_PORT}", verify=verify, timeout=30)


def _tls(directory: Path) -> Path:
    """A self-signed certificate for localhost, made for this test."""
    directory.mkdir()
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
         "-keyout", str(directory / "server.key"), "-out", str(directory / "server.crt")],
        check=True, capture_output=True,
    )  # fmt: skip
    (directory / "server.key").chmod(0o644)  # read by nginx's master in the container
    return directory


def _extra_cas() -> None:
    """This machine's TLS-inspecting proxy's CAs, for pip in the image build (docker/ca-certificates/)."""
    for crt in Path("/usr/local/share/ca-certificates").glob("*.crt"):
        shutil.copy(crt, DOCKER / "ca-certificates" / crt.name)


@pytest.fixture(scope="module")
def stack(tmp_path_factory) -> Iterator[Stack]:
    env = dict(os.environ)
    local_engine = uses_podman(env)
    if local_engine:
        env.update(exports("podman.sh"))
    compose = env.get("B2CAL_COMPOSE") or exports("compose.sh")["B2CAL_COMPOSE"]
    if not shutil.which("openssl"):
        skip_or_fail("openssl is needed for the test's TLS certificate")
    socket_path = env.get("DOCKER_HOST", "unix:///var/run/docker.sock").removeprefix("unix://")
    root = tmp_path_factory.mktemp("deploy")
    tls_dir = _tls(root / "tls")
    _extra_cas()
    slapd_root = STATE / "deploy-slapd"  # a known place: .ci/deploy-teardown.sh stops it by its pid file
    if (slapd_root / "slapd.pid").exists():
        subprocess.run(["bash", str(REPO / ".ci" / "deploy-teardown.sh")], check=False, capture_output=True)
    shutil.rmtree(slapd_root, ignore_errors=True)
    with running_slapd(slapd_root, listen="0.0.0.0") as ldap:
        port = ldap.url.rsplit(":", 1)[1]
        env.update(
            MARIADB_ROOT_PASSWORD="root-" + os.urandom(8).hex(),
            B2CAL_DB_PASSWORD="db-" + os.urandom(8).hex(),
            B2CAL_SECRET_KEY=os.urandom(32).hex(),
            B2CAL_LDAP_URL=f"ldap://{GATEWAY}:{port}",
            B2CAL_LDAP_USER_DN_TEMPLATE=f"uid={{username}},{PEOPLE_DN}",
            B2CAL_LDAP_GROUP_BASE=GROUPS_DN,
            B2CAL_TLS_DIR=str(tls_dir),
            B2CAL_HTTPS_PORT=f"127.0.0.1:{HTTPS_PORT}",
            B2CAL_HTTP_PORT="127.0.0.1:18080",
            DOCKER_SOCKET=socket_path,
            DOCKER_GID=str(os.stat(socket_path).st_gid),
            B2CAL_BATCH_POLL_INTERVAL_S="1",
            DOCKER_BUILDKIT="0",  # the classic builder: BuildKit would pull its own image from a registry
        )
        if local_engine:
            env.update(B2CAL_PYTHON_BASE_IMAGE=LOCAL_BASE, B2CAL_DEBIAN_BASE_IMAGE=LOCAL_BASE)
        stack = Stack(compose, env, tls_dir)
        _remove_run_containers(stack)  # first: they hold the data volume, which `down -v` then removes
        stack.run("down", "-v", "--remove-orphans")
        stack.run("build", timeout=1800)
        stack.up()
        try:
            yield stack
        finally:
            logs = stack.run("logs", "--no-color", "--tail", "200", check=False).stdout
            (REPO / "test-artifacts").mkdir(exist_ok=True)
            (REPO / "test-artifacts" / "deploy-stack.log").write_text(logs)
            _remove_run_containers(stack)
            stack.run("down", "-v", "--remove-orphans", check=False)


def _remove_run_containers(stack: Stack) -> None:
    """The run containers (DockerRunLauncher) and job containers (ContainerBackend) are no compose
    service: `down` leaves them."""
    for label in ("dagster/run_id", "b2cal/job"):
        ids = stack.docker("ps", "-aq", "--filter", f"label={label}").split()
        if ids:
            stack.docker("rm", "-f", *ids)


def _login(client: httpx.Client, user: str, password: str) -> httpx.Response:
    page = client.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert token, page.text[:500]
    return client.post(
        "/login", data={"username": user, "password": password, "csrf_token": token.group(1), "next": "/"}
    )


def _websocket_status(stack: Stack, cookie: str) -> str:
    """The first line nginx answers to a GraphQL websocket upgrade (the UI's live updates)."""
    context = ssl.create_default_context(cafile=str(stack.tls_dir / "server.crt"))
    with (
        socket.create_connection(("127.0.0.1", HTTPS_PORT), timeout=30) as raw,
        context.wrap_socket(raw, server_hostname="localhost") as conn,
    ):
        conn.sendall(
            (
                f"GET /graphql HTTP/1.1\r\nHost: localhost:{HTTPS_PORT}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
                f"Sec-WebSocket-Protocol: graphql-ws\r\nOrigin: https://localhost:{HTTPS_PORT}\r\n"
                f"Cookie: {cookie}\r\n\r\n"
            ).encode()
        )
        return conn.recv(4096).decode(errors="replace").splitlines()[0]


def test_login_through_nginx_over_https_with_the_websocket(stack):
    with stack.https() as client:
        assert client.get("/b2cal/status").status_code in (302, 303, 307, 401)  # behind the login
        refused = _login(client, "alice", "wrong")
        assert refused.status_code != 303
        response = _login(client, "alice", "alice-pw")
        assert response.status_code == 303, response.text[:500]
        cookie = response.headers["set-cookie"]
        # nginx's X-Forwarded-Proto is believed (B2CAL_TRUSTED_PROXIES): the cookie is https-only
        assert "secure" in cookie.lower()
        assert client.get("/b2cal/status").status_code == 200
        session = "; ".join(f"{k}={v}" for k, v in client.cookies.items())
    assert " 101 " in _websocket_status(stack, session)
    assert " 101 " not in _websocket_status(stack, "")
    plain = httpx.get("http://127.0.0.1:18080/b2cal/status", follow_redirects=False)
    assert plain.status_code == 301 and plain.headers["location"].startswith("https://")


GENERATE = f"""
from b2cal_assets.demo import generator, truth
from b2cal_assets.loop import admin
admin.write_global_tag("demo_base", truth.NOMINAL)
files = generator.generate("{DATA}", exp=1, first_run=1, runs=6, seed=1)
print(admin.register_files(files, site_name="{SITE}"))
"""


def test_a_processing_made_with_the_cli_runs_to_signed_off_payloads_in_run_containers(stack):
    stack.cli("mkdir", "-p", DATA)
    assert SITE in stack.cli(
        "b2cal",
        "site",
        "create",
        SITE,
        "--backend",
        "local",
        "--storage-root",
        DATA,
        "--signoff",
        "automatic",
    )
    assert int(stack.cli("python", "-", stdin=GENERATE).split()[-1]) > 0
    stack.cli(
        "b2cal", "processing", "create", PROCESSING, "--iov", "1,1,1,6", "--site", SITE,
        "--global-tag", "demo_base", "--window-hours", "0",
    )  # fmt: skip
    _start_framework_processing(stack)  # beside it: the test after this one follows it
    stack.wait_signed_off(PROCESSING)
    # every run in a container of its own, started by the DockerRunLauncher on the engine's socket
    containers = stack.docker(
        "ps", "-a", "--filter", "label=dagster/run_id", "--format", '{{.Label "dagster/run_id"}}'
    )
    dagster_runs = stack.cli("python", "-c", RUN_IDS).split()
    assert dagster_runs and set(dagster_runs) <= set(containers.split()), (dagster_runs, containers)


RUN_IDS = (  # every run whose worker started: one queued, starting or cancelled in the queue has no container
    "import dagster; print(*(r.dagster_run.run_id for r in dagster.DagsterInstance.get().get_run_records() "
    "if r.start_time is not None))"
)


FRAMEWORK_SITE = "deploy_framework"
FRAMEWORK_PROCESSING = "prompt_framework"
FRAMEWORK_DATA = "/data/b2cal/data-framework"
FRAMEWORK_BIN = "/data/b2cal/framework-bin"  # the tests' stand-in for the framework's b2caf-prompt-run
STAND_INS = REPO / "b2cal_assets_tests" / "fixtures" / "framework_bin"  # b2caf-prompt-run, b2val-prompt-run
PID1_OF_JOBS = (  # what each framework job saw as PID 1: the wrapper when the job had a container of its own
    "from pathlib import Path; print('\\n'.join(p.read_text() for p in "
    "sorted(Path('/data/b2cal').rglob('framework/pid1'))))"
)
VALIDATION_JOBS = (  # each validation job of the framework processing: what it saw as PID 1, and its exit code
    "import json; from pathlib import Path; root = Path('/data/b2cal/validation_work/prompt_framework'); "
    "print(json.dumps({str(d.relative_to(root)): [(d / f).read_text().strip() if (d / f).exists() else None "
    "for f in ('pid1', 'exit_code')] for d in sorted(root.glob('*/attempt_*'))}))"
)


def _start_framework_processing(stack: Stack) -> None:
    """A framework site whose one job per attempt runs in a container of its own (the paper's pattern,
    docker/compose.container-jobs.yaml), and a processing there, beside the first one."""
    stack.cli("mkdir", "-p", FRAMEWORK_DATA, FRAMEWORK_BIN)
    for tool in ("b2caf-prompt-run", "b2val-prompt-run"):
        stack.cli("sh", "-c", f"cat > {FRAMEWORK_BIN}/{tool}", stdin=(STAND_INS / tool).read_text())
        stack.cli("chmod", "755", f"{FRAMEWORK_BIN}/{tool}")
    created = stack.cli(
        "b2cal", "site", "create", FRAMEWORK_SITE, "--backend", "local", "--storage-root", FRAMEWORK_DATA,
        "--signoff", "automatic", "--runner", "framework", "--heartbeat", "1",
        "--framework-container", "b2cal:latest",
        "--framework-setup", f"export PATH={FRAMEWORK_BIN}:$PATH",
        "--framework-setup", "tr '\\0' ' ' < /proc/1/cmdline > pid1",
    )  # fmt: skip
    assert "in container b2cal:latest" in stack.cli("b2cal", "site", "list"), created
    generate = GENERATE.replace(DATA, FRAMEWORK_DATA).replace(SITE, FRAMEWORK_SITE)
    generate = generate.replace('admin.write_global_tag("demo_base", truth.NOMINAL)', "")  # there already
    generate = generate.replace("first_run=1, runs=6", "first_run=11, runs=4")
    assert int(stack.cli("python", "-", stdin=generate).split()[-1]) > 0
    stack.cli(
        "b2cal", "processing", "create", FRAMEWORK_PROCESSING, "--iov", "1,11,1,14", "--site", FRAMEWORK_SITE,
        "--global-tag", "demo_base", "--window-hours", "0",
    )  # fmt: skip


def test_the_framework_runners_jobs_ran_in_containers_of_their_own(stack):
    """Each attempt of the framework site: a run container started the job's container on the engine."""
    rows = stack.wait_signed_off(FRAMEWORK_PROCESSING)
    seen = stack.cli("python", "-c", PID1_OF_JOBS).split("\n")
    framework_steps = [r for r in rows if r["step"].startswith("caf_")]
    assert framework_steps and len([s for s in seen if "run.sh" in s]) >= len(framework_steps), (seen, rows)
    assert not stack.docker("ps", "-aq", "--filter", "label=b2cal/job").split()  # read and removed
    # the validations too: one b2val-prompt-run job per calibration with a validation, in the release's
    # container after the site's setup, each passed
    validations = json.loads(stack.cli("python", "-c", VALIDATION_JOBS))
    assert validations, rows
    for attempt, (pid1, exit_code) in validations.items():
        assert pid1 is not None and "run.sh" in pid1 and exit_code == "0", (attempt, pid1, exit_code)


BACKUP_RUN = (  # the newest run of the backup job: its status, or nothing yet
    "import dagster; runs = dagster.DagsterInstance.get().get_runs("
    "dagster.RunsFilter(job_name='database_backup_job'), limit=1); print(*(r.status.value for r in runs))"
)
BACKUP_LOOKUP = (  # the newest archive in the data volume's backups folder and its manifest
    "import json; from b2cal_assets import home; from b2cal_assets.db.backup import list_backups, read_manifest; "
    "found = list_backups(home.backups_dir()); "
    "print(json.dumps({'path': str(found[-1]), 'manifest': read_manifest(found[-1])} if found else {}))"
)


def test_the_backup_schedules_job_runs_in_a_run_container_and_its_archive_restores(stack):
    """The schedule's job, launched once: a run container dumps MariaDB into the data volume."""
    stack.cli(
        "dagster", "job", "launch", "-w", "/opt/b2cal/docker/workspace.yaml", "-l", "b2cal",
        "-j", "database_backup_job",
    )  # fmt: skip
    deadline = time.monotonic() + 600
    status = ""
    while time.monotonic() < deadline:
        status = stack.cli("python", "-c", BACKUP_RUN).strip()
        if status in ("SUCCESS", "FAILURE", "CANCELED"):
            break
        time.sleep(5)
    assert status == "SUCCESS", f"the backup run is {status or 'not there'}"
    found = json.loads(stack.cli("python", "-c", BACKUP_LOOKUP))
    assert found, "no backup archive in /data/b2cal/backups"
    assert found["manifest"]["engine"] == "mysql", found
    assert found["path"].startswith("/data/b2cal/backups/"), found  # in the b2cal_data volume
    # the archive restores: into a scratch database beside the live one, which it then matches
    password = stack.env["MARIADB_ROOT_PASSWORD"]
    grant = "CREATE DATABASE restore_check; GRANT ALL PRIVILEGES ON restore_check.* TO 'b2cal'@'%';"
    stack.run("exec", "-T", "mariadb", "mariadb", "-uroot", f"-p{password}", "-e", grant)
    scratch = f"mysql+pymysql://b2cal:{stack.env['B2CAL_DB_PASSWORD']}@mariadb:3306/restore_check"
    restored = stack.cli(
        "b2cal", "db", "restore", found["path"], "--database-url", scratch, "--payload-dir", "/tmp/restore-check"
    )
    assert "restored" in restored, restored
    assert stack.cli("b2cal", "site", "list", "--database-url", scratch) == stack.cli("b2cal", "site", "list")
    assert "(head)" in stack.cli("b2cal", "db", "current", "--database-url", scratch)


def test_down_and_up_again_keeps_the_data_and_the_sessions(stack):
    before = [(r["step"], r["state"], r["payloads"]) for r in stack.status()]
    assert before, "the previous test left no processing"
    with stack.https() as client:
        assert _login(client, "bob", "bob-pw").status_code == 303
        cookies = dict(client.cookies.items())
    stack.run("down")
    stack.up()
    assert [(r["step"], r["state"], r["payloads"]) for r in stack.status()] == before
    with stack.https() as client:
        client.cookies.update(cookies)
        assert client.get("/b2cal/status").status_code == 200  # the session is in the calibration database
