"""The framework's import names, provided while calibration scripts load and run.

Scripts written for the experiment's framework import ``prompt``, ``prompt.utils``,
``prompt.validation``, ``caf.utils``, ``caf.framework`` and each other
(``from prompt.calibrations.caf_cdc import settings as cdc``). Inside ``ScriptNamespace.activate()``
those names resolve to our implementations and to the files of one calibrations directory.

Where the framework is not installed, ``basf2`` and ``ROOT`` resolve to documented stand-ins
(``basf2_standin``, ``root_standin``) so that scripts importing them at module level still load; a
calibration that really needs them says so (``FrameworkRequired``).

Each directory gets its own namespace of modules, swapped into ``sys.modules`` on entry and out on
exit, so two directories (or two loads of one) never see each other's scripts, and a dependency's
``settings`` object is the very object its own script created. Entry is re-entrant and serialised by
one process-wide lock.
"""

from __future__ import annotations

import collections
import contextlib
import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import json
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType

from b2cal_assets.caf import backend_names, databases, framework
from b2cal_assets.caf import strategies as caf_strategies
from b2cal_assets.domain import basf2_standin, prompt_utils, root_standin, run_lists
from b2cal_assets.domain.filters import INPUT_DATA_FILTERS
from b2cal_assets.domain.framework_required import framework_package
from b2cal_assets.domain.iov import ExpRun, IoV
from b2cal_assets.domain.settings import CalibrationSettings, ValidationSettings

__all__ = [
    "CALIBRATIONS_PACKAGE",
    "PROVIDED_MODULES",
    "VALIDATIONS_PACKAGE",
    "ScriptNamespace",
    "framework_installed",
    "load_script_module",
    "namespace_for",
    "script_imports",
    "validations_dir_of",
]

CALIBRATIONS_PACKAGE = "prompt.calibrations"
VALIDATIONS_PACKAGE = "prompt.validations"
#: The fixed module names scripts may import (besides the scripts themselves).
PROVIDED_MODULES = (
    "prompt",
    "prompt.utils",
    "prompt.validation",
    CALIBRATIONS_PACKAGE,
    VALIDATIONS_PACKAGE,
    "caf",
    "caf.utils",
    "caf.framework",
    "caf.strategies",
    "caf.backends",
)
_ROOTS = ("prompt", "caf")
#: Framework modules stood in for when the framework itself cannot be imported.
STANDIN_ROOTS = ("basf2", "ROOT")

_lock = threading.RLock()
_active: list[ScriptNamespace] = []


def _managed(name: str, roots: tuple[str, ...] = _ROOTS) -> bool:
    return any(name == root or name.startswith(root + ".") for root in roots)


def _really_importable(name: str) -> bool:
    """Whether the framework's own module ``name`` can be imported (a stand-in does not count)."""
    loaded = sys.modules.get(name)
    if loaded is not None:
        return not getattr(loaded, "__b2cal_standin__", False)
    if _active and _active[-1].manages(name):
        return False  # inside a namespace that stands in for it: it was not importable when it began
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def _module(name: str, doc: str, *, package: bool = False, **attrs: object) -> ModuleType:
    module = ModuleType(name, doc)
    module.__spec__ = importlib.machinery.ModuleSpec(name, None, is_package=package)
    if package:
        module.__path__ = []
    module.__dict__.update(attrs)
    return module


def framework_installed() -> bool:
    """Whether the experiment's framework is importable here: its ``basf2``, ``prompt`` and ``caf``."""
    return all(_really_importable(name) for name in ("basf2", "prompt", "caf"))


def _public(name: str, source: ModuleType, **extra: object) -> ModuleType:
    """A module ``name`` offering the ``__all__`` names of ``source``."""
    names: dict[str, object] = {attr: getattr(source, attr) for attr in source.__all__}
    return _module(name, source.__doc__ or "", package=False, **names, **extra)


def _temporary_workdir(path: str | Path) -> contextlib.AbstractContextManager[None]:
    """The framework's ``caf.utils.temporary_workdir``: work in ``path``, then return."""
    return contextlib.chdir(path)


def _caf_utils() -> ModuleType:
    return _public(
        "caf.utils",
        run_lists,
        IoV=IoV,
        ExpRun=ExpRun,
        LocalDatabase=databases.LocalDatabase,
        CentralDatabase=databases.CentralDatabase,
        AlgResult=framework.AlgorithmStatus,
        IoV_Result=collections.namedtuple("IoV_Result", ["iov", "result"]),
        temporary_workdir=_temporary_workdir,
        decode_json_string=json.loads,
    )


def _standin_modules() -> dict[str, ModuleType]:
    """``basf2`` / ``ROOT`` stand-ins for those of them the framework does not provide here."""
    modules: dict[str, ModuleType] = {}
    if not _really_importable("basf2"):
        modules["basf2"] = _public("basf2", basf2_standin, __b2cal_standin__=True)
    if not _really_importable("ROOT"):
        modules["ROOT"] = root_standin.root_module("ROOT")
    return modules


def _static_modules() -> dict[str, ModuleType]:
    utils = _module(
        "prompt.utils",
        prompt_utils.__doc__ or "",
        **{name: getattr(prompt_utils, name) for name in prompt_utils.__all__},
    )
    validation = _module("prompt.validation", "Validation settings.", ValidationSettings=ValidationSettings)
    calibrations = _module(CALIBRATIONS_PACKAGE, "The calibration scripts of this directory.", package=True)
    validations = _module(VALIDATIONS_PACKAGE, "The validation scripts of this directory.", package=True)
    prompt = _module(
        "prompt",
        "The framework's prompt-calibration names (provided by b2cal).",
        package=True,
        CalibrationSettings=CalibrationSettings,
        ValidationSettings=ValidationSettings,
        INPUT_DATA_FILTERS=INPUT_DATA_FILTERS,
        utils=utils,
        validation=validation,
        calibrations=calibrations,
        validations=validations,
    )
    caf_utils = _caf_utils()
    caf_framework = _public("caf.framework", framework)
    strategies = _public("caf.strategies", caf_strategies)
    backends = _public("caf.backends", backend_names)
    caf = _module(
        "caf",
        "The framework's CAF names (provided by b2cal).",
        package=True,
        utils=caf_utils,
        framework=caf_framework,
        strategies=strategies,
        backends=backends,
    )
    modules = {
        m.__name__: m
        for m in (
            prompt,
            utils,
            validation,
            calibrations,
            validations,
            caf,
            caf_utils,
            caf_framework,
            strategies,
            backends,
        )
    }
    return modules | _standin_modules()


class _MissingModuleLoader(importlib.abc.Loader):
    """Raises a ``ModuleNotFoundError`` that says where we looked, instead of Python's bare one."""

    def __init__(self, message: str) -> None:
        self.message = message

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> None:
        return None

    def exec_module(self, module: ModuleType) -> None:
        raise ModuleNotFoundError(self.message, name=module.__name__)


class _RootNamespaceLoader(importlib.abc.Loader):
    """Makes ``ROOT.<namespace>`` stand-in modules, each name inside a placeholder."""

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        return root_standin.root_module(spec.name)

    def exec_module(self, module: ModuleType) -> None:
        return None


class _ScriptFinder(importlib.abc.MetaPathFinder):
    """Finds ``prompt.calibrations.<x>`` / ``prompt.validations.<x>`` in the active namespace's directory."""

    def find_spec(
        self, fullname: str, path: object = None, target: object = None
    ) -> importlib.machinery.ModuleSpec | None:
        if not _active or not _active[-1].manages(fullname):
            return None
        namespace = _active[-1]
        package, _, stem = fullname.rpartition(".")
        if fullname.startswith("ROOT."):  # from ROOT.Belle2 import X: a namespace of the ROOT stand-in
            return importlib.machinery.ModuleSpec(fullname, _RootNamespaceLoader(), is_package=True)
        if framework_package(fullname) and not _managed(fullname):
            message = (
                f"No module named {fullname!r}: b2cal's stand-in for {fullname.split('.')[0]} has no such part; "
                "the script needs the framework installed"
            )
            return importlib.machinery.ModuleSpec(fullname, _MissingModuleLoader(message))
        if package == CALIBRATIONS_PACKAGE:
            folder = namespace.calibrations_dir
        elif package == VALIDATIONS_PACKAGE:
            folder = namespace.validations_dir
        else:
            provided = ", ".join(PROVIDED_MODULES)
            message = f"No module named {fullname!r}: b2cal provides {provided} and the scripts of the calibrations directory"
            return importlib.machinery.ModuleSpec(fullname, _MissingModuleLoader(message))
        file = folder / f"{stem}.py"
        if not file.is_file():
            message = f"No module named {fullname!r}: there is no script {file}"
            return importlib.machinery.ModuleSpec(fullname, _MissingModuleLoader(message))
        return importlib.util.spec_from_file_location(fullname, file)


_finder = _ScriptFinder()


def validations_dir_of(calibrations_dir: Path) -> Path:
    """Where the validation scripts of a calibrations directory live: ``<dir>/validations/``, else the
    framework's layout ``prompt/validations/`` beside ``prompt/calibrations/``."""
    inner = calibrations_dir / "validations"
    sibling = calibrations_dir.parent / "validations"
    if not inner.is_dir() and sibling.is_dir() and sibling != calibrations_dir:
        return sibling
    return inner


class ScriptNamespace:
    """The modules seen by the scripts of one calibrations directory (scripts load once per namespace)."""

    def __init__(self, calibrations_dir: Path | str, *, use_framework: bool | None = None) -> None:
        self.calibrations_dir = Path(calibrations_dir).resolve()
        self.validations_dir = validations_dir_of(self.calibrations_dir)
        #: Where the framework is installed its own ``prompt``/``caf``/``basf2`` are used; only the
        #: directory's scripts (``prompt.calibrations.<x>``, ``prompt.validations.<x>``) come from here.
        self.framework = framework_installed() if use_framework is None else use_framework
        self._modules: dict[str, ModuleType] = {} if self.framework else _static_modules()
        #: The top-level names this namespace provides: the framework's, and the stand-ins it needs.
        self.roots = () if self.framework else _ROOTS + tuple(r for r in STANDIN_ROOTS if r in self._modules)

    def manages(self, name: str) -> bool:
        """Whether the module ``name`` is this namespace's (swapped in and out of ``sys.modules``)."""
        if self.framework:
            return name.startswith((CALIBRATIONS_PACKAGE + ".", VALIDATIONS_PACKAGE + "."))
        return _managed(name, self.roots)

    def __repr__(self) -> str:
        return f"ScriptNamespace({str(self.calibrations_dir)!r})"

    @contextmanager
    def activate(self) -> Iterator[ScriptNamespace]:
        """Make the framework import names and this directory's scripts importable."""
        with _lock:
            if _active and _active[-1] is self:  # nested in our own activation: nothing to swap
                yield self
                return
            saved = {name: module for name, module in sys.modules.items() if self.manages(name)}
            for name in saved:
                del sys.modules[name]
            sys.modules.update(self._modules)
            if not _active:
                sys.meta_path.insert(0, _finder)
            _active.append(self)
            try:
                yield self
            finally:
                _active.pop()
                if not _active and _finder in sys.meta_path:
                    sys.meta_path.remove(_finder)
                for name in [n for n in sys.modules if self.manages(n)]:
                    self._modules[name] = sys.modules.pop(name)
                sys.modules.update(saved)

    def module_name(self, file: Path | str) -> str:
        """The import name of a script file: ``prompt.calibrations.<stem>`` or ``prompt.validations.<stem>``."""
        path = Path(file).resolve()
        if path.parent == self.calibrations_dir:
            return f"{CALIBRATIONS_PACKAGE}.{path.stem}"
        if path.parent == self.validations_dir:
            return f"{VALIDATIONS_PACKAGE}.{path.stem}"
        raise ValueError(
            f"{path} is not a script of {self.calibrations_dir} (nor of its validations/ folder)"
        )

    def import_module(self, module_name: str) -> ModuleType:
        """Import (once) a script by its import name; exceptions from the script propagate."""
        with self.activate():
            return importlib.import_module(module_name)

    def load_file(self, file: Path | str) -> ModuleType:
        return self.import_module(self.module_name(file))

    def loaded(self, module_name: str) -> ModuleType | None:
        return self._modules.get(module_name)


_namespaces: dict[Path, ScriptNamespace] = {}


def namespace_for(calibrations_dir: Path | str) -> ScriptNamespace:
    """The process-wide namespace of a directory, for code that re-loads scripts by file (subjobs)."""
    key = Path(calibrations_dir).resolve()
    with _lock:
        if key not in _namespaces:
            _namespaces[key] = ScriptNamespace(key)
        return _namespaces[key]


@contextmanager
def script_imports(calibrations_dir: Path | str) -> Iterator[ScriptNamespace]:
    """Activate the shared namespace of ``calibrations_dir``; wrap calls into script code with it."""
    with namespace_for(calibrations_dir).activate() as namespace:
        yield namespace


def load_script_module(path: Path | str, calibrations_dir: Path | str) -> ModuleType:
    """Load a calibration (or validation) script by file, as a collector subjob in another process does.

    Calls into the module that import framework names lazily must run inside
    ``script_imports(calibrations_dir)``.
    """
    return namespace_for(calibrations_dir).load_file(path)
