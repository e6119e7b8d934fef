"""A backend's batch options, each declared once: its field, directive, value pattern and help text.

A backend's options class is a frozen dataclass whose fields are made with ``option(...)``. From that
one declaration come the directives of its scripts (``BatchOptions.directives``), the check of every
value a site or a submission gives (``BatchOptions.from_mapping``), the names a job's ``backend_args``
may use, and the fields of the backend's Dagster resource (``defs/batch_resources.py``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, Self

from b2cal_assets.backends.base import BackendError
from b2cal_assets.backends.commands import check_option_value

__all__ = ["BatchOptions", "OptionInfo", "option"]

_KEY = "b2cal_option"


@dataclasses.dataclass(frozen=True)
class OptionInfo:
    """How one option reaches the batch system.

    ``directive`` is a format string (``"--mem={}"``) rendered into the script when the value is set;
    ``None`` for options the backend writes itself. ``pattern`` is a regular expression the value must
    match in full, or ``"int"`` for a whole number of at least 1; ``None`` means any safe text.
    """

    directive: str | None
    pattern: str | None
    help: str


def option(
    directive: str | None = None, *, pattern: str | None = None, help: str = "", default: Any = None
) -> Any:
    """A field of an options dataclass, with what the batch system needs to know about it."""
    return dataclasses.field(default=default, metadata={_KEY: OptionInfo(directive, pattern, help)})


@dataclasses.dataclass(frozen=True, kw_only=True)
class BatchOptions:
    """What every backend's options dataclass shares: ``extra_lines``, the site's own script lines
    (directives or shell lines before the job runs); never from a submission (``SITE_ONLY_OPTIONS``)."""

    extra_lines: tuple[str, ...] = ()

    @classmethod
    def infos(cls) -> dict[str, OptionInfo]:
        """Each option's name and declaration, in declaration order (the order of the directives)."""
        out: dict[str, OptionInfo] = {}
        for f in dataclasses.fields(cls):
            info = f.metadata.get(_KEY)
            out[f.name] = info if isinstance(info, OptionInfo) else OptionInfo(None, None, "")
        return out

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return tuple(cls.infos())

    @classmethod
    def defaults(cls) -> dict[str, Any]:
        """Each option's default (the resource's field defaults)."""
        return {f.name: f.default for f in dataclasses.fields(cls) if f.default is not dataclasses.MISSING}

    @classmethod
    def from_mapping(cls, values: Mapping[str, object]) -> Self:
        """``extra_lines`` may come as one multi-line string (a config file) or a list; every other value
        is checked against its option's pattern, so a bad one is a ``BackendError`` naming it."""
        infos = cls.infos()
        extra = values.get("extra_lines") or ()
        if isinstance(extra, str):
            lines = tuple(extra.splitlines())
        elif isinstance(extra, Iterable):
            lines = tuple(str(x) for x in extra)
        else:
            raise BackendError(f"option extra_lines must be text or a list of lines, not {extra!r}")
        checked = {
            k: check_option_value(k, v, infos[k].pattern if k in infos else None)
            for k, v in values.items()
            if k != "extra_lines"
        }
        return cls(**checked, extra_lines=lines)

    def as_mapping(self) -> dict[str, object]:
        return {name: getattr(self, name) for name in self.names()}

    def directives(self) -> Iterator[str]:
        """The rendered directives of every set option that has one, in declaration order."""
        for name, info in self.infos().items():
            value = getattr(self, name)
            if info.directive is not None and value is not None and value != "":
                yield info.directive.format(value)
