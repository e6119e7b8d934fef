"""Discovering the calibration and validation scripts of a directory.

Every ``*.py`` not starting with ``_`` is a calibration script; ``validations/*.py`` (or, in the
framework's layout, ``../validations/*.py`` beside ``calibrations/``) are validation scripts, paired
with a calibration by ``settings.name``. A script that cannot be used (it does not
import, lacks ``settings``, breaks a settings rule, repeats a name, depends on something missing or
sits on a cycle) is left out with a ``ScriptError`` naming the file, the field and the reason, and
so is everything that depends on it; the other scripts load as usual.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from b2cal_assets.caf.framework import Calibration
from b2cal_assets.caf.shim import ScriptNamespace
from b2cal_assets.domain.expert_config import merge_expert_config
from b2cal_assets.domain.framework_required import FrameworkRequired, framework_package
from b2cal_assets.domain.framework_settings import FrameworkSettingsReader, is_framework_settings
from b2cal_assets.domain.graph import CalibrationGraph, find_cycles, format_cycle
from b2cal_assets.domain.iov import IoV
from b2cal_assets.domain.names import asset_name
from b2cal_assets.domain.settings import CalibrationSettings, ContractError, ValidationSettings
from b2cal_assets.domain.stages import Stage

__all__ = [
    "CALIBRATIONS_DIR_ENV",
    "NEEDS_FRAMEWORK",
    "CalibrationScript",
    "ScriptError",
    "ScriptSet",
    "ValidationScript",
    "default_calibrations_dir",
    "derive_stage",
    "load_scripts",
]

CALIBRATIONS_DIR_ENV = "B2CAL_CALIBRATIONS_DIR"
# Stages a script lands in without declaring one; local and alignment are only ever declared.
_DERIVABLE = (Stage.PRE_TRACKING, Stage.POST_TRACKING, Stage.ANALYSIS)


def default_calibrations_dir() -> Path:
    """``$B2CAL_CALIBRATIONS_DIR``, else the built-in demo scripts."""
    # imported here: a validation job at a remote centre imports this module on a Python without
    # pydantic (the deployment's settings); it always names its calibrations directory instead
    from b2cal_assets.settings import settings

    configured = settings().calibrations_dir.strip()
    if configured:
        return Path(configured).expanduser()
    return Path(__file__).resolve().parent.parent / "demo" / "calibrations"


#: ``ScriptError.field`` of a script that loads only where the experiment's framework is installed.
NEEDS_FRAMEWORK = "framework"


@dataclass(frozen=True)
class ScriptError:
    """Why a script was left out: its file, the field (or step) at fault, and what is wrong."""

    file: str
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}: {self.field}: {self.message}"

    @property
    def needs_framework(self) -> bool:
        """The script is fine as far as b2cal can tell; it needs the framework installed to load."""
        return self.field == NEEDS_FRAMEWORK

    def to_json(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "field": self.field,
            "message": self.message,
            "needs_framework": self.needs_framework,
        }


@dataclass(frozen=True)
class ValidationScript:
    """A validation script paired with its calibration; it runs as a program (``caf.validation_job``)."""

    name: str
    settings: ValidationSettings
    file: Path
    module_name: str
    module: ModuleType | None = field(repr=False, compare=False)  # None: read from a manifest
    namespace: ScriptNamespace = field(repr=False, compare=False)


@dataclass(frozen=True)
class CalibrationScript:
    name: str
    settings: CalibrationSettings
    file: Path
    module_name: str
    stage: Stage
    validation: ValidationScript | None = None
    module: ModuleType | None = field(default=None, repr=False, compare=False)
    namespace: ScriptNamespace | None = field(default=None, repr=False, compare=False)

    @property
    def depends_on(self) -> tuple[str, ...]:
        return self.settings.depends_on_names

    @property
    def calibrations_dir(self) -> Path:
        return self.file.parent

    def get_calibrations(
        self,
        input_data: Mapping[str, Mapping[str, Any]],
        requested_iov: IoV | tuple[int, int, int, int] | None = None,
        expert_config: Mapping[str, Any] | None = None,
    ) -> list[Any]:
        """Call the script's ``get_calibrations`` (inside the import shim) and check what it returns.

        ``input_data`` is ``{data_name: {file_path: IoV}}``; data names the script declares but the
        caller has no files for are passed as empty dicts. ``expert_config`` holds overrides only.
        """
        merged = merge_expert_config(self.settings.expert_config, expert_config)
        known = self.settings.input_data_names
        unknown = sorted(set(input_data) - known)
        if unknown:
            raise ContractError(
                "input_data",
                f"{', '.join(map(repr, unknown))} not among this calibration's input_data_names {sorted(known)}",
            )
        data = {
            name: {path: IoV(*iov) for path, iov in input_data.get(name, {}).items()}
            for name in sorted(known)
        }
        iov = IoV() if requested_iov is None else IoV(*requested_iov)
        if self.module is None or self.namespace is None:
            raise RuntimeError(f"calibration {self.name!r} was not loaded from a script")
        with self.namespace.activate():
            try:
                result = self.module.get_calibrations(data, requested_iov=iov, expert_config=merged)
            except FrameworkRequired as exc:
                raise exc.for_calibration(self.name) from None
        framework_made = self.namespace.framework  # the framework's own Calibration objects
        if not isinstance(result, (list, tuple)) or not (
            framework_made or all(isinstance(c, Calibration) for c in result)
        ):
            raise ContractError(
                "get_calibrations",
                f"{self.file.name} returned {result!r}; it must return a list of caf.framework.Calibration",
            )
        return list(result)


@dataclass
class ScriptSet:
    """The usable scripts of a directory (in run order) and the errors of the others."""

    calibrations_dir: Path
    calibrations: dict[str, CalibrationScript]
    errors: list[ScriptError]
    graph: CalibrationGraph
    #: scripts that load but want attention (changed since the manifest they were read from was written)
    warnings: list[ScriptError] = field(default_factory=list)

    def __getitem__(self, name: str) -> CalibrationScript:
        try:
            return self.calibrations[name]
        except KeyError:
            known = ", ".join(self.calibrations) or "none"
            raise KeyError(
                f"no calibration named {name!r} in {self.calibrations_dir} (known: {known})"
            ) from None

    def __contains__(self, name: object) -> bool:
        return name in self.calibrations

    def by_stage(self) -> dict[Stage, list[CalibrationScript]]:
        grouped: dict[Stage, list[CalibrationScript]] = {stage: [] for stage in Stage}
        for script in self.calibrations.values():
            grouped[script.stage].append(script)
        return grouped

    def to_json(self) -> dict[str, list[dict[str, Any]]]:
        """The ``b2cal calibrations list --json`` document."""
        return {
            "calibrations": [
                {
                    "name": s.name,
                    "file": str(s.file),
                    "stage": s.stage.value,
                    "depends_on": list(s.depends_on),
                    "input_data_formats": sorted(s.settings.input_data_formats),
                    "input_data_names": sorted(s.settings.input_data_names),
                    "expert_username": s.settings.expert_username,
                    "subsystem": s.settings.subsystem,
                    "produced_payloads": list(s.settings.produced_payloads),
                    "validation": str(s.validation.file) if s.validation else None,
                }
                for s in self.calibrations.values()
            ],
            "errors": [e.to_json() for e in self.errors],
            "warnings": [e.to_json() for e in self.warnings],
        }


def derive_stage(
    formats: frozenset[str] | set[str], dependency_stages: list[Stage], subsystem: str | None = None
) -> Stage:
    """The stage of a script that declares none.

    Real scripts never declare one: the alignment is the script with ``subsystem="alignment"``, and a
    raw-data calibration that needs an alignment's payloads runs in the alignment stage too. Otherwise
    the input formats decide, never before a dependency.
    """
    floor = max((s.order for s in dependency_stages), default=0)
    if (
        formats <= {"raw"}
        and floor <= Stage.ALIGNMENT.order
        and (subsystem == "alignment" or Stage.ALIGNMENT in dependency_stages)
    ):
        return Stage.ALIGNMENT
    if formats & {"mdst", "udst"}:
        stage = Stage.ANALYSIS
    elif "cdst" in formats:
        stage = Stage.POST_TRACKING
    else:
        stage = Stage.PRE_TRACKING
    return next(s for s in _DERIVABLE if s.order >= max(stage.order, floor))


def _frames_in(exc: BaseException, folder: Path) -> list[tuple[Path, int]]:
    """(file, line) of the traceback frames inside the calibrations directory, outermost first."""
    frames = []
    for frame, lineno in traceback.walk_tb(exc.__traceback__):
        path = Path(frame.f_code.co_filename).resolve()
        if path.is_relative_to(folder):
            frames.append((path, lineno))
    if isinstance(exc, SyntaxError) and exc.filename and exc.lineno:
        frames.append((Path(exc.filename).resolve(), exc.lineno))
    return frames


def _describe(exc: BaseException) -> str:
    if isinstance(exc, SyntaxError):
        return f"SyntaxError: {exc.msg}"
    text = f"{type(exc).__name__}: {exc}"
    if "partially initialized module" in text:
        text += " (scripts that import each other's settings form a dependency cycle)"
    return text


def _needs_framework(exc: BaseException) -> str | None:
    """What of the framework a failed import needed, or None when the failure is the script's own."""
    if isinstance(exc, FrameworkRequired):
        return exc.what
    if isinstance(exc, ModuleNotFoundError) and (package := framework_package(exc.name)):
        return f"it imports {exc.name!r} (part of the framework's {package!r}), which b2cal does not stand in for"
    return None


def _import_error(exc: BaseException, file: Path, folder: Path) -> ScriptError:
    frames = _frames_in(exc, folder)
    own = [line for path, line in frames if path == file]
    where = f"line {own[-1]}: " if own else ""
    if (needed := _needs_framework(exc)) is not None:
        via = ""
        if frames and frames[-1][0] != file:
            via = f"importing {frames[-1][0].name}, whose line {frames[-1][1]}: "
        return ScriptError(
            str(file),
            NEEDS_FRAMEWORK,
            f"{where}needs the framework (basf2) installed to load: {via}{needed}. Load it where basf2 is set up",
        )
    if frames and frames[-1][0] != file:
        other, other_line = frames[-1]
        return ScriptError(
            str(file),
            "import",
            f"{where}importing {other.name} failed at its line {other_line}: {_describe(exc)}",
        )
    if isinstance(exc, ContractError):
        # A settings rule broken by this script's own CalibrationSettings(...) call.
        return ScriptError(str(file), exc.field, f"{where}{exc.message}")
    return ScriptError(str(file), "import", f"{where}{_describe(exc)}")


@dataclass
class _Candidate:
    name: str
    file: Path
    module: ModuleType
    settings: CalibrationSettings
    declared_stage: Stage | None


def _script_files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p.resolve() for p in folder.glob("*.py") if not p.name.startswith("_") and p.is_file())


def _load_module(namespace: ScriptNamespace, file: Path, errors: list[ScriptError]) -> ModuleType | None:
    try:
        return namespace.load_file(file)
    except (KeyboardInterrupt, GeneratorExit):
        raise
    except BaseException as exc:  # a script may raise anything at import, even SystemExit
        folder = (
            namespace.calibrations_dir if file.is_relative_to(namespace.calibrations_dir) else file.parent
        )
        errors.append(_import_error(exc, file, folder))
        return None


def _check_calibration_module(
    module: ModuleType, file: Path, errors: list[ScriptError], reader: FrameworkSettingsReader
) -> _Candidate | None:
    settings = getattr(module, "settings", None)
    if is_framework_settings(settings):
        try:
            settings = reader.calibration(settings)
        except ContractError as exc:
            errors.append(ScriptError(str(file), exc.field, exc.message))
            return None
    if settings is None:
        errors.append(
            ScriptError(str(file), "settings", "the script defines no `settings = CalibrationSettings(...)`")
        )
        return None
    if not isinstance(settings, CalibrationSettings):
        errors.append(
            ScriptError(
                str(file),
                "settings",
                f"`settings` is {type(settings).__name__}, not a CalibrationSettings (from prompt import CalibrationSettings)",
            )
        )
        return None
    if not callable(getattr(module, "get_calibrations", None)):
        errors.append(
            ScriptError(
                str(file),
                "get_calibrations",
                "the script defines no function get_calibrations(input_data, **kwargs)",
            )
        )
        return None
    declared = None
    if hasattr(module, "stage"):
        try:
            declared = Stage.parse(module.stage)
        except ValueError as exc:
            errors.append(ScriptError(str(file), "stage", str(exc)))
            return None
    return _Candidate(settings.name, file, module, settings, declared)


def _drop_duplicates(candidates: list[_Candidate], errors: list[ScriptError]) -> dict[str, _Candidate]:
    by_name: dict[str, list[_Candidate]] = {}
    for candidate in candidates:
        by_name.setdefault(candidate.name, []).append(candidate)
    unique = {}
    for name, group in by_name.items():
        if len(group) == 1:
            unique[name] = group[0]
            continue
        files = ", ".join(c.file.name for c in group)
        for candidate in group:
            errors.append(
                ScriptError(
                    str(candidate.file),
                    "name",
                    f"calibration name {name!r} is used by several scripts ({files}); names must be unique",
                )
            )
    return _drop_slug_clashes(unique, errors)


def _drop_slug_clashes(unique: dict[str, _Candidate], errors: list[ScriptError]) -> dict[str, _Candidate]:
    """Keep the first script (by file) of each Dagster name; the others and unusable names are errors."""
    kept: dict[str, _Candidate] = {}
    taken: dict[str, _Candidate] = {}
    for name, candidate in sorted(unique.items(), key=lambda item: (str(item[1].file), item[0])):
        try:
            slug = asset_name(name)
        except ValueError as exc:
            errors.append(ScriptError(str(candidate.file), "name", str(exc)))
            continue
        if (first := taken.get(slug)) is not None:
            errors.append(
                ScriptError(
                    str(candidate.file),
                    "name",
                    f"calibration name {name!r} gives the Dagster name {slug!r}, already taken by "
                    f"{first.name!r} ({first.file.name}); rename one of them",
                )
            )
            continue
        taken[slug] = candidate
        kept[name] = candidate
    return kept


def _prune(
    candidates: dict[str, _Candidate], all_files: dict[str, Path], errors: list[ScriptError]
) -> tuple[dict[str, _Candidate], dict[str, Stage]]:
    """Drop scripts with unknown or left-out dependencies, cycles or impossible stages (and their dependents)."""
    alive = dict(candidates)
    left_out: set[str] = set()

    def drop(name: str, field_name: str, message: str) -> None:
        errors.append(ScriptError(str(alive[name].file), field_name, message))
        left_out.add(name)
        del alive[name]

    while True:
        changed = False
        for name in sorted(alive):
            candidate = alive[name]
            for dep in candidate.settings.depends_on:
                if dep.name in alive:
                    if dep != alive[dep.name].settings:
                        drop(
                            name,
                            "depends_on",
                            f"the settings given for {dep.name!r} differ from those of {alive[dep.name].file.name}; "
                            f"import them: from prompt.calibrations.{alive[dep.name].file.stem} import settings",
                        )
                        changed = True
                        break
                    continue
                if dep.name in left_out or dep.name in all_files:
                    where = f" ({all_files[dep.name].name})" if dep.name in all_files else ""
                    message = f"depends on {dep.name!r}{where}, which was left out (see its error)"
                else:
                    message = (
                        f"depends on {dep.name!r}, which no script in the calibrations directory defines"
                    )
                drop(name, "depends_on", message)
                changed = True
                break
        if changed:
            continue
        cycles = find_cycles({name: c.settings.depends_on_names for name, c in alive.items()})
        for cycle in cycles:
            for name in sorted(set(cycle)):
                if name in alive:
                    drop(name, "depends_on", f"dependency cycle {format_cycle(cycle)}")
        if cycles:
            continue
        graph = CalibrationGraph({name: c.settings.depends_on_names for name, c in alive.items()})
        stages: dict[str, Stage] = {}
        for name in graph.order():
            candidate = alive[name]
            dep_stages = [stages[d] for d in graph.upstream(name)]
            if candidate.declared_stage is None:
                stages[name] = derive_stage(
                    candidate.settings.input_data_formats, dep_stages, candidate.settings.subsystem
                )
                continue
            late = [d for d in graph.upstream(name) if stages[d].order > candidate.declared_stage.order]
            if late:
                later = late[0]
                drop(
                    name,
                    "stage",
                    f"declared stage {candidate.declared_stage.value!r} runs before the stage "
                    f"{stages[later].value!r} of its dependency {later!r}",
                )
                changed = True
                break
            stages[name] = candidate.declared_stage
        if not changed:
            return alive, stages


def _load_validations(
    namespace: ScriptNamespace,
    calibration_names: set[str],
    left_out: dict[str, Path],
    errors: list[ScriptError],
) -> dict[str, ValidationScript]:
    found: dict[str, list[ValidationScript]] = {}
    for file in _script_files(namespace.validations_dir):
        module = _load_module(namespace, file, errors)
        if module is None:
            continue
        settings = getattr(module, "settings", None)
        if is_framework_settings(settings, "ValidationSettings"):
            try:
                settings = FrameworkSettingsReader.validation(settings)
            except ContractError as exc:
                errors.append(ScriptError(str(file), exc.field, exc.message))
                continue
        if not isinstance(settings, ValidationSettings):
            what = (
                "defines no `settings`"
                if settings is None
                else f"has `settings` of type {type(settings).__name__}"
            )
            errors.append(
                ScriptError(
                    str(file),
                    "settings",
                    f"the validation script {what}; use settings = ValidationSettings(...)",
                )
            )
            continue
        if not callable(getattr(module, "run_validation", None)):
            errors.append(
                ScriptError(
                    str(file),
                    "run_validation",
                    "the validation script defines no run_validation(job_path, input_data_path, requested_iov, expert_config)",
                )
            )
            continue
        if settings.name not in calibration_names:
            if settings.name in left_out:
                message = f"validates {settings.name!r} ({left_out[settings.name].name}), which was left out"
            else:
                known = ", ".join(sorted(calibration_names)) or "none"
                message = f"names no calibration: {settings.name!r} (the calibrations are {known})"
            errors.append(ScriptError(str(file), "name", message))
            continue
        script = ValidationScript(settings.name, settings, file, module.__name__, module, namespace)
        found.setdefault(settings.name, []).append(script)
    paired = {}
    for name, group in found.items():
        if len(group) == 1:
            paired[name] = group[0]
            continue
        files = ", ".join(v.file.name for v in group)
        for validation in group:
            errors.append(
                ScriptError(
                    str(validation.file), "name", f"several validation scripts ({files}) validate {name!r}"
                )
            )
    return paired


def load_scripts(calibrations_dir: Path | str | None = None) -> ScriptSet:
    """Load every script of ``calibrations_dir`` (default: ``default_calibrations_dir()``).

    Raises ``FileNotFoundError`` / ``NotADirectoryError`` if the directory itself is missing; problems
    with single scripts never raise, they become ``ScriptSet.errors``.
    """
    folder = (
        Path(calibrations_dir).expanduser() if calibrations_dir is not None else default_calibrations_dir()
    )
    if not folder.exists():
        raise FileNotFoundError(
            f"calibrations directory {folder} does not exist; pass another directory or set {CALIBRATIONS_DIR_ENV}"
        )
    if not folder.is_dir():
        raise NotADirectoryError(f"calibrations directory {folder} is not a directory")
    namespace = ScriptNamespace(folder)
    errors: list[ScriptError] = []
    candidates: list[_Candidate] = []
    reader = FrameworkSettingsReader()
    with namespace.activate():  # one activation for the whole directory: the nested ones are free
        for file in _script_files(namespace.calibrations_dir):
            module = _load_module(namespace, file, errors)
            if module is not None and (candidate := _check_calibration_module(module, file, errors, reader)):
                candidates.append(candidate)
        all_files = {c.name: c.file for c in candidates}
        unique = _drop_duplicates(candidates, errors)
        alive, stages = _prune(unique, all_files, errors)
        left_out = {name: file for name, file in all_files.items() if name not in alive}
        validations = _load_validations(namespace, set(alive), left_out, errors)

    graph = CalibrationGraph({name: c.settings.depends_on_names for name, c in alive.items()})
    order_key: Callable[[str], Any] = lambda name: (stages[name].order, name)  # noqa: E731
    calibrations = {
        name: CalibrationScript(
            name=name,
            settings=alive[name].settings,
            file=alive[name].file,
            module_name=alive[name].module.__name__,
            stage=stages[name],
            validation=validations.get(name),
            module=alive[name].module,
            namespace=namespace,
        )
        for name in graph.order(key=order_key)
    }
    errors.sort(key=lambda e: (e.file, e.field, e.message))
    return ScriptSet(namespace.calibrations_dir, calibrations, errors, graph)
