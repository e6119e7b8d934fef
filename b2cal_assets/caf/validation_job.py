"""Running a validation script the framework's way: as a program in a directory of its own.

The framework runs ``<python or basf2> <script> <job_path> <input_data_path> '<requested_iov>'
'<expert_config as JSON>'``; the script's ``__main__`` calls ``run_validation(*sys.argv[1:])`` with
these strings and writes its plots relative to the working directory. Here the script runs in a
subprocess (``caf.prompt_script``, so the framework's names import) in ``workdir``; afterwards the
plots are collected from ``workdir`` and from ``job_path``, and the files matching the script's
``download_files`` are copied from ``job_path`` into ``workdir/download_files/``, as
``b2val-prompt-run`` does. The exit code is the verdict; a script may add a summary, its own
verdict and metrics in ``workdir/validation_result.json`` (``{"passed", "summary", "metrics"}``).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from b2cal_assets.caf.scripts import ValidationScript
from b2cal_assets.domain.expert_config import merge_expert_config
from b2cal_assets.domain.iov import IoV

__all__ = ["PLOT_SUFFIXES", "RESULT_FILE", "ValidationRun", "run_validation_job", "validation_argv"]

PLOT_SUFFIXES = (".png", ".pdf", ".svg", ".jpg")
RESULT_FILE = "validation_result.json"
LOG_FILE = "validation.log"


@dataclass
class ValidationRun:
    """What one run of a validation script left: exit code, log, plots, copied files, its result file."""

    exit_code: int
    workdir: Path
    log: Path
    plots: list[Path] = field(default_factory=list)
    downloaded: list[Path] = field(default_factory=list)
    result: dict[str, Any] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return self.exit_code == 0 and bool(self.result.get("passed", True))

    def log_tail(self, lines: int = 20) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    @property
    def summary(self) -> str:
        if self.result.get("summary"):
            return str(self.result["summary"])
        if self.exit_code:
            return f"the validation script exited with code {self.exit_code}: {self.log_tail(5) or 'no output'}"
        return f"the validation script finished ({len(self.plots)} plot(s))"


def validation_argv(
    validation: ValidationScript,
    job_path: Path,
    input_data_path: Path | str,
    requested_iov: IoV,
    expert_config: Mapping[str, Any],
) -> list[str]:
    """The command line: the framework's four string arguments after the script."""
    return [
        sys.executable,
        "-m",
        "b2cal_assets.caf.prompt_script",
        str(validation.namespace.calibrations_dir),
        str(validation.file),
        str(job_path),
        str(input_data_path),
        json.dumps(list(requested_iov)),
        json.dumps(dict(expert_config)),
    ]


def _images(folder: Path, since: float, exclude: Path | None = None) -> list[Path]:
    if not folder.is_dir():
        return []
    found = []
    for path in sorted(folder.rglob("*")):
        if exclude is not None and path.is_relative_to(exclude):
            continue
        if path.suffix.lower() in PLOT_SUFFIXES and path.is_file() and path.stat().st_mtime >= since:
            found.append(path)
    return found


def _copy_downloads(patterns: tuple[str, ...], job_path: Path, workdir: Path) -> list[Path]:
    target = workdir / "download_files"
    copied = []
    for pattern in patterns:
        for source in sorted(job_path.rglob(pattern)):
            if not source.is_file() or source.is_relative_to(workdir):
                continue
            dest = target / source.relative_to(job_path)
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest)
            copied.append(dest)
    return copied


def run_validation_job(
    validation: ValidationScript,
    *,
    job_path: Path | str,
    input_data_path: Path | str,
    requested_iov: IoV | tuple[int, int, int, int],
    expert_config: Mapping[str, Any] | None = None,
    workdir: Path | str,
    timeout_s: float | None = None,
    download_files: tuple[str, ...] = (),
) -> ValidationRun:
    """Run ``validation`` over a finished job (``job_path``) in a fresh ``workdir``.

    ``expert_config`` holds overrides of the script's defaults (checked like a submission's);
    ``download_files`` adds patterns to the script's own.
    """
    job_path = Path(job_path).resolve()
    workdir = Path(workdir).resolve()
    config = merge_expert_config(validation.settings.expert_config, expert_config)
    if workdir.exists():
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True)
    log = workdir / LOG_FILE
    argv = validation_argv(validation, job_path, input_data_path, IoV(*requested_iov), config)
    env = {**os.environ, "MPLBACKEND": os.environ.get("MPLBACKEND", "Agg")}
    started = time.time() - 1.0  # mtime granularity
    with log.open("w") as out:
        try:
            code = subprocess.run(
                argv, cwd=workdir, stdout=out, stderr=subprocess.STDOUT, env=env, timeout=timeout_s, check=False
            ).returncode
        except subprocess.TimeoutExpired:
            out.write(f"\nb2cal: the validation script did not finish within {timeout_s} s and was stopped\n")
            code = -9
    result: dict[str, Any] = {}
    result_file = workdir / RESULT_FILE
    if result_file.exists():
        try:
            loaded = json.loads(result_file.read_text())
            result = loaded if isinstance(loaded, dict) else {}
        except json.JSONDecodeError as exc:
            result = {"passed": False, "summary": f"{RESULT_FILE} is not valid JSON: {exc}"}
    plots = _images(workdir, started) + _images(job_path, started, exclude=workdir)
    patterns = tuple(dict.fromkeys((*validation.settings.download_files, *download_files)))
    downloaded = _copy_downloads(patterns, job_path, workdir)
    return ValidationRun(code, workdir, log, plots, downloaded, result)
