"""The one interface every batch backend implements.

A job is a command run in its own directory by the wrapper script (``wrapper.py``), which keeps
``stdout``, ``stderr`` and an ``exit_code`` file there; the exit-code file decides a job the
scheduler has forgotten.
"""

from __future__ import annotations

import abc
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path


class JobState(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"
    HELD = "held"

    @property
    def finished(self) -> bool:
        return self in (JobState.DONE, JobState.FAILED, JobState.CANCELLED)


@dataclass(frozen=True)
class JobSpec:
    """One command to run. ``workdir`` is created by the caller and holds the job's files.

    ``inputs`` are the files and directories outside ``workdir`` that the job reads, by the paths
    ``BatchBackend.job_path`` gave: a backend whose jobs run elsewhere copies them there.
    """

    name: str
    argv: tuple[str, ...]
    workdir: Path
    env: Mapping[str, str] = field(default_factory=dict)
    backend_args: Mapping[str, object] = field(default_factory=dict)
    inputs: tuple[Path, ...] = ()


@dataclass(frozen=True)
class JobHandle:
    """What a backend returns for a submitted job; enough to find it again after a restart."""

    backend: str
    job_id: str
    name: str
    workdir: Path


@dataclass(frozen=True)
class JobStatus:
    state: JobState
    exit_code: int | None = None
    reason: str | None = None


def describe_exit(exit_code: int | None, reason: str | None = None) -> str:
    """How a job ended, in words: its exit code once, and its reason only when that says more."""
    said = f"exit code {exit_code}" if exit_code is not None else "no exit code"
    if not reason or reason == said:
        return said
    return reason if exit_code is None else f"{said} ({reason})"


class BackendError(RuntimeError):
    """A batch system refused or failed a command; the message says which and what it printed."""


class BatchBackend(abc.ABC):
    """Submit, poll and cancel jobs. ``poll`` makes one scheduler query for all handles."""

    name: str = "base"

    def job_path(self, path: str | Path) -> str:
        """Where a job finds ``path`` of this machine (another path when jobs run on another host)."""
        return str(Path(path).absolute())

    def job_python(self) -> str:
        """The Python interpreter jobs run ``python -m`` commands with."""
        return sys.executable

    @abc.abstractmethod
    def submit(self, jobs: Sequence[JobSpec]) -> list[JobHandle]: ...

    @abc.abstractmethod
    def poll(self, handles: Sequence[JobHandle]) -> dict[str, JobStatus]:
        """Map each handle's ``job_id`` to its status."""

    @abc.abstractmethod
    def cancel(self, handles: Sequence[JobHandle]) -> None: ...
