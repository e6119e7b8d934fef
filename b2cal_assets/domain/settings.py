"""The settings a calibration or validation script declares, checked as the framework checks them.

``CalibrationSettings`` takes the framework's arguments (positional order included) so that existing
scripts load unchanged; each rule that fails raises a ``ContractError`` naming the field and the value.
Settings are immutable and hash by name, so they can key dicts and sit in sets.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable, Mapping
from typing import Any, NoReturn

from b2cal_assets.domain.filters import INPUT_DATA_FILTERS, parse_filter_name

__all__ = [
    "ALLOWED_DATA_FORMATS",
    "INPUT_DATA_FILTERS",
    "MAX_NAME_LENGTH",
    "SUBSYSTEMS",
    "CalibrationSettings",
    "ContractError",
    "FrozenDict",
    "ValidationSettings",
]

MAX_NAME_LENGTH = 64
ALLOWED_DATA_FORMATS = frozenset({"raw", "cdst", "mdst", "udst"})
#: The framework's subsystems (``CalibrationSettings.subsystem``); "alignment" marks the alignment stage.
SUBSYSTEMS = (
    "pxd", "svd", "cdc", "ecl", "top", "arich", "klm", "trigger", "tracking", "alignment", "beam", "example",
)
_POSITIONAL_ORDER = (
    "the current framework's positional order is name, expert_username, subsystem, description, "
    "input_data_formats, input_data_names, input_data_filters, depends_on, expert_config, produced_payloads"
)


class ContractError(ValueError):
    """A script or a submission breaks the calibration-script contract; names the field at fault."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(field, message)
        self.field = field
        self.message = message

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


class FrozenDict(dict[str, Any]):
    """A ``dict`` that refuses changes, so settings stay as declared and still ``json.dumps``."""

    def _immutable(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise TypeError("settings are read-only; merge overrides with merge_expert_config() instead")

    __setitem__ = __delitem__ = _immutable
    clear = pop = popitem = setdefault = update = _immutable
    __ior__ = _immutable

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (dict(self),))


def _check_name(name: object, field: str = "name") -> str:
    if not isinstance(name, str) or not name.strip():
        raise ContractError(field, f"must be a non-empty string, got {name!r}")
    if len(name) > MAX_NAME_LENGTH:
        raise ContractError(
            field, f"{name!r} is {len(name)} characters long; a name has at most {MAX_NAME_LENGTH}"
        )
    return name


def _string_list(value: object, field: str, example: str, *, allow_empty: bool = False) -> list[str]:
    """A list of strings; a bare string is refused (``list("raw")`` would be three letters)."""
    if isinstance(value, str):
        raise ContractError(
            field, f"must be a list of strings such as [{example!r}], not the string {value!r}"
        )
    if isinstance(value, Mapping) or not isinstance(value, Iterable):
        raise ContractError(field, f"must be a list of strings, got {type(value).__name__} {value!r}")
    items = list(value)
    for item in items:
        if not isinstance(item, str) or not (item or allow_empty):
            raise ContractError(field, f"every entry must be a non-empty string, got {item!r}")
    return items


def _check_json_dict(value: object, field: str) -> FrozenDict:
    if value is None:
        return FrozenDict()
    if not isinstance(value, Mapping):
        raise ContractError(field, f"must be a dict (a JSON object), got {type(value).__name__} {value!r}")
    for key, item in value.items():
        if not isinstance(key, str):
            raise ContractError(field, f"keys must be strings, got {key!r}")
        try:
            json.dumps(item)
        except (TypeError, ValueError) as exc:
            raise ContractError(
                field,
                f"key {key!r} holds {type(item).__name__} {item!r}, which is not JSON-serialisable ({exc})",
            ) from None
    return FrozenDict(copy.deepcopy(dict(value)))


def _check_formats(value: object) -> frozenset[str]:
    if not value:
        raise ContractError(
            "input_data_formats", f"at least one data format is needed, one of {sorted(ALLOWED_DATA_FORMATS)}"
        )
    formats = [f.lower() for f in _string_list(value, "input_data_formats", "raw")]
    for fmt in formats:
        if fmt not in ALLOWED_DATA_FORMATS:
            raise ContractError(
                "input_data_formats",
                f"{fmt!r} is not a data format; use {', '.join(sorted(ALLOWED_DATA_FORMATS))}",
            )
    return frozenset(formats)


def _check_names(value: object) -> frozenset[str]:
    if not value:
        raise ContractError(
            "input_data_names", "at least one input data name (a skim name such as 'hlt_mumu') is needed"
        )
    return frozenset(_string_list(value, "input_data_names", "hadron_calib"))


def _check_filters(value: object, names: frozenset[str]) -> FrozenDict:
    if not value:
        return FrozenDict()
    if not isinstance(value, Mapping):
        raise ContractError(
            "input_data_filters",
            f"must be a dict of input data name -> filter list, got {type(value).__name__}",
        )
    keys = set(value)
    if keys != names:
        parts = []
        if missing := sorted(names - keys, key=str):
            parts.append(f"no filters for {', '.join(map(repr, missing))}")
        if extra := sorted(keys - names, key=str):
            parts.append(f"{', '.join(map(repr, extra))} not in input_data_names")
        raise ContractError(
            "input_data_filters",
            f"keys must equal input_data_names {sorted(names)}: {'; '.join(parts)}",
        )
    checked: dict[str, tuple[str, ...]] = {}
    for data_name, filters in value.items():
        field = f"input_data_filters[{data_name!r}]"
        # "" is a real filter value (INPUT_DATA_FILTERS["Beam Energy"][""]); parse_filter_name judges names.
        items = _string_list(filters, field, "Good", allow_empty=True) if filters else []
        for item in items:
            try:
                parse_filter_name(item)
            except ValueError as exc:
                raise ContractError(field, str(exc)) from None
        checked[data_name] = tuple(items)
    return FrozenDict(checked)


def _check_subsystem(subsystem: object) -> str | None:
    """One of the framework's ``SUBSYSTEMS``; ``None`` is the older framework's form without the field."""
    if subsystem is None:
        return None
    if not isinstance(subsystem, str) or subsystem not in SUBSYSTEMS:
        raise ContractError(
            "subsystem",
            f"{subsystem!r} is not one of the framework's subsystems {', '.join(SUBSYSTEMS)} ({_POSITIONAL_ORDER})",
        )
    return subsystem


class CalibrationSettings:
    """What a calibration script declares about itself (the framework's ``prompt.CalibrationSettings``)."""

    allowed_data_formats = ALLOWED_DATA_FORMATS
    __slots__ = (
        "depends_on",
        "description",
        "expert_config",
        "expert_username",
        "input_data_filters",
        "input_data_formats",
        "input_data_names",
        "name",
        "produced_payloads",
        "subsystem",
    )

    name: str
    expert_username: str
    description: str
    input_data_formats: frozenset[str]
    input_data_names: frozenset[str]
    input_data_filters: Mapping[str, tuple[str, ...]]
    depends_on: tuple[CalibrationSettings, ...]
    expert_config: Mapping[str, Any]
    subsystem: str | None
    produced_payloads: tuple[str, ...]

    def __init__(
        self,
        name: str,
        expert_username: str,
        subsystem: str | None = None,
        description: str | None = None,
        input_data_formats: Iterable[str] | None = None,
        input_data_names: Iterable[str] | None = None,
        input_data_filters: Mapping[str, Iterable[str]] | None = None,
        depends_on: Iterable[CalibrationSettings] | None = None,
        expert_config: Mapping[str, Any] | None = None,
        produced_payloads: Iterable[str] | None = None,
    ) -> None:
        name = _check_name(name)
        if not isinstance(expert_username, str):
            raise ContractError("expert_username", f"must be a string (a user name), got {expert_username!r}")
        subsystem = _check_subsystem(subsystem)
        if description is not None and not isinstance(description, str):
            raise ContractError(
                "description", f"must be a string, got {type(description).__name__} ({_POSITIONAL_ORDER})"
            )
        formats = _check_formats(input_data_formats)
        names = _check_names(input_data_names)
        filters = _check_filters(input_data_filters, names)
        deps = self._check_depends_on(name, depends_on)
        config = _check_json_dict(expert_config, "expert_config")
        payloads = (
            tuple(_string_list(produced_payloads, "produced_payloads", "CDCBadBoards"))
            if produced_payloads
            else ()
        )
        for attr, value in (
            ("name", name),
            ("expert_username", expert_username),
            ("description", description or ""),
            ("input_data_formats", formats),
            ("input_data_names", names),
            ("input_data_filters", filters),
            ("depends_on", deps),
            ("expert_config", config),
            ("subsystem", subsystem),
            ("produced_payloads", payloads),
        ):
            object.__setattr__(self, attr, value)

    @staticmethod
    def _check_depends_on(name: str, depends_on: object) -> tuple[CalibrationSettings, ...]:
        if not depends_on:
            return ()
        if isinstance(depends_on, (str, CalibrationSettings)) or not isinstance(depends_on, Iterable):
            raise ContractError(
                "depends_on", f"must be a list of other scripts' settings objects, got {depends_on!r}"
            )
        deps = tuple(depends_on)
        for index, dep in enumerate(deps):
            if not isinstance(dep, CalibrationSettings):
                raise ContractError(
                    "depends_on",
                    f"entry {index} is {type(dep).__name__} {dep!r}, not a CalibrationSettings; import the other "
                    "script's settings, e.g. `from prompt.calibrations.caf_cdc import settings as cdc`",
                )
            if dep.name == name:
                raise ContractError("depends_on", f"{name!r} cannot depend on itself")
        return deps

    @property
    def depends_on_names(self) -> tuple[str, ...]:
        return tuple(dep.name for dep in self.depends_on)

    def __setattr__(self, attr: str, value: object) -> NoReturn:
        raise AttributeError(f"CalibrationSettings is immutable; cannot set {attr!r}")

    def __delattr__(self, attr: str) -> NoReturn:
        raise AttributeError(f"CalibrationSettings is immutable; cannot delete {attr!r}")

    def _fields(self) -> tuple[Any, ...]:
        return tuple(getattr(self, attr) for attr in _CALIBRATION_FIELDS)

    def __reduce__(self) -> tuple[Any, ...]:
        kwargs = self._asdict()
        kwargs["input_data_filters"] = {k: list(v) for k, v in self.input_data_filters.items()}
        kwargs["expert_config"] = dict(self.expert_config)
        return (_rebuild_calibration_settings, (kwargs,))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CalibrationSettings):
            return NotImplemented
        return self is other or self._fields() == other._fields()

    def __hash__(self) -> int:
        return hash(self.name)

    def __repr__(self) -> str:
        return f"CalibrationSettings(name={self.name!r}, depends_on={list(self.depends_on_names)!r})"

    def _asdict(self) -> dict[str, Any]:
        return {attr: getattr(self, attr) for attr in _CALIBRATION_FIELDS}

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict; ``depends_on`` as names."""
        return {
            "name": self.name,
            "expert_username": self.expert_username,
            "description": self.description,
            "input_data_formats": sorted(self.input_data_formats),
            "input_data_names": sorted(self.input_data_names),
            "input_data_filters": {k: list(v) for k, v in sorted(self.input_data_filters.items())},
            "depends_on": list(self.depends_on_names),
            "expert_config": copy.deepcopy(dict(self.expert_config)),
            "subsystem": self.subsystem,
            "produced_payloads": list(self.produced_payloads),
        }

    def json_dumps(self) -> str:
        """The framework's JSON form of the settings."""
        return json.dumps(self.to_dict())


_CALIBRATION_FIELDS = (
    "name",
    "expert_username",
    "subsystem",
    "description",
    "input_data_formats",
    "input_data_names",
    "input_data_filters",
    "depends_on",
    "expert_config",
    "produced_payloads",
)


def _rebuild_calibration_settings(kwargs: dict[str, Any]) -> CalibrationSettings:
    return CalibrationSettings(**kwargs)


class ValidationSettings:
    """What a validation script declares (the framework's ``ValidationSettings``); ``name`` = the calibration's."""

    __slots__ = ("description", "download_files", "expert_config", "name")

    name: str
    description: str
    download_files: tuple[str, ...]
    expert_config: Mapping[str, Any]

    def __init__(
        self,
        name: str,
        description: str | None,
        download_files: Iterable[str] | None = None,
        expert_config: Mapping[str, Any] | None = None,
    ) -> None:
        name = _check_name(name)
        if description is not None and not isinstance(description, str):
            raise ContractError("description", f"must be a string, got {type(description).__name__}")
        files = tuple(_string_list(download_files, "download_files", "plots.pdf")) if download_files else ()
        config = _check_json_dict(expert_config, "expert_config")
        for attr, value in (
            ("name", name),
            ("description", description or ""),
            ("download_files", files),
            ("expert_config", config),
        ):
            object.__setattr__(self, attr, value)

    def __setattr__(self, attr: str, value: object) -> NoReturn:
        raise AttributeError(f"ValidationSettings is immutable; cannot set {attr!r}")

    def __delattr__(self, attr: str) -> NoReturn:
        raise AttributeError(f"ValidationSettings is immutable; cannot delete {attr!r}")

    def __reduce__(self) -> tuple[Any, ...]:
        return (
            ValidationSettings,
            (self.name, self.description, list(self.download_files), dict(self.expert_config)),
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ValidationSettings):
            return NotImplemented
        return (self.name, self.description, self.download_files, self.expert_config) == (
            other.name,
            other.description,
            other.download_files,
            other.expert_config,
        )

    def __hash__(self) -> int:
        return hash(self.name)

    def __repr__(self) -> str:
        return f"ValidationSettings(name={self.name!r})"

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "download_files": list(self.download_files),
            "expert_config": copy.deepcopy(dict(self.expert_config)),
        }

    def json_dumps(self) -> str:
        return json.dumps(self.to_dict())
