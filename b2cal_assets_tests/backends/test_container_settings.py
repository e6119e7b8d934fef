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
