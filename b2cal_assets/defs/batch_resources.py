"""One resource per lab batch system. Deployment settings live here; a site's own arguments (queue,
partition, memory, ...) come from its ``backend_args`` and override these per job.

A backend's options are declared once, on its options dataclass (``backends/slurm.py`` etc.), and its
site settings (``submit_dir``, ``max_array_size``, ...) once, as ``setting`` fields of the backend;
each resource gets one config field per option and per setting from those declarations
(``_option_fields``, ``_setting_fields``), so the launchpad, the resource and the backend cannot
disagree on what either is called or what it defaults to.
"""

from __future__ import annotations

import os
import typing
from pathlib import Path
from typing import Any

import dagster as dg
from pydantic import Field, create_model

from b2cal_assets.backends.arrays import ArrayBackend
from b2cal_assets.backends.base import BatchBackend
from b2cal_assets.backends.commands import SubprocessRunner
from b2cal_assets.backends.htcondor import HTCondorBackend
from b2cal_assets.backends.lsf import LSFBackend
from b2cal_assets.backends.options import BatchOptions
from b2cal_assets.backends.remote import remote_backend
from b2cal_assets.backends.slurm import SlurmBackend
from b2cal_assets.backends.ssh import SshRunner, SshTarget
from b2cal_assets.defs.env_vars import env_var
from b2cal_assets.defs.resources import BatchBackendResource, LocalBackendResource
from b2cal_assets.domain.remote_sites import RemoteHost
from b2cal_assets.settings import Settings, settings

__all__ = [
    "HTCondorBackendResource",
    "LSFBackendResource",
    "SlurmBackendResource",
    "batch_backend_resources",
    "local_backend_resource",
    "policy_from_settings",
]


def _option_fields(options: type[BatchOptions]) -> dict[str, Any]:
    """Config fields for a resource, one per option (``extra_lines`` as a list of lines)."""
    fields: dict[str, Any] = {}
    hints = typing.get_type_hints(options)
    for name, info in options.infos().items():
        default = options.defaults().get(name)
        if name == "extra_lines":
            fields[name] = (list[str], Field(default_factory=list, description="lines added to every script"))
            continue
        fields[name] = (hints[name], Field(default=default, description=info.help))
    return fields


def _setting_fields(backend: type[ArrayBackend[Any]]) -> dict[str, Any]:
    """Config fields for a resource, one per site setting of its backend (a path as text, empty: none)."""
    fields: dict[str, Any] = {}
    for name, info in backend.site_settings().items():
        if info.is_path:
            fields[name] = (str, Field(default="", description=info.help))
        else:
            fields[name] = (info.hint, Field(default=info.default, description=info.help))
    return fields


def _resource_fields(backend: type[ArrayBackend[Any]]) -> dict[str, Any]:
    return _option_fields(backend.options_class()) | _setting_fields(backend)


class _SchedulerResource(BatchBackendResource):
    """What the Slurm, HTCondor and LSF resources share: building their backend from their fields."""

    def _backend_class(self) -> type[ArrayBackend[Any]]:
        raise NotImplementedError(type(self).__name__)

    def _runner(self) -> SubprocessRunner:
        return SubprocessRunner()

    def _config(self) -> dict[str, Any]:
        backend = self._backend_class()
        names = set(backend.options_class().names()) | set(backend.site_settings())
        values = {k: getattr(self, k) for k in sorted(names) if k in type(self).model_fields}
        return {
            k: (tuple(v) if isinstance(v, list) else v) for k, v in values.items() if v not in (None, "", [])
        }

    def build_backend(self) -> BatchBackend:
        return self._backend_class().from_config(self._config(), runner=self._runner())

    def build_remote_backend(self, remote: RemoteHost, site: str = "") -> BatchBackend:
        """The scheduler's commands on the site's submit host over SSH; the path settings are this
        machine's (a ``submit_dir``, Slurm's ``jobcomp_file``), not the remote host's, so they are left out."""
        paths = {k for k, info in self._backend_class().site_settings().items() if info.is_path}
        config = {k: v for k, v in self._config().items() if k not in paths}
        current = settings()
        control = current.ssh_control_dir or Path(f"/tmp/b2cal-ssh-{os.getuid()}")
        target = SshTarget(
            host=remote.host,
            user=remote.user,
            port=remote.port,
            known_hosts=Path(remote.known_hosts),
            key_file=Path(remote.ssh_key) if remote.ssh_key else None,
        )
        ssh = SshRunner(target, control_dir=control, timeout_s=current.ssh_timeout_s, site=site)
        return remote_backend(self._backend_class(), config, ssh, remote.remote_root, remote.remote_python)


_SlurmBase = create_model(
    "_SlurmBase",
    __base__=_SchedulerResource,
    __module__=__name__,
    **_resource_fields(SlurmBackend),
)
_HTCondorBase = create_model(
    "_HTCondorBase",
    __base__=_SchedulerResource,
    __module__=__name__,
    **_resource_fields(HTCondorBackend),
)
_LSFBase = create_model(
    "_LSFBase", __base__=_SchedulerResource, __module__=__name__, **_resource_fields(LSFBackend)
)


class SlurmBackendResource(_SlurmBase):  # fields made from SlurmOptions and SlurmBackend's settings
    """Slurm: one ``sbatch --array`` per submission, one ``squeue`` per poll, ``scancel`` on cancel."""

    slurm_conf: str = Field(
        default="", description="SLURM_CONF for the Slurm commands (empty: the system's)."
    )

    def _backend_class(self) -> type[ArrayBackend[Any]]:
        return SlurmBackend

    def _runner(self) -> SubprocessRunner:
        return SubprocessRunner(env={"SLURM_CONF": self.slurm_conf} if self.slurm_conf else {})


class HTCondorBackendResource(_HTCondorBase):  # fields from HTCondorOptions and HTCondorBackend's settings
    """HTCondor: one cluster per submission (``queue ... from``), ``condor_q`` then ``condor_history``."""

    max_jobs_in_system: int = 10000

    def _backend_class(self) -> type[ArrayBackend[Any]]:
        return HTCondorBackend


class LSFBackendResource(_LSFBase):  # fields made from LSFOptions
    """LSF: job arrays through ``bsub``, one ``bjobs -json`` per poll, ``bkill`` on cancel."""

    max_jobs_in_system: int = 15000
    max_array_size: int = 1000

    def _backend_class(self) -> type[ArrayBackend[Any]]:
        return LSFBackend


def policy_from_settings(current: Settings, resource: type[BatchBackendResource]) -> dict[str, Any]:
    """The shared batch settings every backend (the local one included) takes from the environment.

    ``B2CAL_BATCH_RETRY_DELAY_S``, ``B2CAL_BATCH_POLL_INTERVAL_S`` and ``B2CAL_BATCH_MAX_FAILED_POLLS``
    (status queries that may fail in a row before the jobs are given up); unset, the resource keeps
    its own default (the paper's 30 min retry delay; seconds for the local pool).
    """
    chosen = {
        "retry_delay_s": current.batch_retry_delay_s,
        "poll_interval_s": current.batch_poll_interval_s,
        "max_failed_polls": current.batch_max_failed_polls,
    }
    return {k: v for k, v in chosen.items() if v is not None and k in resource.model_fields}


def local_backend_resource() -> LocalBackendResource:
    """Collector subjobs on this machine: ``B2CAL_LOCAL_MAX_PROCESSES`` processes (default 4)."""
    current = settings()
    return LocalBackendResource(
        max_processes=current.local_max_processes, **policy_from_settings(current, LocalBackendResource)
    )


def batch_backend_resources() -> dict[str, dg.ConfigurableResource]:
    """Retry delay and poll interval may be shortened by environment (tests, demos); the paper's 30 min is the default."""
    current = settings()
    # a field made from SlurmBackend's settings, so given by name (mypy sees only the declared fields)
    jobcomp: dict[str, Any] = {"jobcomp_file": env_var("slurm_jobcomp_file") or ""}
    return {
        "slurm_backend": SlurmBackendResource(
            # unset, the Slurm commands see this process's own SLURM_CONF (if any)
            slurm_conf=env_var("slurm_conf") or "",
            **jobcomp,
            **policy_from_settings(current, SlurmBackendResource),
        ),
        "htcondor_backend": HTCondorBackendResource(**policy_from_settings(current, HTCondorBackendResource)),
        "lsf_backend": LSFBackendResource(**policy_from_settings(current, LSFBackendResource)),
    }
