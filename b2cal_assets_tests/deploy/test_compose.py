"""The production deployment files: the compose file is valid, secrets are required, the pieces fit."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from b2cal_assets_tests.fixtures.home import skip_or_fail

REPO = Path(__file__).resolve().parents[2]
DOCKER = REPO / "docker"
SECRETS = {
    "MARIADB_ROOT_PASSWORD": "root-secret",
    "B2CAL_DB_PASSWORD": "db-secret",
    "B2CAL_LDAP_URL": "ldaps://ldap.example.org",
    "B2CAL_SECRET_KEY": "k" * 40,
    "B2CAL_TLS_DIR": "/etc/b2cal/tls",
}


@pytest.fixture(scope="module")
def compose() -> str:
    state = os.environ.get("B2CAL_SERVICES_DIR", "/tmp/b2cal-services")
    binary = os.environ.get("B2CAL_COMPOSE", f"{state}/bin/docker-compose")
    if not Path(binary).exists():
        subprocess.run(
            ["bash", str(REPO / ".ci/services/compose.sh"), state], check=False, capture_output=True
        )
    if not Path(binary).exists():
        skip_or_fail("no docker compose binary: run `bash .ci/services/compose.sh`")
    return binary


def run_config(compose: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k not in SECRETS}
    return subprocess.run(
        [compose, "-f", str(DOCKER / "compose.yaml"), "config"],
        env={**clean, **env},
        capture_output=True,
        text=True,
        cwd=DOCKER,
    )


def test_compose_file_is_valid_and_runs_the_whole_platform(compose):
    result = run_config(compose, SECRETS)
    assert result.returncode == 0, result.stderr
    config = yaml.safe_load(result.stdout)
    services = config["services"]
    assert {"mariadb", "codeserver", "migrate", "daemon", "webserver", "nginx"} <= set(services)
    # the daemon launches runs in containers through the host's Docker socket
    assert any("docker.sock" in str(v) for v in services["daemon"]["volumes"])
    # migrations run before the daemon starts
    assert services["daemon"]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert "mysql+pymysql://" in services["webserver"]["environment"]["B2CAL_DATABASE_URL"]


def test_compose_refuses_to_start_without_its_secrets(compose):
    env = dict(SECRETS)
    del env["B2CAL_DB_PASSWORD"]
    result = run_config(compose, env)
    assert result.returncode != 0
    assert "B2CAL_DB_PASSWORD" in result.stderr


def test_production_instance_uses_mariadb_storage_and_docker_run_launcher():
    instance = yaml.safe_load((DOCKER / "dagster.yaml").read_text())
    assert "mysql" in instance["storage"]
    assert instance["run_launcher"]["class"] == "DockerRunLauncher"
    assert "B2CAL_DATABASE_URL" in instance["run_launcher"]["config"]["env_vars"]
    postgres = yaml.safe_load((DOCKER / "dagster.postgres.yaml").read_text())
    assert "postgres" in postgres["storage"]
    for config in (instance, postgres):  # a dead run container is found; the loop resumes its attempt
        assert config["run_monitoring"]["enabled"] is True
        assert config["run_monitoring"]["max_resume_run_attempts"] == 0
        assert config["run_retries"] == {"enabled": False}
    dockerfile = (DOCKER / "Dockerfile").read_text()
    assert "COPY migrations" in dockerfile and "B2CAL_MIGRATIONS_DIR" in dockerfile


def test_webserver_command_is_one_b2cal_web_accepts_and_names_the_daemons_location():
    """Issue 10 item 8: `-w` made the container exit; runs from the web need the daemon's location name."""
    import argparse

    from b2cal_assets.cli import web
    from b2cal_assets.defs.instance import LOCATION_NAME

    services = yaml.safe_load((DOCKER / "compose.yaml").read_text())["services"]
    command = services["webserver"]["command"]
    assert command[:2] == ["b2cal", "web"]
    parser = argparse.ArgumentParser()
    web.register(parser.add_subparsers())
    args = parser.parse_args(command[1:])  # exits (SystemExit) on an option b2cal web does not have
    assert args.module == "b2cal_assets.definitions"
    daemon_workspace = yaml.safe_load((DOCKER / "workspace.yaml").read_text())
    assert daemon_workspace["load_from"][0]["grpc_server"]["location_name"] == LOCATION_NAME
    assert services["webserver"]["environment"]["B2CAL_TRUSTED_PROXIES"] == (
        services["nginx"]["networks"]["b2cal"]["ipv4_address"]
    )


def test_demo_daemon_loads_the_location_the_web_launches_into(tmp_path):
    from b2cal_assets.defs.instance import LOCATION_NAME, daemon_command

    command = daemon_command("b2cal_assets.definitions", tmp_path / "ws.yaml")
    assert command[-2:] == ["-w", str(tmp_path / "ws.yaml")]
    loaded = yaml.safe_load((tmp_path / "ws.yaml").read_text())["load_from"][0]["python_module"]
    assert loaded["location_name"] == LOCATION_NAME == "b2cal"


def test_the_images_pin_every_runtime_dependency_of_the_project():
    """The images install docker/requirements.txt with --no-deps and then `pip check`: a dependency added
    to pyproject.toml but not pinned there breaks the image build (remake it with docker/lock_requirements.py)."""
    import tomllib

    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    wanted = {canonicalize_name(Requirement(r).name) for r in project["dependencies"]}
    lines = (DOCKER / "requirements.txt").read_text().splitlines()
    pinned = {canonicalize_name(line.split("==")[0]) for line in lines if line and not line.startswith("#")}
    assert all("==" in line for line in lines if line and not line.startswith("#"))
    missing = sorted(wanted - pinned)
    assert not missing, f"not pinned in docker/requirements.txt: {missing}; run docker/lock_requirements.py"


def _container_jobs_module():
    """docker/container_jobs.py, the daemon's entry with the container-jobs overlay (no package)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("container_jobs", DOCKER / "container_jobs.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_container_jobs_overlay_gives_run_containers_the_engines_socket(compose):
    clean = {k: v for k, v in os.environ.items() if k not in SECRETS}
    result = subprocess.run(
        [compose, "-f", str(DOCKER / "compose.yaml"), "-f", str(DOCKER / "compose.container-jobs.yaml"), "config"],
        env={**clean, **SECRETS, "DOCKER_GID": "994", "DOCKER_SOCKET": "/run/podman/podman.sock"},
        capture_output=True,
        text=True,
        cwd=DOCKER,
    )
    assert result.returncode == 0, result.stderr
    daemon = yaml.safe_load(result.stdout)["services"]["daemon"]
    assert daemon["command"][:2] == ["python", "/opt/b2cal/docker/container_jobs.py"]
    assert daemon["command"][2:4] == ["dagster-daemon", "run"]
    assert daemon["environment"]["B2CAL_JOB_CONTAINER_MOUNTS"] == "b2cal_data:/data/b2cal"
    assert daemon["environment"]["DOCKER_GID"] == "994"
    assert "B2CAL_DATABASE_URL" in daemon["environment"]  # the base service's, kept
    targets = {v["target"] for v in daemon["volumes"]}
    assert {"/var/run/docker.sock", "/data/b2cal", "/opt/b2cal/docker/container_jobs.py"} <= targets

    instance = yaml.safe_load((DOCKER / "dagster.yaml").read_text())
    assert daemon["environment"]["DOCKER_SOCKET"] == "/run/podman/podman.sock"
    changed = _container_jobs_module().with_container_jobs(instance, "994", "/run/podman/podman.sock")
    kwargs = changed["run_launcher"]["config"]["container_kwargs"]
    # mounted from the host's path of the socket: the engine resolves a run container's mounts there
    assert "/run/podman/podman.sock:/var/run/docker.sock" in kwargs["volumes"]
    assert "b2cal_data:/data/b2cal" in kwargs["volumes"] and kwargs["group_add"] == ["994"]
    assert {"B2CAL_JOB_CONTAINER_MOUNTS", "B2CAL_JOB_CONTAINER_NETWORK"} <= set(
        changed["run_launcher"]["config"]["env_vars"]
    )
    # everything else is the image's instance file, which itself does not give runs the socket
    assert {k: v for k, v in changed.items() if k != "run_launcher"} == {
        k: v for k, v in instance.items() if k != "run_launcher"
    }
    assert "docker.sock" not in str(instance["run_launcher"])


def test_the_container_jobs_entry_refuses_a_socket_group_that_is_not_a_number(tmp_path):
    result = subprocess.run(
        [sys.executable, str(DOCKER / "container_jobs.py"), "true"],
        env={**os.environ, "DOCKER_GID": "docker", "DAGSTER_HOME": str(tmp_path)},
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2 and "DOCKER_GID must be the socket's group id" in result.stderr
    assert not (tmp_path / "dagster.yaml").exists()
