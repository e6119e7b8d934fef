"""What an expert may submit: expert_config overrides and job settings, checked against the script."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from b2cal_assets.backends.base import BackendError
from b2cal_assets.backends.commands import check_job_backend_args
from b2cal_assets.domain.expert_config import merge_expert_config
from b2cal_assets.domain.filters import validate_filter_name
from b2cal_assets.domain.settings import CalibrationSettings, ContractError

JOB_SETTINGS = (
    "input_data_filters",
    "max_files_per_collector_job",
    "max_collector_jobs",
    "max_iterations",
    "backend_args",
)


def checked_submission(
    settings: CalibrationSettings, expert_config: Mapping[str, Any], job_config: Mapping[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The merged expert_config and the job settings, or a ``ContractError`` naming what is wrong."""
    merged = merge_expert_config(dict(settings.expert_config or {}), dict(expert_config))
    unknown_settings = sorted(set(job_config) - set(JOB_SETTINGS))
    if unknown_settings:
        raise ContractError(
            "job settings",
            f"unknown {', '.join(unknown_settings)}; the settings are {', '.join(JOB_SETTINGS)}",
        )
    filters = job_config.get("input_data_filters") or {}
    unknown = sorted(set(filters) - set(settings.input_data_names))
    if unknown:
        raise ContractError(
            "input_data_filters",
            f"no input data named {', '.join(unknown)}; {settings.name} reads "
            f"{', '.join(sorted(settings.input_data_names))}",
        )
    for names in filters.values():
        for name in names:
            validate_filter_name(name)
    if (
        job_config.get("max_files_per_collector_job") is not None
        and job_config.get("max_collector_jobs") is not None
    ):
        raise ContractError(
            "max_collector_jobs", "set max_files_per_collector_job or max_collector_jobs, not both"
        )
    for field in ("max_files_per_collector_job", "max_collector_jobs", "max_iterations"):
        value = job_config.get(field)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
            raise ContractError(field, f"must be a whole number of at least 1, not {value!r}")
    backend_args = job_config.get("backend_args") or {}
    if not isinstance(backend_args, Mapping):
        raise ContractError(
            "backend_args", f"must be a mapping such as {{'memory': '4G'}}, not {backend_args!r}"
        )
    try:
        check_job_backend_args(backend_args)
    except BackendError as exc:
        raise ContractError("backend_args", str(exc)) from None
    return merged, {k: v for k, v in job_config.items() if v not in (None, {}, [])}
