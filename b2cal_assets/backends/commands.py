"""How batch backends run scheduler commands: through an injected runner, so tests can feed captured output.

The Slurm, HTCondor and LSF backends never call ``subprocess`` themselves; they call a
``CommandRunner``. ``SubprocessRunner`` is the real one; a test passes a fake that records the
commands and answers with output captured from the real tools.
"""

from __future__ import annotations

import os
import re
import subprocess
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from b2cal_assets.backends.base import BackendError, JobSpec
from b2cal_assets.files import atomic_write_text

__all__ = [
    "NAME_PATTERN",
    "SAFE_TEXT",
    "SITE_ONLY_OPTIONS",
    "CommandResult",
    "CommandRunner",
    "JobFiles",
    "LocalFiles",
    "SubprocessRunner",
    "check_job_backend_args",
    "check_option_value",
    "describe_failure",
    "group_by_backend_args",
    "index_ranges",
    "merged_options",
    "new_submission_dir",
    "prefixed",
    "run_checked",
    "safe_job_name",
    "safe_path",
    "write_manifest",
]


@dataclass(frozen=True)
class CommandResult:
    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str = ""


class CommandRunner(Protocol):
    """Runs one command; ``stdin`` is fed to it. Never raises for a non-zero exit."""

    def __call__(self, argv: Sequence[str], *, stdin: str | None = None) -> CommandResult: ...


class SubprocessRunner:
    """Runs commands on this machine; ``env`` adds variables (e.g. ``SLURM_CONF``) to the current ones."""

    def __init__(self, env: Mapping[str, str] | None = None, timeout_s: float = 120.0) -> None:
        self.env = dict(env or {})
        self.timeout_s = timeout_s

    def __call__(self, argv: Sequence[str], *, stdin: str | None = None) -> CommandResult:
        argv = tuple(str(a) for a in argv)
        try:
            proc = subprocess.run(
                argv,
                input=stdin,
                capture_output=True,
                text=True,
                env={**os.environ, **self.env},
                timeout=self.timeout_s,
                check=False,
            )
        except FileNotFoundError:
            raise BackendError(
                f"{argv[0]} is not on PATH: install the batch system's client tools on this machine "
                "or choose another backend for the site"
            ) from None
        except subprocess.TimeoutExpired:
            raise BackendError(
                f"{' '.join(argv[:3])} ... did not answer within {self.timeout_s:.0f} s; is the scheduler up?"
            ) from None
        return CommandResult(argv, proc.returncode, proc.stdout, proc.stderr)


class JobFiles(Protocol):
    """Where a backend writes the files its scheduler reads (wrappers, manifests, scripts): this
    machine (``LocalFiles``) or a submit host (``backends/remote.py``)."""

    def write(self, path: Path, text: str, mode: int = 0o644) -> None: ...

    def mkdir(self, path: Path) -> None:
        """Create a new directory (and its parents); an existing one is an error."""

    def read_text(self, path: Path) -> str | None:
        """The file's text, or ``None`` when it does not exist."""


class LocalFiles:
    """The files of this machine, written atomically."""

    def write(self, path: Path, text: str, mode: int = 0o644) -> None:
        if not Path(path).parent.is_dir():
            raise FileNotFoundError(f"directory {Path(path).parent} does not exist; create it first")
        atomic_write_text(Path(path), text, mode=mode)

    def mkdir(self, path: Path) -> None:
        Path(path).mkdir(parents=True, exist_ok=False)

    def read_text(self, path: Path) -> str | None:
        try:
            return Path(path).read_text(errors="replace")
        except FileNotFoundError:
            return None


def run_checked(runner: CommandRunner, argv: Sequence[str], *, stdin: str | None = None) -> CommandResult:
    """Run and raise ``BackendError`` naming the command and what it printed when it fails."""
    result = runner(argv, stdin=stdin)
    if result.returncode != 0:
        raise BackendError(describe_failure(result))
    return result


def describe_failure(result: CommandResult) -> str:
    printed = (result.stderr.strip() or result.stdout.strip() or "(no output)")[-2000:]
    return f"`{' '.join(result.argv[:4])}{' ...' if len(result.argv) > 4 else ''}` exited with {result.returncode}: {printed}"


def prefixed(path: str | os.PathLike[str], prefix: str | None) -> str:
    """``path`` as the job should open it: behind the site's ``path_prefix`` (e.g. ``root://host:1094/``).

    An absolute path keeps its leading slash, so ``root://h:1094/`` + ``/calib/f.root`` gives
    XRootD's absolute form ``root://h:1094//calib/f.root``. A path that already has a scheme is
    left alone, as is any path when there is no prefix.
    """
    text = os.fspath(path)
    if not prefix or "://" in text:
        return text
    if "://" not in prefix:
        return os.path.join(prefix, text.lstrip("/"))
    return (prefix if prefix.endswith("/") else prefix + "/") + text


# Calibration scripts name resources the way the experiment's HTCondor sites do ("request_memory":
# "4 GB"); a script must run unchanged on any backend, so those names are translated per backend.
_ALIASES = {
    "slurm": {"request_memory": "memory", "request_cpus": "cpus", "queue": "partition"},
    "lsf": {"request_memory": "memory", "request_cpus": "slots", "partition": "queue"},
    "htcondor": {"memory": "request_memory", "cpus": "request_cpus"},
}
_MEMORY_UNITS = {"": 1.0, "k": 1 / 1024, "m": 1.0, "g": 1024.0, "t": 1024.0**2}


def memory_in_mb(value: object) -> float:
    """``"4 GB"``, ``"4G"``, ``"4096MB"``, ``4096`` (MB) as megabytes; a clear error otherwise."""
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([kKmMgGtT]?)(i?[bB])?\s*", str(value))
    if not match:
        raise BackendError(f"memory {value!r} is not a size such as '4 GB', '4G' or '4096' (MB)")
    return float(match.group(1)) * _MEMORY_UNITS[match.group(2).lower()]


def _translated(backend_args: Mapping[str, object], backend: str) -> dict[str, object]:
    backend = backend.lower()
    aliases = _ALIASES.get(backend, {})
    out = {aliases.get(k, k): v for k, v in backend_args.items()}
    if "request_memory" in backend_args and backend in ("slurm", "lsf"):
        mb = round(memory_in_mb(backend_args["request_memory"]))  # HTCondor style, e.g. "4 GB"
        out["memory"] = f"{mb}M" if backend == "slurm" else f"{mb}MB"
    return out


def merged_options(
    site: Mapping[str, object], spec: JobSpec, known: Iterable[str], backend: str
) -> dict[str, object]:
    """The site's options overridden by the job's ``backend_args``; an unknown key is a clear error."""
    known = set(known)
    try:
        check_job_backend_args(spec.backend_args)
    except BackendError as exc:
        raise BackendError(f"job {spec.name}: {exc}") from None
    args = _translated(spec.backend_args, backend)
    unknown = sorted(set(args) - known)
    if unknown:
        raise BackendError(
            f"job {spec.name}: unknown {backend} option(s) {', '.join(unknown)}; "
            f"known options are {', '.join(sorted(known))}"
        )
    return {**site, **args}


def group_by_backend_args(jobs: Sequence[JobSpec]) -> list[list[int]]:
    """Indices of ``jobs`` grouped by identical ``backend_args`` (one array per group), in order."""
    groups: dict[str, list[int]] = {}
    for i, spec in enumerate(jobs):
        key = repr(sorted((k, repr(v)) for k, v in spec.backend_args.items()))
        groups.setdefault(key, []).append(i)
    return list(groups.values())


def write_manifest(path: Path, workdirs: Sequence[Path], files: JobFiles | None = None) -> Path:
    """One absolute workdir per line; line N+1 belongs to array task N (0-based) or N+1 (1-based)."""
    lines = []
    for workdir in workdirs:
        text = str(Path(workdir).absolute())
        if "\n" in text:
            raise BackendError(f"work directory {text!r} contains a newline; choose another directory")
        lines.append(text)
    if files is None:
        path.parent.mkdir(parents=True, exist_ok=True)
        files = LocalFiles()
    files.write(path, "\n".join(lines) + "\n")
    return path


def safe_job_name(name: str) -> str:
    """A job name every scheduler accepts: letters, digits and ``_.+-``, at most 100 characters."""
    return re.sub(r"[^A-Za-z0-9_.+-]", "_", name)[:100] or "b2cal"


def new_submission_dir(
    specs: Sequence[JobSpec], submit_dir: Path | None, backend: str, files: JobFiles | None = None
) -> Path:
    """A fresh directory for one submission's manifest, script and scheduler logs.

    Under ``submit_dir`` when the site gives one, else under ``.<backend>`` next to the jobs' workdirs.
    """
    if submit_dir is not None:
        root = Path(submit_dir)
    else:
        parents = [str(Path(s.workdir).absolute().parent) for s in specs]
        root = Path(os.path.commonpath(parents)) / f".{backend}"
    path = root / f"{safe_job_name(specs[0].name)[:40]}-{uuid.uuid4().hex[:10]}"
    (files or LocalFiles()).mkdir(path)
    return path


def index_ranges(indices: Iterable[int]) -> str:
    """``[0, 1, 2, 7, 9, 10]`` -> ``"0-2,7,9-10"`` (the range syntax of Slurm and LSF arrays)."""
    values = sorted(set(indices))
    if not values:
        raise ValueError("no indices")
    ranges = []
    start = prev = values[0]
    for cur in values[1:]:
        if cur != prev + 1:
            ranges.append(str(start) if start == prev else f"{start}-{prev}")
            start = cur
        prev = cur
    ranges.append(str(start) if start == prev else f"{start}-{prev}")
    return ",".join(ranges)


# what an option value may look like, by kind (a value reaches a batch script or submit file)
NAME_PATTERN = r"[A-Za-z0-9_.@-]{1,128}"
SAFE_TEXT = re.compile(r"[A-Za-z0-9_.,:=@%+/ \[\]()<>!&|~-]{0,512}")
SITE_ONLY_OPTIONS = frozenset({"extra_lines"})


def check_option_value(option: str, value: object, pattern: str | None) -> object:
    """``value`` if the batch system accepts it for ``option``; else a ``BackendError`` naming it.

    Whole numbers must be numbers of at least 1; text must match ``pattern`` in full (no newlines,
    quotes or shell characters), so nothing a job asks for becomes a line of its own in a script.
    """
    if value is None or value == "":
        return value
    if pattern == "int":
        if isinstance(value, bool) or not (
            isinstance(value, int) or (isinstance(value, str) and value.isdigit())
        ):
            raise BackendError(f"option {option} must be a whole number, not {value!r}")
        number = int(value)
        if number < 1:
            raise BackendError(f"option {option} must be at least 1, not {number}")
        return number
    if not isinstance(value, str | int | float) or isinstance(value, bool):
        raise BackendError(f"option {option} must be text or a number, not {value!r}")
    text = str(value)
    if not (re.fullmatch(pattern, text) if pattern else SAFE_TEXT.fullmatch(text)):
        raise BackendError(
            f"option {option} has a value the batch system does not take: {text!r} "
            "(no newlines, quotes or shell characters)"
        )
    return value


def check_job_backend_args(backend_args: Mapping[str, object]) -> None:
    """A submission's ``backend_args``: never ``extra_lines`` (the site's configuration only), and no
    value that could become a line or a command of its own; each backend checks its own patterns too."""
    for key, value in backend_args.items():
        if key in SITE_ONLY_OPTIONS:
            raise BackendError(
                f"option {key} comes only from the site's backend configuration, never from a submission"
            )
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,63}", str(key)):
            raise BackendError(f"option name {key!r} is not a batch option")
        check_option_value(str(key), value, None)


def safe_path(path: Path | str, what: str) -> str:
    """A path written into a scheduler directive: refused with spaces, quotes, newlines or ``$``."""
    text = str(path)
    if not re.fullmatch(r"[A-Za-z0-9_.,:@%+/=~-]+", text):
        raise BackendError(
            f"{what} {text!r} contains characters a batch script cannot take safely "
            "(spaces, quotes, newlines, $); choose another directory"
        )
    return text
