"""A site whose scheduler runs on another host: the same backend, its commands and files over SSH.

``RemoteBackend`` wraps a scheduler backend whose commands run on the submit host (``SshRunner``)
and whose wrappers, manifests and scripts are written there (``StagedFiles``). Nothing a job reads
is on the orchestrator's filesystem: a job's local directory ``L`` is mirrored at
``<remote_root>/L`` on the submit host; what the job declares in ``JobSpec.inputs`` is copied to
``<remote_root>/<path>`` before the submission (again only when it changed); the project's own
Python package travels as one zip on the job's ``PYTHONPATH``. When the scheduler says a job
ended (or no longer knows it), every file at the top of its remote directory (logs, ``exit_code``,
what it wrote) is fetched back into ``L``, so the job manager and its callers read local files as
they do for a local cluster. A status query or fetch that fails because the connection dropped is
a ``BackendError``: the job manager counts it as a failed query and asks again; the jobs live on.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import importlib
import io
import shlex
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from b2cal_assets.backends.arrays import ArrayBackend
from b2cal_assets.backends.base import BackendError, BatchBackend, JobHandle, JobSpec, JobStatus
from b2cal_assets.backends.commands import CommandResult
from b2cal_assets.backends.ssh import SshRunner

__all__ = ["RemoteBackend", "StagedFiles", "package_zip", "remote_backend"]

_SIGNATURE_FILES = 10000  # inputs larger than this many files are copied every time


@dataclass
class StagedFiles:
    """``JobFiles`` on the submit host: writes are queued and sent as one tar before the next command."""

    ssh: SshRunner
    pending: dict[PurePosixPath, tuple[bytes, int]] = field(default_factory=dict)
    dirs: list[PurePosixPath] = field(default_factory=list)

    def write(self, path: Path, text: str, mode: int = 0o644) -> None:
        self.pending[PurePosixPath(path)] = (text.encode(), mode)

    def mkdir(self, path: Path) -> None:
        self.dirs.append(PurePosixPath(path))

    def read_text(self, path: Path) -> str | None:
        self.flush()
        quoted = shlex.quote(str(path))
        out = self.ssh.shell(f"if [ -f {quoted} ]; then echo y; cat {quoted}; fi", what=f"reading {path}")
        text = out.decode(errors="replace")
        return text[2:] if text.startswith("y\n") else None

    def flush(self) -> None:
        if self.pending or self.dirs:
            self.ssh.upload(self.pending, dirs=self.dirs)
            self.pending, self.dirs = {}, []


@dataclass
class _FlushingRunner:
    """The submit host's ``CommandRunner``: the queued files go first, then the command."""

    ssh: SshRunner
    files: StagedFiles

    def __call__(self, argv: Sequence[str], *, stdin: str | None = None) -> CommandResult:
        self.files.flush()
        return self.ssh(argv, stdin=stdin)


@functools.cache
def package_zip(package: str = "b2cal_assets") -> tuple[str, bytes]:
    """The project's package as a zip jobs import from (``PYTHONPATH``), and its content hash."""
    root = Path(str(importlib.import_module(package).__file__)).parent
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(root.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
                info = zipfile.ZipInfo(
                    f"{package}/{path.relative_to(root).as_posix()}", (2020, 1, 1, 0, 0, 0)
                )
                info.compress_type = zipfile.ZIP_DEFLATED
                zf.writestr(info, path.read_bytes())
    data = buffer.getvalue()
    return hashlib.sha256(data).hexdigest()[:16], data


class RemoteBackend(BatchBackend):
    """``inner`` with its commands on a submit host; jobs see ``job_path`` paths and run ``python``."""

    def __init__(
        self, inner: BatchBackend, ssh: SshRunner, remote_root: PurePosixPath | str, python: str = "python3"
    ) -> None:
        self.inner = inner
        self.ssh = ssh
        self.remote_root = PurePosixPath(remote_root)
        self.python = python
        self.name = inner.name
        self._staged: dict[str, object] = {}  # remote path of an input -> what it was when copied
        self._fetched: set[str] = set()  # job ids whose results are here
        self._package: str | None = None

    # -- what jobs see ------------------------------------------------------------------------------

    def job_path(self, path: str | Path) -> str:
        """Where the job finds ``path``: under ``remote_root`` on the submit host."""
        return str(self.remote_root / str(Path(path).absolute()).lstrip("/"))

    def job_python(self) -> str:
        return self.python

    # -- BatchBackend -------------------------------------------------------------------------------

    def submit(self, jobs: Sequence[JobSpec]) -> list[JobHandle]:
        files: dict[PurePosixPath, tuple[bytes, int]] = {}
        package = self._package_path(files)
        trees: dict[PurePosixPath, Path] = {}
        fresh: list[PurePosixPath] = []
        copied: dict[str, object] = {}
        remote_specs = []
        for spec in jobs:
            local = Path(spec.workdir).absolute()
            remote = PurePosixPath(self.job_path(local))
            trees[remote], fresh = local, [*fresh, remote]
            for item in spec.inputs:
                if not Path(item).exists():  # e.g. conditions not written yet: the job sees none either
                    continue
                key = self.job_path(item)
                signature = _signature(Path(item))
                if self._staged.get(key) != signature or signature is None:
                    trees[PurePosixPath(key)] = Path(item)
                    copied[key] = signature
            path = ":".join(p for p in (package, spec.env.get("PYTHONPATH", "")) if p)
            remote_specs.append(
                dataclasses.replace(
                    spec, workdir=Path(remote), env={**spec.env, "PYTHONPATH": path}, inputs=()
                )
            )
        self.ssh.upload(files, trees=trees, fresh=fresh)
        self._staged.update(copied)
        handles = self.inner.submit(remote_specs)
        self._fetched.difference_update(h.job_id for h in handles)
        return [
            JobHandle(h.backend, h.job_id, h.name, Path(spec.workdir))
            for h, spec in zip(handles, jobs, strict=True)
        ]

    def poll(self, handles: Sequence[JobHandle]) -> dict[str, JobStatus]:
        statuses = self.inner.poll(handles)
        ended = [h for h in handles if h.job_id not in statuses or statuses[h.job_id].state.finished]
        wanted = [h for h in ended if h.job_id not in self._fetched]
        self.ssh.fetch({PurePosixPath(self.job_path(h.workdir)): Path(h.workdir) for h in wanted})
        self._fetched.update(h.job_id for h in wanted if h.job_id in statuses)
        return statuses

    def cancel(self, handles: Sequence[JobHandle]) -> None:
        self.inner.cancel(handles)

    def close(self) -> None:
        self.ssh.close()

    def _package_path(self, files: dict[PurePosixPath, tuple[bytes, int]]) -> str:
        digest, data = package_zip()
        path = self.remote_root / ".b2cal" / f"b2cal_assets-{digest}.zip"
        if self._package != str(path):
            there = self.ssh.shell(
                f"test -f {shlex.quote(str(path))} && echo yes || true", what="looking for b2cal"
            )
            if there.strip() != b"yes":
                files[path] = (data, 0o644)
            self._package = str(path)
        return str(path)


def remote_backend(
    backend_class: type[ArrayBackend[Any]],
    config: Mapping[str, object],
    ssh: SshRunner,
    remote_root: PurePosixPath | str,
    python: str = "python3",
) -> RemoteBackend:
    """A scheduler backend built from a site's ``config`` whose commands and files are on ``ssh``'s host."""
    files = StagedFiles(ssh)
    inner = backend_class.from_config(config, runner=_FlushingRunner(ssh, files), files=files)
    return RemoteBackend(inner, ssh, remote_root, python)


def _signature(path: Path) -> object:
    """What a copied input was (names, sizes, modification times); ``None`` means copy it every time."""
    try:
        if path.is_file():
            st = path.stat()
            return (st.st_size, st.st_mtime_ns)
        entries = []
        for i, item in enumerate(sorted(path.rglob("*"))):
            if i > _SIGNATURE_FILES:
                return None
            if item.is_file():
                st = item.stat()
                entries.append((str(item.relative_to(path)), st.st_size, st.st_mtime_ns))
        return tuple(entries)
    except OSError as exc:
        raise BackendError(f"input {path} of a job cannot be read: {exc}") from None
