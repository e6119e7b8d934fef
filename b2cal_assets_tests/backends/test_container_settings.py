"""The container backend as a deployment configures it (docker/compose.container-jobs.yaml)."""

from __future__ import annotations

import pytest

from b2cal_assets.backends.container import ContainerBackend
from b2cal_assets.settings import settings


def test_the_job_container_variables_are_read_as_settings(monkeypatch):
    monkeypatch.setenv("B2CAL_JOB_CONTAINER_MOUNTS", "b2cal_data:/data/b2cal")
    monkeypatch.setenv("B2CAL_JOB_CONTAINER_NETWORK", "b2cal")
    current = settings()
    assert (current.job_container_mounts, current.job_container_network) == ("b2cal_data:/data/b2cal", "b2cal")


def test_a_bad_mount_in_the_deployment_is_named_before_any_engine_is_asked():
    with pytest.raises(ValueError, match="container mount 'nonsense' is not SRC:DST"):
        ContainerBackend.configured("b2cal:latest", mounts="b2cal_data:/data/b2cal, nonsense", network="b2cal")


class _ExitingEngine:
    """podman's answer for a container whose process is exiting just then: 500 twice, then the container."""

    def __init__(self, *args, **kwargs) -> None:
        import docker

        self.errors = docker.errors
        self.asked = 0
        self.containers = self

    def ping(self) -> bool:
        return True

    def close(self) -> None:
        pass

    def get(self, job_id: str):
        self.asked += 1
        if self.asked <= 2:
            response = type("Response", (), {"status_code": 500, "reason": "Internal Server Error"})()
            raise self.errors.APIError("read /proc/26197/cgroup: no such process", response=response)
        return type("Container", (), {"status": "running", "attrs": {}})()


def test_an_engine_error_while_a_container_exits_is_asked_again_not_a_failed_query(monkeypatch, tmp_path):
    import docker
    from b2cal_assets.backends import container
    from b2cal_assets.backends.base import JobHandle, JobState

    monkeypatch.setattr(container, "_check_reachable", lambda url: None)
    monkeypatch.setattr(docker, "DockerClient", _ExitingEngine)
    backend = ContainerBackend("b2cal:latest", base_url="unix:///nowhere.sock")
    handle = JobHandle("container", "b2cal-job-1", "job", tmp_path)
    assert backend.poll([handle])["b2cal-job-1"].state == JobState.RUNNING
    assert backend._client.asked == 3
