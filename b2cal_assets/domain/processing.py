"""Processings (one request to calibrate a bucket of runs) and the calibration centres that run them."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from b2cal_assets.domain.iov import IoV
from b2cal_assets.domain.remote_sites import RemoteHost
from b2cal_assets.domain.settings import ContractError
from b2cal_assets.domain.site_runner import RunnerKind, check_runner

__all__ = [
    "KNOWN_BACKENDS",
    "MAX_PROCESSING_NAME_LENGTH",
    "ProcessingKind",
    "ProcessingSpec",
    "SignoffPolicy",
    "SiteSpec",
    "validate_processing_name",
    "validate_site_name",
]

#: Dagster partition keys end up in MySQL columns of limited size; processing names are partition keys.
MAX_PROCESSING_NAME_LENGTH = 64
KNOWN_BACKENDS = ("local", "slurm", "htcondor", "lsf")
DEFAULT_WINDOW_HOURS = 48.0
#: ten years: a deadline past that overflows date arithmetic and is a typo anyway
MAX_WINDOW_HOURS = 24 * 366 * 10

_NAME_CHARS = re.compile(r"[A-Za-z0-9_.\-]")


class SignoffPolicy(StrEnum):
    AUTOMATIC = "automatic"  # signed off once the validity checks pass (one centre in the paper)
    MANUAL = "manual"  # the expert signs off from the UI (the other centre)


class ProcessingKind(StrEnum):
    PROMPT = "prompt"  # a ~2-week bucket of fresh runs
    REPROCESSING = "reprocessing"  # a large dataset, calibrated again


def _parse_enum(enum: type[StrEnum], value: object, what: str) -> Any:
    try:
        return enum(str(value).strip().lower())
    except ValueError:
        allowed = ", ".join(e.value for e in enum)
        raise ContractError(what, f"{value!r} is not one of {allowed}") from None


def _validate_name(name: object, what: str) -> str:
    if not isinstance(name, str) or not name:
        raise ContractError(what, f"must be a non-empty string, got {name!r}")
    if len(name) > MAX_PROCESSING_NAME_LENGTH:
        raise ContractError(
            what,
            f"{name!r} is {len(name)} characters long; at most {MAX_PROCESSING_NAME_LENGTH} "
            "(Dagster partition keys are stored in MySQL columns of that size)",
        )
    bad = sorted({c for c in name if not _NAME_CHARS.fullmatch(c)})
    if bad:
        shown = ", ".join(repr(c) for c in bad)
        raise ContractError(
            what,
            f"{name!r} contains {shown}; use only letters, digits, '_', '.' and '-' (e.g. 'prompt_e26_b3')",
        )
    if not name[0].isalnum():
        raise ContractError(what, f"{name!r} must start with a letter or a digit")
    return name


def validate_processing_name(name: str) -> str:
    """Return ``name`` if it can be a processing name (a Dagster partition key); else raise ``ContractError``."""
    return _validate_name(name, "processing name")


def validate_site_name(name: str) -> str:
    """Site names follow the processing-name rules: they appear in paths and partition-derived keys."""
    return _validate_name(name, "site name")


def _json_dict(value: object, what: str) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise ContractError(what, f"must be a dict, got {type(value).__name__} {value!r}")
    try:
        json.dumps(dict(value))
    except (TypeError, ValueError) as exc:
        raise ContractError(what, f"must be JSON-serialisable: {exc}") from None
    return dict(value)


@dataclass(frozen=True)
class SiteSpec:
    """A calibration centre: which batch backend runs jobs, where files live, how sign-off happens.

    ``path_prefix`` (e.g. ``root://host:1094/``) is prepended to input paths so batch nodes read
    through XRootD. ``hold_until_deadline`` keeps early expert submissions waiting until the
    submission window closes, so all calibrations of a stage start together.
    """

    name: str
    backend: str = "local"
    backend_args: Mapping[str, Any] = field(default_factory=dict)
    storage_root: str = ""
    path_prefix: str = ""
    signoff_policy: SignoffPolicy = SignoffPolicy.MANUAL
    hold_until_deadline: bool = False
    runner: RunnerKind = RunnerKind.B2CAL  # who runs an attempt: b2cal, or one b2caf-prompt-run job
    runner_args: Mapping[str, Any] = field(default_factory=dict)  # the framework's setup, backend, heartbeat
    remote: RemoteHost | None = None  # the submit host, when the scheduler runs on another machine

    def __post_init__(self) -> None:
        validate_site_name(self.name)
        backend = str(self.backend).strip().lower()
        if backend not in KNOWN_BACKENDS:
            raise ContractError("backend", f"{self.backend!r} is not one of {', '.join(KNOWN_BACKENDS)}")
        object.__setattr__(self, "backend", backend)
        if self.remote is not None and backend == "local":
            raise ContractError(
                "submit_host",
                "the local backend runs jobs on this machine; a remote site needs a batch backend",
            )
        object.__setattr__(self, "backend_args", _json_dict(self.backend_args, "backend_args"))
        if not isinstance(self.storage_root, str) or not self.storage_root.strip():
            raise ContractError(
                "storage_root", f"a site needs a storage root directory, got {self.storage_root!r}"
            )
        if not isinstance(self.path_prefix, str):
            raise ContractError("path_prefix", f"must be a string, got {self.path_prefix!r}")
        object.__setattr__(
            self, "signoff_policy", _parse_enum(SignoffPolicy, self.signoff_policy, "signoff_policy")
        )
        if not isinstance(self.hold_until_deadline, bool):
            raise ContractError(
                "hold_until_deadline", f"must be true or false, got {self.hold_until_deadline!r}"
            )
        runner, runner_args = check_runner(self.runner, self.runner_args, backend)
        object.__setattr__(self, "runner", runner)
        object.__setattr__(self, "runner_args", runner_args)

    def input_path(self, path: str) -> str:
        """The path a batch node opens: ``path_prefix + path`` (as the framework does) unless it has a scheme.

        ``root://host:1094/`` + ``/data/f.root`` gives ``root://host:1094//data/f.root``, XRootD's
        spelling of an absolute path.
        """
        if not self.path_prefix or "://" in path:
            return path
        return self.path_prefix + path


@dataclass(frozen=True)
class ProcessingSpec:
    """One request to calibrate a bucket of runs at a site, against a global-tag chain."""

    name: str
    kind: ProcessingKind
    site: str
    iov: IoV
    global_tags: tuple[str, ...] = ()
    window_hours: float = DEFAULT_WINDOW_HOURS

    def __post_init__(self) -> None:
        validate_processing_name(self.name)
        object.__setattr__(self, "kind", _parse_enum(ProcessingKind, self.kind, "kind"))
        validate_site_name(self.site)
        iov = self.iov
        if isinstance(iov, str):
            iov = IoV.parse(iov)
        elif not isinstance(iov, IoV):
            try:
                iov = IoV(*iov)
            except TypeError:
                raise ContractError(
                    "iov", f"must be four integers exp_low,run_low,exp_high,run_high, got {iov!r}"
                ) from None
        try:
            iov.check()
        except ValueError as exc:
            raise ContractError("iov", str(exc)) from None
        object.__setattr__(self, "iov", iov)
        if isinstance(self.global_tags, str):
            raise ContractError(
                "global_tags", f"must be a list of global tag names, not the string {self.global_tags!r}"
            )
        tags = tuple(self.global_tags)
        for tag in tags:
            if not isinstance(tag, str) or not tag.strip() or any(c.isspace() for c in tag):
                raise ContractError("global_tags", f"{tag!r} is not a global tag name (non-empty, no blanks)")
        object.__setattr__(self, "global_tags", tags)
        if (
            isinstance(self.window_hours, bool)
            or not isinstance(self.window_hours, (int, float))
            or not math.isfinite(self.window_hours)
            or not 0 <= self.window_hours <= MAX_WINDOW_HOURS
        ):
            raise ContractError(
                "window_hours",
                f"must be a finite number of hours from 0 to {MAX_WINDOW_HOURS} (0 submits the defaults "
                f"at once), got {self.window_hours!r}",
            )
        object.__setattr__(self, "window_hours", float(self.window_hours))
