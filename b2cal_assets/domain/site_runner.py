"""Which program runs a site's calibration attempts: b2cal's own runner, or the experiment's framework.

A site with ``runner: framework`` submits ONE job per attempt that runs the site's setup commands and
the framework's ``b2caf-prompt-run`` (its CAF then submits the collectors itself). ``runner_args``
says how: ``setup`` (shell commands that set up the framework, run in order), ``backend`` (the
``b2caf-prompt-run`` backend inside that job; the framework has no Slurm backend, so a Slurm site
runs its collectors with ``Local`` inside the one allocation unless told otherwise), ``heartbeat``
(seconds between the framework's checks of its jobs) and ``container`` (an image: the one job runs as a
container of it on the daemon's container engine instead of on the site's backend, the paper's pattern).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from b2cal_assets.domain.settings import ContractError

__all__ = [
    "DEFAULT_HEARTBEAT_S",
    "FRAMEWORK_BACKENDS",
    "FrameworkSettings",
    "RunnerKind",
    "check_runner",
    "framework_settings",
]

#: The backend names ``b2caf-prompt-run`` takes (its ``caf.backends`` subcommands).
FRAMEWORK_BACKENDS = ("Local", "LSF", "PBS", "HTCondor")
DEFAULT_HEARTBEAT_S = 60
#: The framework backend inside the one job, by the site's batch backend.
_DEFAULT_FRAMEWORK_BACKEND = {"local": "Local", "lsf": "LSF", "htcondor": "HTCondor", "slurm": "Local"}
_RUNNER_ARGS = ("setup", "backend", "heartbeat", "container")


class RunnerKind(StrEnum):
    B2CAL = "b2cal"  # the project's own runner: b2cal submits every collector subjob
    FRAMEWORK = "framework"  # one b2caf-prompt-run job; the framework's CAF submits the collectors


@dataclass(frozen=True)
class FrameworkSettings:
    """How a site runs ``b2caf-prompt-run``: setup commands, the framework's backend, its heartbeat."""

    setup: tuple[str, ...]
    backend: str
    heartbeat_s: int
    container: str | None = None  # the image the one job runs in, on the daemon's container engine


def check_runner(runner: object, runner_args: object, site_backend: str) -> tuple[RunnerKind, dict[str, Any]]:
    """The runner and its arguments, checked; raises ``ContractError`` naming the field and the reason."""
    try:
        kind = RunnerKind(str(runner).strip().lower())
    except ValueError:
        allowed = ", ".join(k.value for k in RunnerKind)
        raise ContractError("runner", f"{runner!r} is not one of {allowed}") from None
    if not isinstance(runner_args, Mapping):
        raise ContractError(
            "runner_args", f"must be a dict, got {type(runner_args).__name__} {runner_args!r}"
        )
    args = dict(runner_args)
    if kind == RunnerKind.B2CAL:
        if args:
            raise ContractError(
                "runner_args", f"only a site with runner framework takes runner_args, got {args}"
            )
        return kind, {}
    if unknown := sorted(set(args) - set(_RUNNER_ARGS)):
        raise ContractError("runner_args", f"unknown key {unknown[0]!r}; allowed: {', '.join(_RUNNER_ARGS)}")
    setup = args.get("setup", [])
    if (
        isinstance(setup, str)
        or not isinstance(setup, list | tuple)
        or not all(isinstance(c, str) and c.strip() for c in setup)
    ):
        raise ContractError("runner_args.setup", f"must be a list of non-empty shell commands, got {setup!r}")
    if any("\n" in c for c in setup):
        raise ContractError(
            "runner_args.setup", "a setup command must be one line; give several commands instead"
        )
    backend = args.get("backend", _DEFAULT_FRAMEWORK_BACKEND[site_backend])
    if backend not in FRAMEWORK_BACKENDS:
        raise ContractError(
            "runner_args.backend",
            f"{backend!r} is not one of b2caf-prompt-run's {', '.join(FRAMEWORK_BACKENDS)}",
        )
    heartbeat = args.get("heartbeat", DEFAULT_HEARTBEAT_S)
    if isinstance(heartbeat, bool) or not isinstance(heartbeat, int) or heartbeat < 1:
        raise ContractError(
            "runner_args.heartbeat", f"must be a whole number of seconds >= 1, got {heartbeat!r}"
        )
    checked: dict[str, Any] = {"setup": list(setup), "backend": backend, "heartbeat": heartbeat}
    if (container := args.get("container")) is not None:
        if not isinstance(container, str) or not container.strip() or any(c.isspace() for c in container):
            raise ContractError(
                "runner_args.container", f"must be one image name like b2cal:latest, got {container!r}"
            )
        checked["container"] = container
    return kind, checked


def framework_settings(runner_args: Mapping[str, Any], site_backend: str) -> FrameworkSettings:
    """The framework settings of a site whose ``runner_args`` were stored by ``check_runner``."""
    _kind, args = check_runner(RunnerKind.FRAMEWORK, runner_args, site_backend)
    return FrameworkSettings(tuple(args["setup"]), args["backend"], args["heartbeat"], args.get("container"))
