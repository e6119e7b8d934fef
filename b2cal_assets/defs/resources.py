"""Resources: the calibration loop (database + scripts) and one resource per batch backend."""

from __future__ import annotations

import dagster as dg
from pydantic import Field

from b2cal_assets.backends.base import BatchBackend
from b2cal_assets.backends.local import LocalBackend
from b2cal_assets.backends.manager import RetryPolicy, SubmitPolicy
from b2cal_assets.domain.remote_sites import RemoteHost
from b2cal_assets.loop.factory import loop_service
from b2cal_assets.loop.service import LoopService
from b2cal_assets.settings import DEFAULT_CDST_PRODUCER


class CalibrationLoopResource(dg.ConfigurableResource):
    """The calibration database and the calibration scripts, as one loop service."""

    database_url: str = Field(
        default="", description="SQLAlchemy URL; empty means $B2CAL_DATABASE_URL or SQLite."
    )
    calibrations_dir: str = Field(
        default="", description="Scripts directory; empty means $B2CAL_CALIBRATIONS_DIR."
    )
    cdst_producer: str = Field(
        default=DEFAULT_CDST_PRODUCER,
        description="module:function that reconstructs raw skims of one run into a cDST file.",
    )
    cdst_files_per_job: int = Field(
        default=0, ge=0, description="Raw files per cDST batch job; 0: one job per run and data tag."
    )

    def service(self) -> LoopService:
        return loop_service(self.database_url or None, self.calibrations_dir or None)


class BatchBackendResource(dg.ConfigurableResource):
    """Shared policy of every backend: the paper's lessons (limits, spacing, retries after a delay)."""

    max_jobs_in_system: int = 1000
    chunk_size: int = 100
    chunk_interval_s: float = 0.0
    poll_interval_s: float = 5.0
    forgotten_grace_s: float = 60.0
    max_failed_polls: int = 5
    max_retries: int = 3
    retry_delay_s: float = 1800.0

    def build_backend(self) -> BatchBackend:
        raise NotImplementedError(f"{type(self).__name__} does not build a backend")

    def build_remote_backend(self, remote: RemoteHost, site: str = "") -> BatchBackend:
        """The backend with its scheduler commands on ``remote`` (the submit host of ``site``)."""
        raise NotImplementedError(
            f"{type(self).__name__} runs jobs on this machine only, not on {remote.submit_host}"
        )

    def submit_policy(self) -> SubmitPolicy:
        return SubmitPolicy(
            max_jobs_in_system=self.max_jobs_in_system,
            chunk_size=self.chunk_size,
            chunk_interval_s=self.chunk_interval_s,
            poll_interval_s=self.poll_interval_s,
            forgotten_grace_s=self.forgotten_grace_s,
            max_failed_polls=self.max_failed_polls,
        )

    def retry_policy(self) -> RetryPolicy:
        return RetryPolicy(max_retries=self.max_retries, retry_delay_s=self.retry_delay_s)


class LocalBackendResource(BatchBackendResource):
    """Collector subjobs as processes on this machine."""

    max_processes: int = 4
    poll_interval_s: float = 0.5
    retry_delay_s: float = 5.0
    max_retries: int = 1

    def build_backend(self) -> BatchBackend:
        return LocalBackend(max_processes=self.max_processes)
