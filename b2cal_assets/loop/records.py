"""The loop's records and refusals, shared by the service's parts and its callers."""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field, fields
from datetime import datetime
from pathlib import Path
from typing import Any

from b2cal_assets.db.models import Payload, Site
from b2cal_assets.db.repo import sites
from b2cal_assets.domain.iov import IoV
from b2cal_assets.domain.remote_sites import RemoteHost
from b2cal_assets.loop.staging import StagingResult

AUTO_USER = "auto"
RESERVED_USERNAMES = frozenset({AUTO_USER, "ui"})  # the loop's automatic user, the bare UI (defs/assets.py)


def is_reserved_username(username: str) -> bool:
    """A directory or OS user named like the loop's own users could otherwise pass as them."""
    folded = unicodedata.normalize("NFKC", username).strip().casefold()
    return folded in RESERVED_USERNAMES or "(no-auth)" in folded


class LoopError(Exception):
    """A request the loop's rules refuse; the message says why and what to do instead."""


class SubmissionHeld(LoopError):
    """Not an error: the site holds every job until the deadline; the settings wait in a held attempt."""


@dataclass(frozen=True)
class Launch:
    """A step the loop wants a Dagster run for."""

    processing: str
    step: str
    # deadline | ready | resume (take over an attempt whose run died) | signoff (checks, then sign-off)
    # | checks (checks only)
    reason: str
    run_key: str
    expert_config: dict[str, Any] = field(default_factory=dict)
    job_config: dict[str, Any] = field(default_factory=dict)
    automatic_signoff: bool = False
    attempt: int = 0
    attempt_run_id: str = ""  # the Dagster run that produced the attempt (signoff/checks launches)
    resume_run_id: str = ""  # resume launches: the dead run whose attempt the new run takes over
    submitted_by: str = AUTO_USER  # whose settings run: the held attempt's submitter, or auto (defaults)
    requested_by: str = AUTO_USER  # who asked for the run: the expert, a manager's restart, or auto
    why: str = ""  # the run's reason for people (submission, resubmission, restart, deadline, ...)

    @property
    def label(self) -> str:
        """The reason shown on the run: ``why`` where the loop knows it, else the run key's reason."""
        return self.why or self.reason

    @property
    def checks_only(self) -> bool:
        """The payloads exist already (an upload, or an expert's run without sign-off): only check them."""
        return self.reason in ("signoff", "checks")


@dataclass(frozen=True)
class TickReport:
    launches: list[Launch]
    opened: list[tuple[str, str]]
    finished_processings: list[str]
    staging: list[StagingResult] = field(default_factory=list)  # exported by the staging sensor now
    terminate: list[str] = field(default_factory=list)  # runs of attempts a manager cancelled
    recovered: list[str] = field(default_factory=list)  # what reconciliation did, one line each


@dataclass(frozen=True)
class StepRow:
    processing: str
    step: str
    stage: str
    state: str
    expert: str
    attempts: int
    iterations: int
    payloads: int
    wall_seconds: float | None
    deadline: datetime | None
    error: str
    blocked_by: str
    excluded: bool = False
    submitted_by: str = ""
    attempt_state: str = ""
    jobs: str = ""  # "3 done, 1 failed" for the latest attempt's collector subjobs
    uses_global_tag: bool = False  # excluded: dependents use the global-tag payloads instead
    recovery: str = ""  # what the loop last did by itself about this step (relaunched, resumed, ...)
    launch_generation: int = 0  # how often the loop launched it again
    resumes: int = 0  # automatic resumes of the latest attempt


@dataclass(frozen=True)
class JobRow:
    processing: str
    calibration: str
    attempt: int
    name: str
    backend: str
    state: str
    exit_code: int | None
    tries: int
    workdir: str
    #: the job's own run time from its wrapper (no queue wait); None when it did not record one
    duration_s: float | None = None


@dataclass(frozen=True)
class AttemptTicket:
    """What an asset needs to run an attempt it was allowed to start."""

    attempt_id: int
    number: int
    processing: str
    calibration: str
    submitted_by: str
    expert_config: dict[str, Any]
    job_config: dict[str, Any]
    requested_iov: IoV
    workdir: Path
    payload_dir: Path


@dataclass(frozen=True)
class PayloadView:
    """A payload revision as the loop hands it out (checks, pages, the CLI, archives)."""

    name: str
    revision: int
    checksum: str
    iov: IoV
    file: str
    source: str = "job"  # job | upload


def payload_view(p: Payload) -> PayloadView:
    return PayloadView(
        name=p.name,
        revision=p.revision,
        checksum=p.checksum,
        iov=IoV(p.exp_low, p.run_low, p.exp_high, p.run_high),
        file=p.file,
        source=p.source,
    )


@dataclass(frozen=True)
class SiteView:
    """A calibration centre as its row says: where its jobs run and how its payloads are signed off
    (a processing's site for the loop; every site for ``b2cal site list``)."""

    name: str
    backend: str
    backend_args: dict[str, Any]
    storage_root: str
    path_prefix: str
    signoff_policy: str
    hold_until_deadline: bool
    runner: str  # b2cal | framework (domain/site_runner.py)
    runner_args: dict[str, Any]
    remote: RemoteHost | None  # set when the scheduler runs on another host

    def columns(self) -> dict[str, Any]:
        """Every column of the site's row, the remote host's flat (empty for a local site)."""
        own = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "remote"}
        return own | sites.remote_columns(self.remote)


def site_view(site: Site) -> SiteView:
    return SiteView(
        name=site.name,
        backend=site.backend,
        backend_args=dict(site.backend_args or {}),
        storage_root=site.storage_root,
        path_prefix=site.path_prefix,
        signoff_policy=site.signoff_policy,
        hold_until_deadline=site.hold_until_deadline,
        runner=site.runner,
        runner_args=dict(site.runner_args or {}),
        remote=sites.remote_host_of(site),
    )


@dataclass(frozen=True)
class ArrivedRun:
    """The files of one data tag and run that had arrived when a processing was first seen."""

    data_tag: str
    exp: int
    run: int
    files: int
    events: int


@dataclass(frozen=True)
class CatalogFileView:
    """A catalogued file as the data-arrival sensor reads it."""

    id: int
    data_tag: str
    data_format: str
    exp: int
    run: int
    n_events: int
    processing_id: int | None
