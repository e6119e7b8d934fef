"""The input files of the framework's ``b2caf-prompt-run``: ``caf_config.json`` and ``input_data.json``.

``caf_config.json``: ``caf_script`` (the script's file name), ``database_chain`` (global tags or
local databases), ``requested_iov`` (4 ints), optional ``backend_args`` and ``expert_config``
(overrides of the script's defaults) and ``testing_payloads`` (local databases not yet in a tag).
``input_data.json``: ``{"<data name>": [["<run directory>", [exp, run]], ...]}``; every ``*.root``
below a run directory belongs to that run. Each problem is an ``InputFileError`` naming the file,
the field and the reason.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from b2cal_assets.domain.iov import IoV

__all__ = [
    "CafConfig",
    "InputFileError",
    "ValidationConfig",
    "caf_config_document",
    "input_data_document",
    "read_caf_config",
    "read_input_data",
    "read_validation_config",
]


class InputFileError(ValueError):
    """A ``caf_config.json`` / ``input_data.json`` that is missing or wrong."""

    def __init__(self, file: Path | str, field: str, reason: str) -> None:
        self.file, self.field, self.reason = str(file), field, reason
        super().__init__(str(self))

    def __str__(self) -> str:
        return f"{self.file}: {self.field}: {self.reason}"


@dataclass(frozen=True)
class CafConfig:
    caf_script: str
    database_chain: tuple[str, ...]
    requested_iov: IoV
    backend_args: dict[str, Any] = field(default_factory=dict)
    expert_config: dict[str, Any] = field(default_factory=dict)
    testing_payloads: tuple[str, ...] = ()


def _load(path: Path) -> Any:
    if not path.is_file():
        raise InputFileError(path, "file", "does not exist")
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputFileError(path, "file", f"is not valid JSON ({exc})") from None


def _load_object(path: Path, required: tuple[str, ...]) -> dict[str, Any]:
    """The JSON object in ``path``, with every ``required`` key present."""
    data = _load(path)
    if not isinstance(data, dict):
        raise InputFileError(path, "file", f"must hold a JSON object, got {type(data).__name__}")
    for key in required:
        if key not in data:
            raise InputFileError(path, key, "is required")
    return data


def _strings(path: Path, name: str, value: object) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise InputFileError(path, name, f"must be a list of non-empty strings, got {value!r}")
    return tuple(value)


def _iov(path: Path, name: str, value: object) -> IoV:
    if not isinstance(value, list) or len(value) != 4 or not all(type(v) is int for v in value):
        raise InputFileError(path, name, f"must be 4 integers [exp_low, run_low, exp_high, run_high], got {value!r}")
    iov = IoV(*value)
    try:
        iov.check()
    except ValueError as exc:
        raise InputFileError(path, name, str(exc)) from None
    return iov


def _dict(path: Path, name: str, value: object) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InputFileError(path, name, f"must be a JSON object, got {type(value).__name__} {value!r}")
    return dict(value)


def read_caf_config(path: Path | str) -> CafConfig:
    """Read and check a ``caf_config.json``."""
    path = Path(path)
    data = _load_object(path, ("caf_script", "database_chain", "requested_iov"))
    if not isinstance(data["caf_script"], str) or not data["caf_script"].strip():
        raise InputFileError(path, "caf_script", f"must be the script's file name, got {data['caf_script']!r}")
    return CafConfig(
        caf_script=data["caf_script"],
        database_chain=_strings(path, "database_chain", data["database_chain"]) if data["database_chain"] else (),
        requested_iov=_iov(path, "requested_iov", data["requested_iov"]),
        backend_args=_dict(path, "backend_args", data.get("backend_args") or {}),
        expert_config=_dict(path, "expert_config", data.get("expert_config") or {}),
        testing_payloads=_strings(path, "testing_payloads", data["testing_payloads"])
        if data.get("testing_payloads")
        else (),
    )


def read_input_data(path: Path | str) -> dict[str, dict[str, IoV]]:
    """``{data name: {file: IoV of its run}}`` from an ``input_data.json``, files sorted per run directory."""
    path = Path(path)
    data = _load(path)
    if not isinstance(data, dict) or not data:
        raise InputFileError(path, "file", "must hold a non-empty JSON object {data name: [[run directory, [exp, run]], ...]}")
    files: dict[str, dict[str, IoV]] = {}
    for name, runs in data.items():
        if not isinstance(runs, list):
            raise InputFileError(path, name, f"must be a list of [run directory, [exp, run]], got {runs!r}")
        found: dict[str, IoV] = {}
        for index, entry in enumerate(runs):
            where = f"{name}[{index}]"
            if (
                not isinstance(entry, list)
                or len(entry) != 2
                or not isinstance(entry[0], str)
                or not isinstance(entry[1], list)
                or len(entry[1]) != 2
                or not all(type(v) is int and v >= 0 for v in entry[1])
            ):
                raise InputFileError(path, where, f"must be [\"<run directory>\", [exp, run]], got {entry!r}")
            directory, (exp, run) = Path(entry[0]), entry[1]
            if not directory.is_dir():
                raise InputFileError(path, where, f"run directory {directory} does not exist")
            for file in sorted(p.as_posix() for p in directory.glob("**/*.root")):
                found[file] = IoV(exp, run, exp, run)
        files[name] = found
    return files


@dataclass(frozen=True)
class ValidationConfig:
    """``b2val-prompt-run``'s config: which validation script runs over which finished job."""

    validation_script: str
    job_path: str
    input_data_path: str
    requested_iov: IoV
    download_files: tuple[str, ...] = ()
    backend_args: dict[str, Any] = field(default_factory=dict)
    expert_config: dict[str, Any] = field(default_factory=dict)


def read_validation_config(path: Path | str) -> ValidationConfig:
    """Read and check a ``b2val-prompt-run`` config JSON."""
    path = Path(path)
    data = _load_object(path, ("validation_script", "job_path", "requested_iov"))
    for name in ("validation_script", "job_path", "input_data_path"):
        if name in data and (not isinstance(data[name], str) or not data[name].strip()):
            raise InputFileError(path, name, f"must be a non-empty string, got {data[name]!r}")
    return ValidationConfig(
        validation_script=data["validation_script"],
        job_path=data["job_path"],
        input_data_path=data.get("input_data_path") or data["job_path"],
        requested_iov=_iov(path, "requested_iov", data["requested_iov"]),
        download_files=_strings(path, "download_files", data["download_files"]) if data.get("download_files") else (),
        backend_args=_dict(path, "backend_args", data.get("backend_args") or {}),
        expert_config=_dict(path, "expert_config", data.get("expert_config") or {}),
    )


def caf_config_document(config: CafConfig) -> dict[str, Any]:
    """The ``caf_config.json`` document of ``config`` (``testing_payloads`` only when there are any)."""
    document: dict[str, Any] = {
        "caf_script": config.caf_script,
        "database_chain": list(config.database_chain),
        "backend_args": dict(config.backend_args),
        "requested_iov": list(config.requested_iov),
        "expert_config": dict(config.expert_config),
    }
    if config.testing_payloads:
        document["testing_payloads"] = list(config.testing_payloads)
    return document


def input_data_document(run_directories: dict[str, list[tuple[str, tuple[int, int]]]]) -> dict[str, Any]:
    """The ``input_data.json`` document: ``{name: [[run directory, [exp, run]], ...]}``."""
    return {
        name: [[directory, [exp, run]] for directory, (exp, run) in runs] for name, runs in run_directories.items()
    }
