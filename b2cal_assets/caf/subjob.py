"""One collector subjob: ``python -m b2cal_assets.caf.subjob SPEC.json``.

The subjob loads the calibration script by file, asks it for its calibrations again (the same way
the runner did), runs the named calibration's collector over its files and writes the arrays summed
per run to ``collected.npz`` (keys ``<exp>_<run>/<array>``), atomically, in its working directory.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from b2cal_assets.caf.framework import Calibration, CollectorContext
from b2cal_assets.caf.job_spec import JsonSpec, spec_main
from b2cal_assets.caf.localdb import ConditionsChain
from b2cal_assets.caf.shim import load_script_module, script_imports
from b2cal_assets.domain.iov import ExpRun, IoV
from b2cal_assets.files import atomic_path

__all__ = [
    "COLLECTED_FILE",
    "SubjobSpec",
    "call_get_calibrations",
    "load_script",
    "read_collected",
    "run_subjob",
    "script_context",
    "sum_collected",
]

COLLECTED_FILE = "collected.npz"


@dataclass(frozen=True)
class SubjobSpec(JsonSpec):
    """What a collector subjob needs, as written to its JSON file by the runner."""

    script_file: Path
    calibrations_dir: Path | None
    calibration: str
    input_data: dict[str, dict[str, IoV]]
    requested_iov: IoV
    expert_config: dict[str, Any]
    iteration: int
    files: list[str]
    conditions_chain: list[Path] = field(default_factory=list)
    output: Path = Path(COLLECTED_FILE)

    def fields(self) -> dict[str, Any]:
        return {
            "script_file": str(self.script_file),
            "calibrations_dir": str(self.calibrations_dir) if self.calibrations_dir else None,
            "calibration": self.calibration,
            "input_data": {k: {p: list(iov) for p, iov in v.items()} for k, v in self.input_data.items()},
            "requested_iov": list(self.requested_iov),
            "expert_config": self.expert_config,
            "iteration": self.iteration,
            "files": list(self.files),
            "conditions_chain": [str(p) for p in self.conditions_chain],
            "output": str(self.output),
        }

    @classmethod
    def from_fields(cls, data: dict[str, Any]) -> SubjobSpec:
        return cls(
            script_file=Path(data["script_file"]),
            calibrations_dir=Path(data["calibrations_dir"]) if data.get("calibrations_dir") else None,
            calibration=data["calibration"],
            input_data={k: {p: IoV(*iov) for p, iov in v.items()} for k, v in data["input_data"].items()},
            requested_iov=IoV(*data["requested_iov"]),
            expert_config=dict(data.get("expert_config") or {}),
            iteration=int(data["iteration"]),
            files=list(data["files"]),
            conditions_chain=[Path(p) for p in data.get("conditions_chain", [])],
            output=Path(data.get("output", COLLECTED_FILE)),
        )


def load_script(script_file: Path, calibrations_dir: Path | None) -> Any:
    """The calibration script's module, loaded with the framework's import names available.

    ``calibrations_dir`` defaults to the script's own directory.
    """
    return load_script_module(Path(script_file), calibrations_dir or Path(script_file).parent)


def script_context(script_file: Path, calibrations_dir: Path | None) -> AbstractContextManager[Any]:
    """Wrap calls into script code (get_calibrations, collectors, algorithms) with this."""
    return script_imports(calibrations_dir or Path(script_file).parent)


def call_get_calibrations(
    module: Any,
    input_data: Mapping[str, Mapping[str, IoV]],
    requested_iov: IoV,
    expert_config: Mapping[str, Any],
) -> list[Calibration]:
    """``get_calibrations`` as the framework calls it; checks it returned uniquely named Calibrations."""
    script = getattr(module, "__file__", module)
    if not callable(getattr(module, "get_calibrations", None)):
        raise TypeError(f"calibration script {script} has no get_calibrations(input_data, **kwargs)")
    data = {name: dict(files) for name, files in input_data.items()}
    calibrations = module.get_calibrations(
        data, requested_iov=requested_iov, expert_config=dict(expert_config)
    )
    calibrations = list(calibrations or [])
    names = set()
    for cal in calibrations:
        if not isinstance(cal, Calibration):
            raise TypeError(f"{script}: get_calibrations returned {type(cal).__name__}, not a Calibration")
        if cal.name in names:
            raise ValueError(f"{script}: get_calibrations returned two calibrations named {cal.name!r}")
        names.add(cal.name)
    return calibrations


def run_subjob(spec: SubjobSpec, *, log: Callable[..., Any] = print) -> Path:
    """Collect ``spec.files`` and write the per-run sums; returns the output path."""
    module = load_script(spec.script_file, spec.calibrations_dir)
    with script_context(spec.script_file, spec.calibrations_dir):
        return _collect(module, spec, log)


def _collect(module: Any, spec: SubjobSpec, log: Callable[..., Any]) -> Path:
    calibrations = call_get_calibrations(module, spec.input_data, spec.requested_iov, spec.expert_config)
    by_name = {c.name: c for c in calibrations}
    if spec.calibration not in by_name:
        known = ", ".join(by_name) or "none"
        raise LookupError(
            f"get_calibrations returned no calibration {spec.calibration!r} (it returned: {known})"
        )
    cal = by_name[spec.calibration]
    chain = ConditionsChain(spec.conditions_chain)
    sums: dict[ExpRun, dict[str, np.ndarray]] = {}
    log(f"collector {cal.name} iteration {spec.iteration}: {len(spec.files)} file(s)", flush=True)
    for i, path in enumerate(spec.files, 1):
        if path not in cal.input_files:
            raise LookupError(f"file {path} is not an input file of calibration {cal.name}")
        exp_run = ExpRun(*cal.input_files[path])
        ctx = CollectorContext(
            iteration=spec.iteration,
            exp_run=exp_run,
            conditions=chain.at(exp_run),
            expert_config=spec.expert_config,
            requested_iov=spec.requested_iov,
        )
        started = time.monotonic()
        arrays = cal.collector(path, ctx)
        _add(sums.setdefault(exp_run, {}), arrays, f"{path} (exp {exp_run.exp}, run {exp_run.run})")
        log(
            f"[{i}/{len(spec.files)}] {path}: {len(arrays)} array(s) in {time.monotonic() - started:.1f} s",
            flush=True,
        )
    output = spec.output
    _write_npz(
        output, {f"{er.exp}_{er.run}/{name}": a for er, arrays in sums.items() for name, a in arrays.items()}
    )
    log(f"wrote {output} ({len(sums)} run(s))", flush=True)
    return output


def read_collected(path: Path) -> dict[ExpRun, dict[str, np.ndarray]]:
    """A subjob's ``collected.npz`` back as ``{ExpRun: {array: values}}``."""
    out: dict[ExpRun, dict[str, np.ndarray]] = {}
    with np.load(path, allow_pickle=False) as data:
        for key in data.files:
            run_key, name = key.split("/", 1)
            exp, run = run_key.split("_")
            out.setdefault(ExpRun(int(exp), int(run)), {})[name] = data[key]
    return out


def sum_collected(
    parts: Sequence[Mapping[ExpRun, Mapping[str, np.ndarray]]],
) -> dict[ExpRun, dict[str, np.ndarray]]:
    """Add up several subjobs' per-run arrays."""
    total: dict[ExpRun, dict[str, np.ndarray]] = {}
    for part in parts:
        for exp_run, arrays in part.items():
            _add(total.setdefault(exp_run, {}), arrays, f"exp {exp_run.exp}, run {exp_run.run}")
    return total


def _add(total: dict[str, np.ndarray], arrays: Mapping[str, Any], where: str) -> None:
    if not isinstance(arrays, Mapping):
        raise TypeError(
            f"the collector returned {type(arrays).__name__} for {where}; it must return a dict of arrays"
        )
    for name, values in arrays.items():
        if not isinstance(name, str) or not name or "/" in name:
            raise ValueError(f"collector array name {name!r} for {where}: use a non-empty name without '/'")
        values = np.asarray(values)
        if name not in total:
            total[name] = values.copy()
            continue
        if total[name].shape != values.shape:
            raise ValueError(
                f"collector array {name!r} has shape {values.shape} for {where} but {total[name].shape} before; "
                "collected arrays must have the same shape to be summed"
            )
        total[name] = total[name] + values


def _write_npz(path: Path, arrays: Mapping[str, np.ndarray]) -> None:
    with atomic_path(path, suffix=".npz") as tmp:
        np.savez(tmp, **arrays)  # type: ignore[arg-type]


def main(argv: Sequence[str] | None = None) -> int:
    return spec_main(argv, "b2cal_assets.caf.subjob", lambda text: run_subjob(SubjobSpec.from_json(text)))


if __name__ == "__main__":
    sys.exit(main())
