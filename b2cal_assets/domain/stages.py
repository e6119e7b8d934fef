"""The stages of a calibration loop, in the order they run (paper, section 2.2)."""

from __future__ import annotations

from enum import StrEnum


class Stage(StrEnum):
    LOCAL = "local"
    PRE_TRACKING = "pre_tracking"
    ALIGNMENT = "alignment"
    POST_TRACKING = "post_tracking"
    ANALYSIS = "analysis"

    @property
    def order(self) -> int:
        return list(Stage).index(self)

    @classmethod
    def parse(cls, value: str) -> Stage:
        try:
            return cls(str(value).strip().lower())
        except ValueError:
            names = ", ".join(s.value for s in cls)
            raise ValueError(f"unknown stage {value!r}; the stages are {names}") from None
