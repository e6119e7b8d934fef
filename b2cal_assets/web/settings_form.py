"""The submission form generated from a script's ``expert_config`` defaults: one field per key, typed by
its default (a number, a checkbox for a bool, text for a string; JSON only for nested values), read back
and checked on the server with the error next to the field it is about.

Only keys whose value differs from the default are sent to the loop, so an attempt records what the
expert changed; the loop checks the keys and types again (``domain/expert_config``).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from starlette.datastructures import FormData

from b2cal_assets.domain.expert_config import value_kind
from b2cal_assets.web.forms import FormRejected, text_field

FIELD_PREFIX = "cfg."
MARKER = "settings_form"  # a hidden field: the typed form was sent (an unchecked box sends nothing)
_INT = re.compile(r"[+-]?[0-9]{1,18}")


class SettingsRejected(FormRejected):
    """Some fields are wrong: ``errors`` by key, ``values`` as typed (shown again in the form)."""

    def __init__(self, errors: dict[str, str], values: dict[str, str]):
        super().__init__("the settings were not sent: " + "; ".join(f"{k}: {e}" for k, e in errors.items()))
        self.errors = errors
        self.values = values


@dataclass(frozen=True)
class SettingField:
    key: str
    kind: str  # int | float | bool | str | json
    text: str  # the value as the input shows it
    default_text: str
    changed: bool
    error: str
    json_type: str = ""  # for a JSON field, the default's type (the page's script checks it too)

    @property
    def name(self) -> str:
        return FIELD_PREFIX + self.key


def kind_of(default: Any) -> str:
    """The form field of a key: its scalar kind, or JSON for nested and free values."""
    kind = value_kind(default)
    return kind if kind in ("bool", "int", "float", "str") else "json"


def as_text(value: Any, kind: str) -> str:
    if kind == "bool":
        return "true" if value else ""
    if kind == "str":
        return str(value)
    if kind in ("int", "float"):
        return repr(value)
    return json.dumps(value, indent=1, sort_keys=True)


def settings_fields(
    defaults: Mapping[str, Any],
    current: Mapping[str, Any],
    values: Mapping[str, str] | None = None,
    errors: Mapping[str, str] | None = None,
) -> list[SettingField]:
    """The form's fields: ``current`` (the defaults with the last settings on top) unless ``values``
    (what was typed, sent back with ``errors``) says otherwise."""
    values, errors = values or {}, errors or {}
    fields = []
    for key in sorted(defaults):
        kind = kind_of(defaults[key])
        value = current.get(key, defaults[key])
        text = values[key] if key in values else as_text(value, kind)
        fields.append(
            SettingField(
                key,
                kind,
                text,
                as_text(defaults[key], kind) if kind != "bool" else str(defaults[key]).lower(),
                value != defaults[key],
                errors.get(key, ""),
                type(defaults[key]).__name__ if kind == "json" and defaults[key] is not None else "",
            )
        )
    return fields


def _parse(kind: str, default: Any, text: str) -> Any:
    """The typed value of one field, or ``ValueError`` with what is wrong, in a person's words."""
    if kind == "bool":
        return text == "true"
    if kind == "str":
        return text
    stripped = text.strip()
    if kind == "int":
        if not _INT.fullmatch(stripped):
            raise ValueError(f"a whole number, such as {default}, not {text!r}")
        return int(stripped)
    if kind == "float":
        try:
            number = float(stripped)
        except ValueError:
            raise ValueError(f"a number, such as {default}, not {text!r}") from None
        if not math.isfinite(number):
            raise ValueError(f"a finite number, not {text!r}")
        return number
    try:
        value = json.loads(stripped)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})") from None
    if default is not None and type(value) is not type(default):
        raise ValueError(f"JSON of the default's type ({type(default).__name__}), not {type(value).__name__}")
    return value


def submitted_settings(form: FormData, defaults: Mapping[str, Any]) -> dict[str, Any] | None:
    """The overrides typed into the generated form (keys that differ from the defaults); None when the
    form was not the generated one (a client posting ``expert_config`` JSON)."""
    if not text_field(form, MARKER):
        return None
    values: dict[str, str] = {}
    errors: dict[str, str] = {}
    overrides: dict[str, Any] = {}
    for key, default in defaults.items():
        kind = kind_of(default)
        text = text_field(form, FIELD_PREFIX + key)
        values[key] = text
        try:
            value = _parse(kind, default, text)
        except ValueError as exc:
            errors[key] = f"must be {exc}" if kind in ("int", "float") else str(exc)
            continue
        if value != default:
            overrides[key] = value
    unknown = sorted(
        k[len(FIELD_PREFIX) :]
        for k in form
        if k.startswith(FIELD_PREFIX) and k[len(FIELD_PREFIX) :] not in defaults
    )
    if unknown:
        errors["_form"] = (
            f"not settings of this script: {', '.join(unknown)}; known: {', '.join(sorted(defaults))}"
        )
    if errors:
        raise SettingsRejected(errors, values)
    return overrides
