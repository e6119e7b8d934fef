"""Settings handed to resources as ``EnvVar``: Dagster reads them where the resource runs and shows the
variable's name, never its value, in the UI and in stored run configuration."""

from __future__ import annotations

import dagster as dg

from b2cal_assets.settings import env_name, settings


def env_var(field: str) -> dg.EnvVar | None:
    """``EnvVar("B2CAL_<FIELD>")`` when that variable is set (its value checked by the settings), else None."""
    current = settings()
    return dg.EnvVar(env_name(field)) if field in current.model_fields_set else None
