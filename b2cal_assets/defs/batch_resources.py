"""One resource per lab batch system. Deployment settings live here; a site's own arguments (queue,
partition, memory, ...) come from its ``backend_args`` and override these per job."""

from __future__ import annotations

import math
import os
from typing import Any

import dagster as dg
from pydantic import Field

from b2cal_assets.backends.base import BatchBackend
from b2cal_assets.backends.commands import SubprocessRunner
from b2cal_assets.defs.resources import BatchBackendResource


def _config(resource: dg.ConfigurableResource, keys: tuple[str, ...]) -> dict[str, Any]:
    values = {k: getattr(resource, k) for k in keys}
    return {k: (tuple(v) if isinstance(v, list) else v) for k, v in values.items() if v not in (None, "", [])}


class SlurmBackendResource(BatchBackendResource):
    """Slurm: one ``sbatch --array`` per submission, one ``squeue`` per poll, ``scancel`` on cancel."""

    slurm_conf: str = Field(
        default="", description="SLURM_CONF for the Slurm commands (empty: the system's)."
    )
    partition: str | None = None
    memory: str | None = None
    time_limit: str | None = None
    cpus: int | None = None
    account: str | None = None
    qos: str | None = None
    array_limit: int | None = None
    extra_lines: list[str] = Field(default_factory=list)
    jobcomp_file: str = ""
    submit_dir: str = ""
    max_array_size: int = 1000
    use_arrays: bool = True

    def build_backend(self) -> BatchBackend:
        from b2cal_assets.backends.slurm import SlurmBackend

        config = _config(
            self,
            (
                "partition",
                "memory",
                "time_limit",
                "cpus",
                "account",
                "qos",
                "array_limit",
                "extra_lines",
                "jobcomp_file",
                "submit_dir",
            ),
        )
        config.update(max_array_size=self.max_array_size, use_arrays=self.use_arrays)
        env = {"SLURM_CONF": self.slurm_conf} if self.slurm_conf else {}
        return SlurmBackend.from_config(config, runner=SubprocessRunner(env=env))


class HTCondorBackendResource(BatchBackendResource):
    """HTCondor: one cluster per submission (``queue ... from``), ``condor_q`` then ``condor_history``."""

    max_jobs_in_system: int = 10000
    universe: str = "vanilla"
    request_memory: str | None = None
    request_cpus: int | None = None
    request_disk: str | None = None
    max_idle: int | None = None
    max_materialize: int | None = None
    accounting_group: str | None = None
    extra_lines: list[str] = Field(default_factory=list)
    submit_dir: str = ""

    def build_backend(self) -> BatchBackend:
        from b2cal_assets.backends.htcondor import HTCondorBackend

        config = _config(
            self,
            (
                "universe",
                "request_memory",
                "request_cpus",
                "request_disk",
                "max_idle",
                "max_materialize",
                "accounting_group",
                "extra_lines",
                "submit_dir",
            ),
        )
        return HTCondorBackend.from_config(config, runner=SubprocessRunner())


class LSFBackendResource(BatchBackendResource):
    """LSF: job arrays through ``bsub``, one ``bjobs -json`` per poll, ``bkill`` on cancel."""

    max_jobs_in_system: int = 15000
    queue: str | None = None
    memory: str | None = None
    walltime: str | None = None
    slots: int | None = None
    project: str | None = None
    resources: str | None = None
    array_limit: int | None = None
    extra_lines: list[str] = Field(default_factory=list)
    submit_dir: str = ""
    max_array_size: int = 1000

    def build_backend(self) -> BatchBackend:
        from b2cal_assets.backends.lsf import LSFBackend

        config = _config(
            self,
            (
                "queue",
                "memory",
                "walltime",
                "slots",
                "project",
                "resources",
                "array_limit",
                "extra_lines",
                "submit_dir",
            ),
        )
        config["max_array_size"] = self.max_array_size
        return LSFBackend.from_config(config, runner=SubprocessRunner())


def _number(name: str, default: float, kind: type = float) -> Any:
    """A non-negative finite number from the environment; a bad value is named, not a traceback."""
    text = os.environ.get(name)
    if text is None or text.strip() == "":
        return kind(default)
    try:
        value = kind(text)
    except ValueError:
        raise ValueError(f"{name}={text!r} is not a {'whole ' if kind is int else ''}number") from None
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{name}={text!r} must be a finite number of at least 0")
    return value


def _seconds(name: str, default: float) -> float:
    return _number(name, default)


def policy_from_env(retry_delay_s: float = 1800.0, poll_interval_s: float = 5.0) -> dict[str, Any]:
    """The shared batch settings every backend (the local one included) takes from the environment.

    ``B2CAL_BATCH_RETRY_DELAY_S``, ``B2CAL_BATCH_POLL_INTERVAL_S`` and ``B2CAL_BATCH_MAX_FAILED_POLLS``
    (status queries that may fail in a row before the jobs are given up); the arguments are the
    defaults when a variable is unset.
    """
    return {
        "retry_delay_s": _seconds("B2CAL_BATCH_RETRY_DELAY_S", retry_delay_s),
        "poll_interval_s": _seconds("B2CAL_BATCH_POLL_INTERVAL_S", poll_interval_s),
        "max_failed_polls": _number("B2CAL_BATCH_MAX_FAILED_POLLS", 5, int),
    }


def batch_backend_resources() -> dict[str, dg.ConfigurableResource]:
    """Retry delay and poll interval may be shortened by environment (tests, demos); the paper's 30 min is the default."""
    common = policy_from_env()
    return {
        "slurm_backend": SlurmBackendResource(
            slurm_conf=os.environ.get("B2CAL_SLURM_CONF", os.environ.get("SLURM_CONF", "")),
            jobcomp_file=os.environ.get("B2CAL_SLURM_JOBCOMP_FILE", ""),
            **common,
        ),
        "htcondor_backend": HTCondorBackendResource(**common),
        "lsf_backend": LSFBackendResource(**common),
    }
