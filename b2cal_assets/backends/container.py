"""Jobs as containers on a Docker-API engine (Docker, or podman's Docker-compatible socket).

The paper's pattern: the daemon, itself in a container, starts each job in a container of its own on
the host's engine, through the engine's socket mounted into it. The job is the usual wrapper script
(``wrapper.py``) run by ``bash`` in the job's image, so its ``stdout``, ``stderr`` and ``exit_code`` are
in the work directory as with every backend; the container's own output (the site's setup commands,
a wrapper that could not start) is saved to ``container.log`` there when it ends.

The work directory must be at the same path inside the job's container: on the host it is bound there
(with the job's ``inputs``); in a compose stack, where the paths are the stack's own, ``mounts`` names
the volume that holds them (``B2CAL_JOB_CONTAINER_MOUNTS=b2cal_data:/data/b2cal``). A container is named
after its job id, so a restarted loop finds it again; a finished one is removed once it has been read.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import socket
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_fixed

from b2cal_assets.backends.base import BackendError, BatchBackend, JobHandle, JobSpec, JobState, JobStatus
from b2cal_assets.backends.wrapper import WRAPPER_FILE, read_exit_code, write_wrapper
from b2cal_assets.files import atomic_write_text

__all__ = ["CONTAINER_LOG", "ContainerBackend"]

CONTAINER_LOG = "container.log"
LABEL = "b2cal/job"
API_VERSION = "1.41"
_RUNNING = {"running", "restarting", "paused", "removing"}


class ContainerBackend(BatchBackend):
    """Run each job as ``bash <workdir>/run.sh`` in a new container of ``image``.

    ``mounts`` are ``SRC:DST[:MODE]`` volumes (a named volume or a host path); without them the job's
    work directory and inputs are bound at their own paths. The job runs as this process's user (the
    files it writes stay this process's), on ``network`` when given. ``base_url`` is the engine's API
    (default: ``DOCKER_HOST``, else ``/var/run/docker.sock``).
    """

    name = "container"

    def __init__(
        self,
        image: str,
        *,
        mounts: Sequence[str] = (),
        network: str | None = None,
        user: str | None = None,
        base_url: str | None = None,
        stop_timeout_s: int = 10,
    ) -> None:
        if not image.strip() or any(c.isspace() for c in image):
            raise ValueError(f"container image must be one name like b2cal:latest, got {image!r}")
        for mount in mounts:
            if len(mount.split(":")) not in (2, 3) or not all(mount.split(":")[:2]):
                raise ValueError(f"container mount {mount!r} is not SRC:DST[:MODE]")
        try:  # by name: the repository's docker/ folder would shadow the SDK for a type checker
            docker: Any = importlib.import_module("docker")
        except ImportError:  # pragma: no cover - docker is a dependency of dagster-docker
            raise BackendError("the container backend needs the Docker SDK: pip install docker") from None
        self.image = image
        self.mounts = tuple(mounts)
        self.network = network
        self.user = user if user is not None else f"{os.getuid()}:{os.getgid()}"
        self.stop_timeout_s = stop_timeout_s
        self._errors = docker.errors
        url = base_url or os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
        _check_reachable(url)
        # a fixed API version: no query at construction; 1.41 is served by Docker 20.10+ and podman 4+
        self._client: Any = docker.DockerClient(base_url=url, version=API_VERSION, timeout=60)
        try:
            self._client.ping()
        except Exception as exc:  # requests' ConnectionError is no DockerException
            self._client.close()
            raise BackendError(f"no container engine answers at {url} (DOCKER_HOST): {exc}") from None

    @classmethod
    def configured(cls, image: str, *, mounts: str = "", network: str = "") -> ContainerBackend:
        """The backend as a deployment writes its settings: ``mounts`` comma separated (empty: the work
        directory bound at its own path), ``network`` empty for the engine's default."""
        volumes = [m.strip() for m in mounts.split(",") if m.strip()]
        return cls(image, mounts=volumes, network=network or None)

    def close(self) -> None:
        """Close the connection to the engine (the jobs keep running)."""
        self._client.close()

    def submit(self, jobs: Sequence[JobSpec]) -> list[JobHandle]:
        handles = []
        for spec in jobs:
            workdir = Path(spec.workdir).absolute()
            write_wrapper(spec)
            (workdir / CONTAINER_LOG).unlink(missing_ok=True)
            job_id = f"b2cal-job-{uuid.uuid4().hex[:12]}"
            try:
                self._client.containers.run(
                    self.image,
                    [str(workdir / WRAPPER_FILE)],
                    entrypoint=["bash"],
                    name=job_id,
                    detach=True,
                    labels={LABEL: spec.name, "b2cal/workdir": str(workdir)},
                    volumes=list(self.mounts) or self._binds(spec),
                    working_dir=str(workdir),
                    user=self.user,
                    network=self.network,
                )
            except self._errors.DockerException as exc:
                self._remove(job_id)
                raise BackendError(
                    f"job {spec.name}: the engine refused container {self.image}: {exc}"
                ) from None
            handles.append(JobHandle(self.name, job_id, spec.name, workdir))
        return handles

    def poll(self, handles: Sequence[JobHandle]) -> dict[str, JobStatus]:
        return {handle.job_id: self._status(handle) for handle in handles}

    def cancel(self, handles: Sequence[JobHandle]) -> None:
        for handle in handles:
            try:
                # SIGTERM first: the wrapper stops the command and writes exit code 143
                self._client.containers.get(handle.job_id).stop(timeout=self.stop_timeout_s)
            except self._errors.NotFound:
                continue
            except self._errors.DockerException as exc:
                raise BackendError(f"cannot stop container {handle.job_id}: {exc}") from None
            self._save_log_and_remove(handle)

    # -- internals ------------------------------------------------------------------------------

    def _binds(self, spec: JobSpec) -> list[str]:
        paths = {str(Path(spec.workdir).absolute())} | {str(Path(p).resolve()) for p in spec.inputs}
        return [f"{p}:{p}" for p in sorted(paths)]

    def _inspect(self, job_id: str) -> Any:
        """The container, asked again on an engine's own error: podman answers 500 ("read
        /proc/N/cgroup: no such process") for a container whose process is exiting at that moment."""

        def transient(exc: BaseException) -> bool:
            return (
                isinstance(exc, self._errors.APIError)
                and not isinstance(exc, self._errors.NotFound)
                and bool(exc.is_server_error())
            )

        for attempt in Retrying(
            retry=retry_if_exception(transient), stop=stop_after_attempt(5), wait=wait_fixed(0.5), reraise=True
        ):
            with attempt:
                return self._client.containers.get(job_id)
        raise AssertionError("unreachable: Retrying reraises")  # pragma: no cover

    def _status(self, handle: JobHandle) -> JobStatus:
        try:
            container = self._inspect(handle.job_id)
        except self._errors.NotFound:
            return _from_exit_file(handle, "its container is gone")
        except self._errors.DockerException as exc:
            raise BackendError(f"cannot ask the engine about container {handle.job_id}: {exc}") from None
        state = str(container.status)
        if state == "created":
            return JobStatus(JobState.PENDING)
        if state in _RUNNING:
            return JobStatus(JobState.RUNNING)
        exit_status = int(container.attrs.get("State", {}).get("ExitCode", -1))
        tail = self._save_log_and_remove(handle)
        code = read_exit_code(handle.workdir)
        if code is None:  # the wrapper never wrote one: bash missing, the work directory not mounted, ...
            return JobStatus(
                JobState.FAILED, exit_status, f"container exited {exit_status}, no exit_code: {tail}"
            )
        if code == 0:
            return JobStatus(JobState.DONE, 0)
        return JobStatus(JobState.FAILED, code, f"exit code {code}")

    def _save_log_and_remove(self, handle: JobHandle) -> str:
        """The container's output into ``container.log`` (if its directory is still there); its last line."""
        try:
            text = self._client.containers.get(handle.job_id).logs().decode("utf-8", errors="replace")
        except self._errors.DockerException:
            text = ""
        if Path(handle.workdir).is_dir():
            atomic_write_text(Path(handle.workdir) / CONTAINER_LOG, text)
        self._remove(handle.job_id)
        lines = text.strip().splitlines()
        return lines[-1] if lines else "(no output)"

    def _remove(self, job_id: str) -> None:
        with contextlib.suppress(self._errors.DockerException):
            self._client.containers.get(job_id).remove(force=True)


def _from_exit_file(handle: JobHandle, why: str) -> JobStatus:
    """A job whose container was removed (read and removed by an earlier poll, or by hand)."""
    code = read_exit_code(handle.workdir)
    if code is None:
        return JobStatus(JobState.FAILED, None, f"{why} and it left no exit_code in {handle.workdir}")
    return JobStatus(JobState.DONE, 0) if code == 0 else JobStatus(JobState.FAILED, code, f"exit code {code}")


def _check_reachable(url: str) -> None:
    """A unix socket nobody listens on, refused in one line (the SDK would leak its socket saying so)."""
    if not url.startswith("unix://"):
        return
    path = url.removeprefix("unix://")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(10)
        try:
            probe.connect(path)
        except OSError as exc:
            raise BackendError(f"no container engine answers at {url} (DOCKER_HOST): {exc}") from None
