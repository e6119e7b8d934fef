"""The bash wrapper every backend runs: it keeps ``stdout``, ``stderr``, ``exit_code`` and ``times`` in the job's directory.

The ``exit_code`` file is what decides a job the batch system has forgotten, so it is written
atomically (a temporary file, then ``mv``) and also when the job is killed by SIGTERM (143) or
SIGINT (130). The ``times`` file holds the job's own start epoch (written when the wrapper starts)
and, next to the exit code, its end epoch: the job's own duration, without the batch system's queue.
"""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from b2cal_assets.backends.base import JobSpec
from b2cal_assets.files import atomic_write_text

__all__ = [
    "EXIT_CODE_FILE",
    "STDERR_FILE",
    "STDOUT_FILE",
    "TIMES_FILE",
    "WRAPPER_FILE",
    "JobTimes",
    "log_tail",
    "read_exit_code",
    "read_job_times",
    "render_wrapper",
    "write_wrapper",
]

WRAPPER_FILE = "run.sh"
EXIT_CODE_FILE = "exit_code"
STDOUT_FILE = "stdout"
STDERR_FILE = "stderr"
TIMES_FILE = "times"

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def render_wrapper(spec: JobSpec, *, setup: Sequence[str] = ()) -> str:
    """The wrapper script text for ``spec``; ``setup`` lines (shell) run before the command."""
    if not spec.argv:
        raise ValueError(f"job {spec.name}: argv is empty; give the command to run")
    exports = []
    for key, value in spec.env.items():
        if not _ENV_NAME.match(key):
            raise ValueError(f"job {spec.name}: {key!r} is not a valid environment variable name")
        exports.append(f"export {key}={shlex.quote(str(value))}")
    workdir = shlex.quote(str(Path(spec.workdir).absolute()))
    command = " ".join(shlex.quote(str(a)) for a in spec.argv)
    lines = [
        "#!/usr/bin/env bash",
        f"# b2cal job wrapper for {_comment(spec.name)}",
        f"cd {workdir} || exit 1",
        f"rm -f {EXIT_CODE_FILE} {EXIT_CODE_FILE}.tmp {TIMES_FILE} {TIMES_FILE}.tmp",
        # bash's own clock (no process); a bash without it falls back to date
        'started="${EPOCHREALTIME:-$(date +%s)}"',
        "write_times() {",
        f"    printf '%s\\n' \"$*\" > {TIMES_FILE}.tmp && mv -f {TIMES_FILE}.tmp {TIMES_FILE}",
        "}",
        'write_times "$started"',
        "",
        "write_exit_code() {",
        '    write_times "$started" "${EPOCHREALTIME:-$(date +%s)}"',
        f"    printf '%s\\n' \"$1\" > {EXIT_CODE_FILE}.tmp && mv -f {EXIT_CODE_FILE}.tmp {EXIT_CODE_FILE}",
        "}",
        "child=''",
        "on_signal() {",
        "    trap '' INT TERM",
        '    if [ -n "$child" ]; then',
        '        kill -TERM "$child" 2>/dev/null',
        '        wait "$child" 2>/dev/null',
        "    fi",
        '    write_exit_code "$1"',
        '    exit "$1"',
        "}",
        "trap 'on_signal 143' TERM",
        "trap 'on_signal 130' INT",
        "",
        *exports,
        *setup,
        "",
        f"{command} > {STDOUT_FILE} 2> {STDERR_FILE} < /dev/null &",
        "child=$!",
        'wait "$child"',
        "code=$?",
        "child=''",
        'write_exit_code "$code"',
        'exit "$code"',
        "",
    ]
    return "\n".join(lines)


def write_wrapper(spec: JobSpec, *, setup: Sequence[str] = ()) -> Path:
    """Write ``<workdir>/run.sh`` (mode 755) and return its path; the workdir must exist."""
    workdir = Path(spec.workdir)
    if not workdir.is_dir():
        raise FileNotFoundError(f"job {spec.name}: work directory {workdir} does not exist; create it first")
    path = workdir / WRAPPER_FILE
    atomic_write_text(path, render_wrapper(spec, setup=setup), mode=0o755)
    return path


def read_exit_code(workdir: Path | str) -> int | None:
    """The job's exit code, or ``None`` while it has not finished (or never ran here)."""
    try:
        text = _read(workdir, EXIT_CODE_FILE).strip()
    except (FileNotFoundError, NotADirectoryError):
        return None
    try:
        return int(text)
    except ValueError:
        return None


@dataclass(frozen=True)
class JobTimes:
    """The job's own start and end (Unix epoch seconds) as its wrapper recorded them; ``None`` = not (yet) known."""

    started_at: float | None
    finished_at: float | None

    @property
    def duration_s(self) -> float | None:
        if self.started_at is None or self.finished_at is None:
            return None
        return self.finished_at - self.started_at


def read_job_times(workdir: Path | str) -> JobTimes:
    """The job's own start and end from its ``times`` file; both ``None`` when it never started here."""
    try:
        fields = _read(workdir, TIMES_FILE).split()
    except (FileNotFoundError, NotADirectoryError):
        return JobTimes(None, None)
    # EPOCHREALTIME uses the locale's decimal separator
    values = [_epoch(f.replace(",", ".")) for f in fields[:2]]
    values += [None] * (2 - len(values))
    return JobTimes(values[0], values[1])


def _read(workdir: Path | str, name: str) -> str:
    # plain os paths: the manager reads these once per job of tens of thousands, and pathlib's own
    # parsing costs about twice the system call
    with open(os.path.join(workdir, name), encoding="utf-8") as f:
        return f.read()


def _epoch(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if value > 0 else None


def log_tail(workdir: Path | str, lines: int = 30) -> str:
    """The last ``lines`` lines of the job's ``stderr``, or of ``stdout`` when stderr is empty."""
    for name in (STDERR_FILE, STDOUT_FILE):
        text = _tail(Path(workdir) / name, lines)
        if text.strip():
            return f"--- {name} (last {lines} lines) ---\n{text}"
    return "(no output in stdout or stderr)"


def _tail(path: Path, lines: int) -> str:
    try:
        with path.open("rb") as fh:
            fh.seek(0, 2)
            size = fh.tell()
            fh.seek(max(0, size - 64 * 1024))
            data = fh.read()
    except FileNotFoundError:
        return ""
    text = data.decode("utf-8", errors="replace")
    return "\n".join(text.splitlines()[-lines:])


def _comment(text: str) -> str:
    return text.replace("\n", " ")
