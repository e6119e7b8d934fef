"""A stand-in for the framework's ``basf2`` module, used only where basf2 itself is not installed.

NOT the framework. Prompt scripts ``import basf2`` at module level to log (``B2INFO`` ...), to build
reconstruction paths (``create_path``, ``register_module``) and to set conditions; with this stand-in
such a script loads, so its settings can be read and its dependencies shown. Paths and modules here
only record what they were given. Whatever would make the framework process data (``process``, the
C++ collectors and algorithms) raises ``FrameworkRequired`` naming what was needed.
"""

from __future__ import annotations

import enum
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path as _FilePath
from types import SimpleNamespace
from typing import Any, NoReturn

from b2cal_assets.domain.framework_required import FrameworkRequired

__all__ = [
    "B2DEBUG",
    "B2ERROR",
    "B2FATAL",
    "B2INFO",
    "B2RESULT",
    "B2WARNING",
    "AfterConditionPath",
    "ConditionsConfiguration",
    "FatalError",
    "LogLevel",
    "Module",
    "Path",
    "conditions",
    "create_path",
    "find_file",
    "get_log_level",
    "logging",
    "print_path",
    "process",
    "register_module",
    "set_log_level",
    "set_module_parameters",
]

#: Marks the modules b2cal stands in with (the shim tells them from a real framework by it).
__b2cal_standin__ = True


class LogLevel(enum.IntEnum):
    """basf2's log levels (a lower value logs more)."""

    DEBUG = 0
    INFO = 1
    RESULT = 2
    WARNING = 3
    ERROR = 4
    FATAL = 5
    DEFAULT = 6


class FatalError(RuntimeError):
    """``B2FATAL``: in the framework the process ends; here the script's call fails with the message."""


_level = [LogLevel.INFO]


def set_log_level(level: LogLevel | int) -> None:
    _level[0] = LogLevel(level)


def get_log_level() -> LogLevel:
    return _level[0]


def _log(level: LogLevel, parts: Iterable[object]) -> None:
    if level >= _level[0]:
        print(f"[{level.name}] {' '.join(str(p) for p in parts)}", file=sys.stderr)


def B2DEBUG(debug_level: int, *message: object) -> None:
    _log(LogLevel.DEBUG, message)


def B2INFO(*message: object) -> None:
    _log(LogLevel.INFO, message)


def B2RESULT(*message: object) -> None:
    _log(LogLevel.RESULT, message)


def B2WARNING(*message: object) -> None:
    _log(LogLevel.WARNING, message)


def B2ERROR(*message: object) -> None:
    _log(LogLevel.ERROR, message)


def B2FATAL(*message: object) -> NoReturn:
    _log(LogLevel.FATAL, message)
    raise FatalError(" ".join(str(p) for p in message))


class LogConfig:
    """``basf2.logging``: the log level and the few switches scripts set."""

    @property
    def log_level(self) -> LogLevel:
        return _level[0]

    @log_level.setter
    def log_level(self, level: LogLevel | int) -> None:
        set_log_level(level)

    def enable_summary(self, on: bool) -> None:
        pass

    def zero_counters(self) -> None:
        pass

    def add_console(self, *args: Any) -> None:
        pass


logging = LogConfig()


class AfterConditionPath(enum.Enum):
    END = 0
    CONTINUE = 1


class Module:
    """A basf2 module by name with its parameters, as a script configured it (it cannot run here)."""

    def __init__(self, module_type: str, **params: Any) -> None:
        self.type = module_type
        self._name = module_type
        self.params: dict[str, Any] = dict(params)
        self.conditions: list[tuple[str, Any, AfterConditionPath]] = []
        self.log_level: LogLevel | None = None

    def name(self) -> str:
        return self._name

    def set_name(self, name: str) -> None:
        self._name = name

    def param(self, key: str | Mapping[str, Any], value: Any = None) -> None:
        if isinstance(key, Mapping):
            self.params.update(key)
        else:
            self.params[key] = value

    def available_params(self) -> list[Any]:
        return [SimpleNamespace(name=k, values=v) for k, v in self.params.items()]

    def set_log_level(self, level: LogLevel | int) -> None:
        self.log_level = LogLevel(level)

    def if_value(self, expression: str, path: Path, after: AfterConditionPath = AfterConditionPath.END) -> None:
        self.conditions.append((expression, path, after))

    def if_false(self, path: Path, after: AfterConditionPath = AfterConditionPath.END) -> None:
        self.if_value("<1", path, after)

    def if_true(self, path: Path, after: AfterConditionPath = AfterConditionPath.END) -> None:
        self.if_value(">=1", path, after)

    def __repr__(self) -> str:
        return f"basf2 stand-in Module({self._name!r})"


class Path:
    """A basf2 path: an ordered list of modules (recorded, not run)."""

    def __init__(self) -> None:
        self._modules: list[Module] = []

    def add_module(self, module: str | Module, **params: Any) -> Module:
        if isinstance(module, str):
            module = Module(module)
        module.param(params)
        self._modules.append(module)
        return module

    def add_path(self, path: Path) -> None:
        self._modules.extend(path.modules())

    def modules(self) -> list[Module]:
        return list(self._modules)

    def for_each(self, loop_object_name: str, array_name: str, path: Path) -> None:
        self.add_module(Module("SubEvent"), loopOver=array_name, objectName=loop_object_name)
        self.add_path(path)

    def __contains__(self, name: object) -> bool:
        return any(m.name() == name or m.type == name for m in self._modules)

    def __repr__(self) -> str:
        return f"basf2 stand-in Path([{', '.join(m.name() for m in self._modules)}])"


def create_path() -> Path:
    return Path()


def register_module(module_type: str | Module, **params: Any) -> Module:
    if isinstance(module_type, Module):
        module_type.param(params)
        return module_type
    return Module(module_type, **params)


def set_module_parameters(path: Path, name: str, recursive: bool = False, **params: Any) -> None:
    """Set parameters of every module called ``name`` in ``path``; an unknown name is an error, as in basf2."""
    found = [m for m in path.modules() if m.name() == name]
    if not found:
        raise KeyError(f"No module named {name!r} found in path")
    for module in found:
        module.param(params)


def print_path(path: Path, defaults: bool = False) -> None:
    for module in path.modules():
        print(module.name(), module.params)


def process(path: Path, max_event: int = 0) -> NoReturn:
    raise FrameworkRequired(f"basf2.process() runs the path {path!r}")


def find_file(filename: str, data_type: str = "", silent: bool = False) -> str:
    """A file of the framework's release; here only a path that exists as given is found."""
    if _FilePath(filename).exists():
        return str(_FilePath(filename).resolve())
    raise FrameworkRequired(f"basf2.find_file({filename!r}) looks in the framework's release directory")


class ConditionsConfiguration:
    """``basf2.conditions``: global tags and testing payloads, recorded for the calling script."""

    def __init__(self) -> None:
        self.default_globaltags: list[str] = []
        self.globaltags: list[str] = []
        self.testing_payloads: list[str] = []
        self.expert: dict[str, Any] = {}
        self.override = False

    def override_globaltags(self, globaltags: Iterable[str] | None = None) -> None:
        self.override = True
        self.globaltags = list(globaltags or [])

    def reset(self) -> None:
        self.__init__()  # type: ignore[misc]

    def prepend_globaltag(self, name: str) -> None:
        self.globaltags.insert(0, name)

    def append_globaltag(self, name: str) -> None:
        self.globaltags.append(name)

    def prepend_testing_payloads(self, filename: str) -> None:
        self.testing_payloads.insert(0, filename)

    def append_testing_payloads(self, filename: str) -> None:
        self.testing_payloads.append(filename)

    def expert_settings(self, **settings: Any) -> dict[str, Any]:
        self.expert.update(settings)
        return dict(self.expert)


conditions = ConditionsConfiguration()
