"""Merging an expert's overrides into a script's default ``expert_config``.

The framework merges shallowly (``{**defaults, **overrides}``); we do the same but refuse keys the
script does not declare and values of another type than the default, so a typo in a submission fails
at once with the key named instead of hours later inside a batch job.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from typing import Any, Literal

from b2cal_assets.domain.settings import ContractError

__all__ = ["ValueKind", "merge_expert_config", "value_kind"]

FIELD = "expert_config"


def _type_name(value: object) -> str:
    return "null" if value is None else type(value).__name__


ValueKind = Literal["bool", "int", "float", "str", "list", "dict", "any"]


def value_kind(default: Any) -> ValueKind:
    """What an expert_config key takes, from its default: the one rule the launchpad's fields, the
    settings form's fields and ``merge_expert_config`` share (an int may stand for a float)."""
    if isinstance(default, bool):
        return "bool"
    if isinstance(default, int):
        return "int"
    if isinstance(default, float):
        return "float"
    if isinstance(default, str):
        return "str"
    if isinstance(default, list | tuple):
        return "list"
    if isinstance(default, Mapping):
        return "dict"
    return "any"


def _coerce(key: str, default: Any, value: Any) -> Any:
    """Return ``value`` if it has the default's type (an int may stand for a float); else raise."""
    if default is None:
        return value
    is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if isinstance(default, bool):
        ok = isinstance(value, bool)
    elif isinstance(default, float):
        ok = is_number
        value = float(value) if ok else value
    elif isinstance(default, int):
        ok = is_number and isinstance(value, int)
    elif isinstance(default, (list, tuple)):
        ok = isinstance(value, (list, tuple))
        value = list(value) if ok else value
    elif isinstance(default, Mapping):
        ok = isinstance(value, Mapping)
        value = dict(value) if ok else value
    else:
        ok = type(value) is type(default)
    if ok:
        return value
    raise ContractError(
        FIELD,
        f"key {key!r} must be {_type_name(default)} like its default {default!r}, "
        f"got {_type_name(value)} {value!r}",
    )


def merge_expert_config(defaults: Mapping[str, Any], overrides: Mapping[str, Any] | None) -> dict[str, Any]:
    """``{**defaults, **overrides}`` after checking every override key and type; returns a new dict."""
    merged = copy.deepcopy(dict(defaults))
    if overrides is None:
        return merged
    if not isinstance(overrides, Mapping):
        raise ContractError(
            FIELD, f"overrides must be a dict (a JSON object), got {_type_name(overrides)} {overrides!r}"
        )
    for key, value in overrides.items():
        if key not in defaults:
            known = (
                ", ".join(repr(k) for k in sorted(defaults)) or "none (this script takes no expert_config)"
            )
            raise ContractError(FIELD, f"unknown key {key!r}; the known keys are {known}")
        merged[key] = copy.deepcopy(_coerce(key, defaults[key], value))
    for key, value in merged.items():
        try:
            json.dumps(value)
        except (TypeError, ValueError) as exc:
            raise ContractError(
                FIELD,
                f"key {key!r} holds {_type_name(value)} {value!r}, which is not JSON-serialisable ({exc})",
            ) from None
    return merged
