"""The framework's own settings objects read as b2cal's, where the framework is installed.

There, scripts build the framework's ``prompt.CalibrationSettings`` / ``ValidationSettings``
(namedtuples). b2cal reads their fields into its own classes, so the same checks, stages and
dependency graph apply; one framework object becomes one b2cal object, so ``depends_on`` keeps
pointing at the very settings of the other script.
"""

from __future__ import annotations

from typing import Any

from b2cal_assets.domain.settings import CalibrationSettings, ValidationSettings

__all__ = ["FrameworkSettingsReader", "is_framework_settings"]

_CALIBRATION_FIELDS = (
    "name", "expert_username", "subsystem", "description", "input_data_formats", "input_data_names",
    "input_data_filters", "depends_on", "expert_config", "produced_payloads",
)
_VALIDATION_FIELDS = ("name", "description", "download_files", "expert_config")


def is_framework_settings(obj: object, kind: str = "CalibrationSettings") -> bool:
    """A framework settings namedtuple (found by its class name and ``_asdict``), not b2cal's own."""
    return callable(getattr(obj, "_asdict", None)) and any(
        cls.__name__ == kind for cls in type(obj).__mro__
    )


class FrameworkSettingsReader:
    """Reads framework settings objects, each once (``ContractError`` when a field breaks a rule)."""

    def __init__(self) -> None:
        self._read: dict[int, tuple[object, CalibrationSettings]] = {}

    def calibration(self, obj: Any) -> CalibrationSettings:
        if isinstance(obj, CalibrationSettings):
            return obj
        known = self._read.get(id(obj))
        if known is not None and known[0] is obj:
            return known[1]
        fields = {k: v for k, v in obj._asdict().items() if k in _CALIBRATION_FIELDS}
        fields["depends_on"] = [self.calibration(dep) for dep in fields.get("depends_on") or []]
        settings = CalibrationSettings(**fields)
        self._read[id(obj)] = (obj, settings)  # the object is kept so its id is never reused
        return settings

    @staticmethod
    def validation(obj: Any) -> ValidationSettings:
        if isinstance(obj, ValidationSettings):
            return obj
        return ValidationSettings(**{k: v for k, v in obj._asdict().items() if k in _VALIDATION_FIELDS})
