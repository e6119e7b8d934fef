"""The calibrations manifest: the scripts' settings, written where the framework is set up, read where it is not.

An orchestrator machine may lack the framework, and most real scripts ``import basf2`` at module
level. ``b2cal calibrations export`` runs ``b2cal_assets.caf.manifest_extract`` inside the framework's
environment; it loads every script there and writes this JSON document::

    {"b2cal_calibrations_manifest": 1, "written_at": "...", "framework_release": "release-08-01-00",
     "framework": "basf2" | "b2cal shim", "calibrations_dir": "/abs/prompt/calibrations",
     "calibrations": [{"name", "file", "sha256", "stage", "settings": {...},
                       "validation": null | {"file", "sha256", "settings": {...}}}, ...],
     "errors": [{"file", "field", "message", "needs_framework"}, ...]}

``file`` is relative to the calibrations directory (a validation's may be ``../validations/x.py``).
With ``B2CAL_CALIBRATIONS_MANIFEST`` set, the code location builds its calibrations from the
manifest, importing no script; the files are found in ``B2CAL_CALIBRATIONS_DIR`` if set, else in the
manifest's ``calibrations_dir``. A script whose file changed (or went) since the manifest was written
is reported in ``ScriptSet.warnings``; the manifest's settings are used until it is exported again.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from b2cal_assets.caf.scripts import CalibrationScript, ScriptError, ScriptSet, ValidationScript, load_scripts
from b2cal_assets.caf.shim import ScriptNamespace
from b2cal_assets.domain.graph import CalibrationGraph
from b2cal_assets.domain.settings import CalibrationSettings, ContractError, ValidationSettings
from b2cal_assets.domain.stages import Stage
from b2cal_assets.settings import settings as deployment_settings

__all__ = [
    "MANIFEST_ENV",
    "MANIFEST_VERSION",
    "ManifestError",
    "file_checksum",
    "load_calibrations",
    "load_manifest",
    "manifest_document",
    "unusable_manifest",
]

MANIFEST_ENV = "B2CAL_CALIBRATIONS_MANIFEST"
MANIFEST_KEY = "b2cal_calibrations_manifest"
MANIFEST_VERSION = 1


class ManifestError(ValueError):
    """The manifest as a whole cannot be used: names the file, the field and the reason."""

    def __init__(self, file: Path | str, field: str, reason: str) -> None:
        super().__init__(f"{file}: {field}: {reason}")
        self.file, self.field, self.reason = str(file), field, reason


def file_checksum(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _settings_json(s: CalibrationSettings) -> dict[str, Any]:
    return {
        "name": s.name,
        "expert_username": s.expert_username,
        "subsystem": s.subsystem,
        "description": s.description,
        "input_data_formats": sorted(s.input_data_formats),
        "input_data_names": sorted(s.input_data_names),
        "input_data_filters": {k: list(v) for k, v in s.input_data_filters.items()},
        "depends_on": list(s.depends_on_names),
        "expert_config": dict(s.expert_config),
        "produced_payloads": list(s.produced_payloads),
    }


def _validation_json(v: ValidationSettings) -> dict[str, Any]:
    return {
        "name": v.name,
        "description": v.description,
        "download_files": list(v.download_files),
        "expert_config": dict(v.expert_config),
    }


def _relative(path: Path, folder: Path) -> str:
    path, folder = path.resolve(), folder.resolve()
    if path.is_relative_to(folder):
        return str(path.relative_to(folder))
    if path.is_relative_to(folder.parent):
        return str(Path("..") / path.relative_to(folder.parent))
    return str(path)


def manifest_document(scripts: ScriptSet, *, framework: str, release: str | None) -> dict[str, Any]:
    """The manifest of a loaded ``ScriptSet`` (see the module docstring)."""
    folder = scripts.calibrations_dir
    calibrations = []
    for s in scripts.calibrations.values():
        validation = None
        if s.validation is not None:
            validation = {
                "file": _relative(s.validation.file, folder),
                "sha256": file_checksum(s.validation.file),
                "settings": _validation_json(s.validation.settings),
            }
        calibrations.append(
            {
                "name": s.name,
                "file": _relative(s.file, folder),
                "sha256": file_checksum(s.file),
                "stage": s.stage.value,
                "settings": _settings_json(s.settings),
                "validation": validation,
            }
        )
    return {
        MANIFEST_KEY: MANIFEST_VERSION,
        "written_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "framework": framework,
        "framework_release": release,
        "calibrations_dir": str(folder.resolve()),
        "calibrations": calibrations,
        "errors": [e.to_json() for e in scripts.errors],
    }


def _field(entry: Mapping[str, Any], key: str, kind: type | tuple[type, ...], where: str, file: Path) -> Any:
    if key not in entry:
        raise ManifestError(file, f"{where}.{key}", "missing")
    value = entry[key]
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise ManifestError(file, f"{where}.{key}", f"must be {names}, got {type(value).__name__} {value!r}")
    return value


def _read(file: Path) -> dict[str, Any]:
    try:
        text = file.read_text()
    except OSError as exc:
        raise ManifestError(file, "file", f"cannot be read ({exc.strerror or exc})") from None
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ManifestError(file, "json", f"not valid JSON at line {exc.lineno}: {exc.msg}") from None
    if not isinstance(document, dict):
        raise ManifestError(file, "document", f"must be a JSON object, got {type(document).__name__}")
    version = document.get(MANIFEST_KEY)
    if version != MANIFEST_VERSION:
        raise ManifestError(
            file,
            MANIFEST_KEY,
            f"must be {MANIFEST_VERSION} (a manifest written by `b2cal calibrations export`), got {version!r}",
        )
    for key, kind in (("calibrations", list), ("errors", list), ("written_at", str)):
        _field(document, key, kind, "manifest", file)
    _field(document, "calibrations_dir", str, "manifest", file)
    _field(document, "framework_release", (str, type(None)), "manifest", file)
    return document


def _calibration_settings(
    raw: Mapping[str, Any], made: dict[str, CalibrationSettings], where: str, file: Path
) -> CalibrationSettings:
    deps = _field(raw, "depends_on", list, where, file)
    missing = [d for d in deps if d not in made]
    if missing:
        raise ManifestError(
            file, f"{where}.depends_on", f"{missing[0]!r} is not an earlier calibration of the manifest"
        )
    try:
        return CalibrationSettings(
            name=_field(raw, "name", str, where, file),
            expert_username=_field(raw, "expert_username", str, where, file),
            subsystem=_field(raw, "subsystem", (str, type(None)), where, file),
            description=_field(raw, "description", str, where, file),
            input_data_formats=_field(raw, "input_data_formats", list, where, file),
            input_data_names=_field(raw, "input_data_names", list, where, file),
            input_data_filters=_field(raw, "input_data_filters", dict, where, file),
            depends_on=[made[d] for d in deps],
            expert_config=_field(raw, "expert_config", dict, where, file),
            produced_payloads=_field(raw, "produced_payloads", list, where, file),
        )
    except ContractError as exc:
        raise ManifestError(file, f"{where}.{exc.field}", exc.message) from None


def _validation(
    raw: Any, folder: Path, namespace: ScriptNamespace, where: str, file: Path
) -> ValidationScript | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise ManifestError(file, where, f"must be null or an object, got {type(raw).__name__}")
    settings = _field(raw, "settings", dict, where, file)
    try:
        validation = ValidationSettings(
            name=_field(settings, "name", str, f"{where}.settings", file),
            description=_field(settings, "description", str, f"{where}.settings", file),
            download_files=_field(settings, "download_files", list, f"{where}.settings", file),
            expert_config=_field(settings, "expert_config", dict, f"{where}.settings", file),
        )
    except ContractError as exc:
        raise ManifestError(file, f"{where}.settings.{exc.field}", exc.message) from None
    path = (folder / _field(raw, "file", str, where, file)).resolve()
    _field(raw, "sha256", str, where, file)
    try:
        module_name = namespace.module_name(path)
    except ValueError as exc:
        raise ManifestError(file, f"{where}.file", str(exc)) from None
    return ValidationScript(validation.name, validation, path, module_name, None, namespace)


def _changed(path: Path, expected: str, manifest: Path, written_at: str) -> ScriptError | None:
    if not path.is_file():
        reason = "is missing"
    elif file_checksum(path) != expected:
        reason = "changed"
    else:
        return None
    return ScriptError(
        str(path),
        "checksum",
        f"{reason} since the manifest {manifest} was written ({written_at}); the calibrations use the manifest's "
        "settings until you run `b2cal calibrations export` again",
    )


def load_manifest(manifest: Path | str, calibrations_dir: Path | str | None = None) -> ScriptSet:
    """The calibrations of a manifest, no script imported. A bad manifest raises ``ManifestError``; a bad
    entry is a ``ScriptError`` naming the manifest and the entry, and the other entries load."""
    file = Path(manifest).expanduser()
    document = _read(file)
    folder = Path(calibrations_dir or document["calibrations_dir"]).expanduser().resolve()
    namespace = ScriptNamespace(folder, use_framework=False)
    errors = [
        ScriptError(str(e.get("file", file)), str(e.get("field", "")), str(e.get("message", "")))
        for e in document["errors"]
        if isinstance(e, dict)
    ]
    warnings: list[ScriptError] = []
    made: dict[str, CalibrationSettings] = {}
    found: dict[str, CalibrationScript] = {}
    for index, raw in enumerate(document["calibrations"]):
        where = f"calibrations[{index}]"
        try:
            if not isinstance(raw, dict):
                raise ManifestError(file, where, f"must be an object, got {type(raw).__name__}")
            settings = _calibration_settings(
                _field(raw, "settings", dict, where, file), made, f"{where}.settings", file
            )
            if settings.name in made:
                raise ManifestError(file, f"{where}.settings.name", f"{settings.name!r} is listed twice")
            try:
                stage = Stage.parse(_field(raw, "stage", str, where, file))
            except ValueError as exc:
                raise ManifestError(file, f"{where}.stage", str(exc)) from None
            path = (folder / _field(raw, "file", str, where, file)).resolve()
            checksum = _field(raw, "sha256", str, where, file)
            validation = _validation(raw.get("validation"), folder, namespace, f"{where}.validation", file)
            module_name = namespace.module_name(path) if path.parent == folder else path.stem
        except ManifestError as exc:
            errors.append(ScriptError(str(file), exc.field, exc.reason))
            continue
        made[settings.name] = settings
        found[settings.name] = CalibrationScript(
            settings.name, settings, path, module_name, stage, validation
        )
        for own, expected in [
            (path, checksum),
            *([(validation.file, raw["validation"]["sha256"])] if validation else []),
        ]:
            if (warning := _changed(own, expected, file, document["written_at"])) is not None:
                warnings.append(warning)
    graph = CalibrationGraph({name: s.depends_on for name, s in found.items()})
    order = graph.order(key=lambda name: (found[name].stage.order, name))
    return ScriptSet(folder, {name: found[name] for name in order}, errors, graph, warnings=warnings)


def load_calibrations(
    calibrations_dir: Path | str | None = None, manifest: Path | str | None = None
) -> ScriptSet:
    """The deployment's calibrations: from the manifest (``manifest``, else ``$B2CAL_CALIBRATIONS_MANIFEST``)
    when there is one, else by loading the scripts of ``calibrations_dir``."""
    manifest = manifest or deployment_settings().calibrations_manifest.strip() or None
    if manifest is None:
        return load_scripts(calibrations_dir)
    folder = calibrations_dir or deployment_settings().calibrations_dir.strip() or None
    return load_manifest(manifest, folder)


def unusable_manifest(error: ManifestError) -> ScriptSet:
    """No calibrations and the manifest's error: the code location still loads and shows why."""
    return ScriptSet(
        Path(error.file).parent,
        {},
        [ScriptError(error.file, error.field, error.reason)],
        CalibrationGraph({}),
    )
