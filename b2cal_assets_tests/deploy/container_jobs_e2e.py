"""ContainerBackend on a real engine (podman's Docker-compatible socket here, Docker elsewhere): a job
is its wrapper script in a container of its own; its exit code, output and files come back through the
work directory, a cancelled one stops with 143, and nothing is left running.

Not collected by a plain ``pytest`` (its name): ``make deploy-test`` runs it, where the engine is set up.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest

import docker
from b2cal_assets.backends.base import BackendError, JobHandle, JobSpec, JobState, JobStatus
from b2cal_assets.backends.container import CONTAINER_LOG, LABEL, ContainerBackend
from b2cal_assets.backends.wrapper import STDERR_FILE, STDOUT_FILE, read_exit_code
from b2cal_assets_tests.deploy.engine import engine_env

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


@pytest.fixture(scope="module")
def engine() -> Iterator[tuple[str, str]]:
    """The engine's API address and an image with bash; afterwards, no job container is left."""
    env, image = engine_env()
    base_url = env.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    yield base_url, image
    with closing(docker.DockerClient(base_url=base_url)) as client:
        left = client.containers.list(all=True, filters={"label": LABEL})
        for container in left:
            container.remove(force=True)
        for volume in client.volumes.list(filters={"name": "b2cal_test_empty"}):
            volume.remove(force=True)
    assert not left, [c.name for c in left]


@pytest.fixture
def make_backend(engine) -> Iterator:
    """ContainerBackends on the engine, closed afterwards (an open connection would warn)."""
    made: list[ContainerBackend] = []

    def make(image: str | None = None, **kwargs) -> ContainerBackend:
        made.append(ContainerBackend(image or engine[1], base_url=engine[0], **kwargs))
        return made[-1]

    yield make
    for backend in made:
        backend.close()


def _job_containers(base_url: str, **filters: str) -> list:
    with closing(docker.DockerClient(base_url=base_url)) as client:
        return client.containers.list(all=True, filters={"label": LABEL, **filters})


def _wait(backend: ContainerBackend, handle: JobHandle, timeout_s: float = 300) -> JobStatus:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        status = backend.poll([handle])[handle.job_id]
        if status.state.finished:
            return status
        time.sleep(0.5)
    pytest.fail(f"job {handle.name} did not finish in {timeout_s} s")


def _spec(tmp_path: Path, name: str, script: str) -> JobSpec:
    workdir = tmp_path / name
    workdir.mkdir()
    return JobSpec(name=name, argv=("bash", "-c", script), workdir=workdir, env={"GREETING": "hello"})


def test_a_job_runs_in_its_own_container_and_its_exit_code_and_output_come_back(
    engine, make_backend, tmp_path
):
    base_url, _image = engine
    backend = make_backend()
    ok, bad = (
        _spec(
            tmp_path, "ok", 'echo "$GREETING from $(hostname)"; id -u > whoami; cat /proc/1/cmdline > pid1'
        ),
        _spec(tmp_path, "bad", "echo 'no calibration constants' >&2; exit 3"),
    )
    handles = backend.submit([ok, bad])
    done, failed = (_wait(backend, h) for h in handles)

    assert done.state == JobState.DONE and done.exit_code == 0, done
    assert (ok.workdir / STDOUT_FILE).read_text().startswith("hello from ")
    assert (ok.workdir / "whoami").read_text().strip() == str(os.getuid())  # the files stay this user's
    assert "run.sh" in (ok.workdir / "pid1").read_text()  # the wrapper is PID 1: a container of its own
    assert (ok.workdir / "pid1").stat().st_uid == os.getuid()

    assert failed.state == JobState.FAILED and failed.exit_code == 3, failed
    assert read_exit_code(bad.workdir) == 3
    assert (bad.workdir / STDERR_FILE).read_text() == "no calibration constants\n"
    assert (bad.workdir / CONTAINER_LOG).exists()
    # read and removed: a later poll (a restarted loop) decides from the exit_code file
    assert backend.poll(handles)[handles[1].job_id] == JobStatus(JobState.FAILED, 3, "exit code 3")
    assert not _job_containers(base_url)


def test_a_cancelled_job_is_stopped_with_sigterm_and_its_container_removed(engine, make_backend, tmp_path):
    base_url, _image = engine
    backend = make_backend(stop_timeout_s=20)
    spec = _spec(tmp_path, "long", "touch started; sleep 600")
    (handle,) = backend.submit([spec])
    deadline = time.monotonic() + 300
    while not (spec.workdir / "started").exists():
        assert time.monotonic() < deadline, "the job never started"
        time.sleep(0.5)
    backend.cancel([handle])
    assert read_exit_code(spec.workdir) == 143  # the wrapper saw SIGTERM
    assert backend.poll([handle])[handle.job_id].state == JobState.FAILED
    assert not _job_containers(base_url, name=handle.job_id)


def test_a_job_without_its_work_directory_fails_with_the_containers_words(make_backend, tmp_path):
    # a named volume that is not where the work directory is: the wrapper cannot be found
    backend = make_backend(mounts=["b2cal_test_empty:/nowhere"])
    (handle,) = backend.submit([_spec(tmp_path, "lost", "true")])
    status = _wait(backend, handle)
    assert status.state == JobState.FAILED and status.exit_code == 127, status
    assert "no exit_code" in (status.reason or "") and "run.sh" in (status.reason or ""), status


def test_an_image_the_engine_does_not_have_is_refused_naming_it(make_backend, tmp_path):
    backend = make_backend("localhost/b2cal-no-such-image:1")
    with pytest.raises(BackendError, match="b2cal-no-such-image"):
        backend.submit([_spec(tmp_path, "nothing", "true")])


def test_an_engine_that_does_not_answer_is_refused_in_one_line(tmp_path):
    with pytest.raises(BackendError, match="no container engine answers at unix://"):
        ContainerBackend("b2cal:latest", base_url=f"unix://{tmp_path}/none.sock")


@pytest.mark.parametrize("mount", ["b2cal_data", "a:b:c:d", ":/data"])
def test_a_mount_that_is_not_src_dst_is_refused(mount):
    with pytest.raises(ValueError, match="SRC:DST"):
        ContainerBackend("b2cal:latest", mounts=[mount])
