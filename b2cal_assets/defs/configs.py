"""What an expert fills in on the launchpad."""

import re
from collections.abc import Mapping
from typing import Any, Literal

import dagster as dg
from pydantic import Field

from b2cal_assets.domain.expert_config import value_kind


class SubmitConfig(dg.Config):
    """A calibration submission: expert_config overrides and job settings; empty means the script's defaults."""

    expert_config: dict[str, Any] = Field(
        default_factory=dict,
        description="Overrides of the script's expert_config (keys and types are checked).",
    )
    input_data_filters: dict[str, list[str]] | None = Field(
        default=None,
        description="Replaces input_data_filters for the named data (e.g. {'hadron_calib': ['On']}).",
    )
    max_files_per_collector_job: int | None = Field(
        default=None, description="Split collector subjobs by files."
    )
    max_collector_jobs: int | None = Field(default=None, description="Split collector subjobs by count.")
    max_iterations: int | None = Field(
        default=None, description="At most this many iterations (default: the script's)."
    )
    backend_args: dict[str, Any] = Field(
        default_factory=dict, description="Extra batch arguments, e.g. memory."
    )

    def job_config(self) -> dict[str, Any]:
        return {
            k: v
            for k, v in {
                "input_data_filters": self.input_data_filters,
                "max_files_per_collector_job": self.max_files_per_collector_job,
                "max_collector_jobs": self.max_collector_jobs,
                "max_iterations": self.max_iterations,
                "backend_args": self.backend_args or None,
            }.items()
            if v is not None
        }


class SignoffConfig(dg.Config):
    """An expert's verdict on the payloads of the latest attempt."""

    decision: Literal["accept", "reject"] = Field(
        description="accept lets dependents start; reject stops them."
    )
    comment: str = Field(default="", description="Why; it goes to the ticket and the audit log.")


# The launchpad schemas, inferred once: Dagster infers a ``Config`` parameter's schema again for every
# asset that takes it, which was a sixth of the code location's load time at 500 calibrations.
def _shape(config: type[dg.Config]) -> dg.Shape:
    schema = config.to_config_schema().config_type
    assert isinstance(schema, dg.Shape)  # a Config class is a Shape of its fields
    return schema


SUBMIT_SCHEMA = _shape(SubmitConfig)
SIGNOFF_SCHEMA = _shape(SignoffConfig)
# The op config fields, built once too. A Field whose type has only optional keys resolves its implicit
# default by snapshotting the whole schema; every calibration's submit schema has the same default
# (its expert_config keys have none), so ``submit_schema`` sets it: the same field, without the cost.
SUBMIT_DEFAULT = dg.Field(SUBMIT_SCHEMA).default_value
SIGNOFF_FIELD = dg.Field(SIGNOFF_SCHEMA)


_FIELD_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


_CONFIG_TYPES: dict[str, Any] = {
    "bool": dg.Bool,
    "int": dg.Int,
    "float": dg.Float,
    "str": dg.String,
    "list": dg.Array(dg.Any),
    "dict": dg.Permissive(),
    "any": dg.Any,
}


def _config_type(default: Any) -> Any:
    """The launchpad type of an expert_config key, from its default (``domain/expert_config.value_kind``)."""
    return _CONFIG_TYPES[value_kind(default)]


def submit_schema(defaults: Mapping[str, Any]) -> dg.Field:
    """``SUBMIT_SCHEMA`` with the script's own expert_config keys, so that the launchpad refuses an
    unknown key or a value of the wrong type before the run is launched, naming the key. A script with
    a key that cannot be a config field name keeps the free-form dict (the loop still checks it)."""
    return _with_submit_default(_submit_shape(defaults))


def _with_submit_default(shape: dg.Shape) -> dg.Field:
    """The op's config field over ``shape`` with the submit default set as Dagster itself would resolve
    it: ``default_value=`` would validate it against the schema again (a schema snapshot per
    calibration), and every calibration's shape has the same default (test_definitions_load checks)."""
    field = dg.Field(shape, is_required=False)
    field._default_value = SUBMIT_DEFAULT
    return field


def _submit_shape(defaults: Mapping[str, Any]) -> dg.Shape:
    if not defaults or not all(_FIELD_NAME.fullmatch(key) for key in defaults):
        return SUBMIT_SCHEMA
    keys = {
        key: dg.Field(_config_type(value), is_required=False, description=f"default: {value!r}")
        for key, value in defaults.items()
    }
    fields = dict(SUBMIT_SCHEMA.fields)
    fields["expert_config"] = dg.Field(
        dg.Shape(keys),
        is_required=False,
        description="Overrides of the script's expert_config; a key left out keeps its default.",
    )
    return dg.Shape(fields)


def submit_config(context: dg.AssetExecutionContext) -> SubmitConfig:
    """The run's launchpad values (already checked by Dagster against ``SUBMIT_SCHEMA``)."""
    return SubmitConfig(**context.op_execution_context.op_config)


def signoff_config(context: dg.AssetExecutionContext) -> SignoffConfig:
    return SignoffConfig(**context.op_execution_context.op_config)
