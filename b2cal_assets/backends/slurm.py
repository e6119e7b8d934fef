"""Slurm: many jobs per ``sbatch`` as a job array, one ``squeue`` per poll for all of them.

Each array task finds its job in a manifest (line ``SLURM_ARRAY_TASK_ID + 1`` holds the job's
workdir) and runs that job's ``run.sh``. Handles carry ``<array id>_<task id>`` job ids, the form
``squeue -r`` prints. Jobs Slurm has already purged (after ``MinJobAge``) are looked up in the
``jobcomp/filetxt`` file when the site names it; otherwise they get no status, and the manager
decides them by their ``exit_code`` file.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from b2cal_assets.backends.arrays import SUBMIT_DIR_HELP, ArrayBackend, setting
from b2cal_assets.backends.base import BackendError, JobHandle, JobSpec, JobState, JobStatus
from b2cal_assets.backends.commands import (
    NAME_PATTERN,
    CommandResult,
    CommandRunner,
    JobFiles,
    LocalFiles,
    SubprocessRunner,
    describe_failure,
    index_ranges,
    run_checked,
    safe_job_name,
    safe_path,
)
from b2cal_assets.backends.options import BatchOptions, option
from b2cal_assets.backends.wrapper import WRAPPER_FILE

__all__ = [
    "SLURM_STATES",
    "SlurmBackend",
    "SlurmOptions",
    "compress_task_ids",
    "parse_jobcomp",
    "parse_sbatch_output",
    "parse_squeue_output",
    "render_array_script",
    "slurm_status",
]

# squeue -O: every field followed by "|" (no width given, so nothing is padded or cut).
SQUEUE_FIELDS = "JobArrayID:|,State:|,Reason:|,exit_code:|"

# Native job states (squeue/scontrol long names) onto JobState; anything else raises.
SLURM_STATES: Mapping[str, JobState] = {
    "PENDING": JobState.PENDING,
    "CONFIGURING": JobState.PENDING,
    "REQUEUED": JobState.PENDING,
    "REQUEUE_FED": JobState.PENDING,
    "REQUEUE_HOLD": JobState.HELD,
    "RESV_DEL_HOLD": JobState.HELD,
    "SUSPENDED": JobState.HELD,
    "STOPPED": JobState.HELD,
    "RUNNING": JobState.RUNNING,
    "COMPLETING": JobState.RUNNING,
    "STAGE_OUT": JobState.RUNNING,
    "SIGNALING": JobState.RUNNING,
    "RESIZING": JobState.RUNNING,
    "UPDATE_DB": JobState.RUNNING,
    "POWER_UP_NODE": JobState.PENDING,
    "COMPLETED": JobState.DONE,
    "CANCELLED": JobState.CANCELLED,
    "FAILED": JobState.FAILED,
    "TIMEOUT": JobState.FAILED,
    "NODE_FAIL": JobState.FAILED,
    "OUT_OF_MEMORY": JobState.FAILED,
    "BOOT_FAIL": JobState.FAILED,
    "DEADLINE": JobState.FAILED,
    "PREEMPTED": JobState.FAILED,
    "SPECIAL_EXIT": JobState.FAILED,
    "REVOKED": JobState.CANCELLED,
}

# Pending reasons that mean somebody holds the job (it will not start by itself).
_HOLD_REASONS = {"JobHeldUser", "JobHeldAdmin", "BeginTime_Held"}

_FAILURE_REASONS = {
    "TIMEOUT": "time limit reached",
    "OUT_OF_MEMORY": "out of memory",
    "NODE_FAIL": "node failure",
    "BOOT_FAIL": "node boot failure",
    "DEADLINE": "deadline reached",
    "PREEMPTED": "preempted",
}


@dataclass(frozen=True)
class SlurmOptions(BatchOptions):
    """One array's ``sbatch`` options: the site's configuration, overridden per job by ``backend_args``."""

    partition: str | None = option(
        "--partition={}", pattern=r"[A-Za-z0-9_.-]{1,64}(,[A-Za-z0-9_.-]{1,64})*", help="partition(s)"
    )
    memory: str | None = option("--mem={}", pattern=r"[0-9]{1,9}[KMGT]?", help='--mem, e.g. "2G"')
    time_limit: str | None = option(
        "--time={}", pattern=r"[0-9]{1,6}(-[0-9]{1,2})?(:[0-9]{1,2}){0,2}", help='--time, e.g. "01:00:00"'
    )
    cpus: int | None = option("--cpus-per-task={}", pattern="int", help="--cpus-per-task")
    account: str | None = option("--account={}", pattern=NAME_PATTERN, help="--account")
    qos: str | None = option("--qos={}", pattern=NAME_PATTERN, help="--qos")
    array_limit: int | None = option(
        pattern="int", help="at most this many tasks of one array run at once (%N)"
    )


# -- pure functions -----------------------------------------------------------------------------


def render_array_script(
    manifest: Path,
    n_tasks: int,
    options: SlurmOptions,
    *,
    job_name: str,
    log_dir: Path,
) -> str:
    """The ``sbatch`` script of one array: task N runs the ``run.sh`` in line N+1 of ``manifest``."""
    if n_tasks < 1:
        raise ValueError("an array needs at least one task")
    array = f"0-{n_tasks - 1}" + (f"%{options.array_limit}" if options.array_limit else "")
    directives = [
        f"--job-name={safe_job_name(job_name)}",
        f"--array={array}",
        f"--output={safe_path(log_dir, 'log directory')}/slurm-%A_%a.out",
        "--open-mode=append",
    ]
    directives.extend(options.directives())
    manifest_q = shlex.quote(str(manifest))
    return "\n".join(
        [
            "#!/usr/bin/env bash",
            *(f"#SBATCH {d}" for d in directives),
            *options.extra_lines,
            f'workdir=$(sed -n "$((SLURM_ARRAY_TASK_ID + 1))p" {manifest_q})',
            'if [ -z "$workdir" ]; then',
            f'    echo "b2cal: no job for array task $SLURM_ARRAY_TASK_ID in "{manifest_q} >&2',
            "    exit 1",
            "fi",
            f'cd "$workdir" && exec bash ./{WRAPPER_FILE}',
            "",
        ]
    )


def render_single_script(workdir: Path, options: SlurmOptions, *, job_name: str, log_dir: Path) -> str:
    """The ``sbatch`` script for one job without an array (sites that forbid arrays)."""
    directives = [
        f"--job-name={safe_job_name(job_name)}",
        f"--output={safe_path(log_dir, 'log directory')}/slurm-%j.out",
    ]
    directives.extend(options.directives())
    return "\n".join(
        [
            "#!/usr/bin/env bash",
            *(f"#SBATCH {d}" for d in directives),
            *options.extra_lines,
            f"cd {shlex.quote(str(workdir))} && exec bash ./{WRAPPER_FILE}",
            "",
        ]
    )


def parse_sbatch_output(text: str) -> str:
    """The job id from ``sbatch --parsable`` (``<id>`` or ``<id>;<cluster>``)."""
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        job_id = line.split(";", 1)[0]
        if job_id.isdigit():
            return job_id
    raise BackendError(f"sbatch printed no job id: {text.strip()!r}")


@dataclass(frozen=True)
class SlurmRecord:
    job_id: str
    state: str
    reason: str = ""
    exit_code: int | None = None  # the process exit code
    signal: int = 0


def parse_squeue_output(text: str) -> dict[str, SlurmRecord]:
    """Records from ``squeue -h -r -t all -O 'JobArrayID:|,State:|,Reason:|,exit_code:|'``.

    ``exit_code`` there is the raw wait status (``256`` = exit 1), as Slurm stores it.
    """
    records: dict[str, SlurmRecord] = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        parts = [p.strip() for p in line.split("|")]
        if len(parts) < 4:
            raise BackendError(f"cannot read squeue line {line!r}: expected id|state|reason|exit_code|")
        job_id, state, reason, raw = parts[:4]
        code, sig = _wait_status(raw)
        records[job_id] = SlurmRecord(job_id, _base_state(state), reason, code, sig)
    return records


def parse_jobcomp(text: str, wanted: Iterable[str] | None = None) -> dict[str, SlurmRecord]:
    """Records from a ``jobcomp/filetxt`` file (``JobId=.. JobState=.. ArrayJobId=.. ExitCode=3:0``).

    A later line for the same job (a requeued one) replaces an earlier one.
    """
    wanted_set = set(wanted) if wanted is not None else None
    records: dict[str, SlurmRecord] = {}
    for line in text.splitlines():
        fields = dict(_KEYVAL.findall(line))
        if "JobId" not in fields or "JobState" not in fields:
            continue
        array_job, task = fields.get("ArrayJobId", ""), fields.get("ArrayTaskId", "")
        if array_job not in ("", "0") and task.isdigit() and int(task) < 4294967294:
            job_id = f"{array_job}_{task}"
        else:
            job_id = fields["JobId"]
        if wanted_set is not None and job_id not in wanted_set:
            continue
        code, sig = _colon_exit(fields.get("ExitCode", ""))
        records[job_id] = SlurmRecord(job_id, _base_state(fields["JobState"]), "", code, sig)
    return records


def slurm_status(record: SlurmRecord) -> JobStatus:
    """A Slurm record as a ``JobStatus``; an unknown native state raises ``BackendError``."""
    try:
        state = SLURM_STATES[record.state]
    except KeyError:
        raise BackendError(
            f"Slurm reported state {record.state!r} for job {record.job_id}, which b2cal does not know; "
            "add it to SLURM_STATES in b2cal_assets/backends/slurm.py"
        ) from None
    if state == JobState.PENDING and record.reason in _HOLD_REASONS:
        return JobStatus(JobState.HELD, None, record.reason)
    if state == JobState.HELD:
        return JobStatus(JobState.HELD, None, record.reason or record.state.lower())
    if not state.finished:
        return JobStatus(state)
    code = record.exit_code
    if record.signal:
        code = 128 + record.signal
    if state == JobState.DONE:
        return JobStatus(JobState.DONE, code if code is not None else 0)
    if state == JobState.CANCELLED:
        return JobStatus(JobState.CANCELLED, code, "cancelled")
    if record.state in _FAILURE_REASONS:
        reason = _FAILURE_REASONS[record.state]
    elif record.signal:
        reason = f"killed by signal {record.signal}"
    else:
        reason = f"exit code {code}"
    return JobStatus(JobState.FAILED, code, reason)


def compress_task_ids(job_ids: Iterable[str]) -> list[str]:
    """Job ids in Slurm's compact form: ``12_0 12_1 12_2 12_7 13`` -> ``12_[0-2,7] 13``."""
    arrays: dict[str, list[int]] = {}
    singles: list[str] = []
    for job_id in job_ids:
        base, sep, task = job_id.partition("_")
        if sep and task.isdigit():
            arrays.setdefault(base, []).append(int(task))
        else:
            singles.append(job_id)
    out = []
    for base, tasks in arrays.items():
        out.append(f"{base}_[{index_ranges(tasks)}]")
    return out + list(dict.fromkeys(singles))


_KEYVAL = re.compile(r"(\w+)=(\S*)")


def _base_state(state: str) -> str:
    # "CANCELLED by 0" (scontrol / sacct) -> "CANCELLED"; "COMPLETED+" -> "COMPLETED"
    return state.split()[0].rstrip("+") if state.strip() else state


def _wait_status(raw: str) -> tuple[int | None, int]:
    if ":" in raw:
        return _colon_exit(raw)
    if not raw or not raw.lstrip("-").isdigit():
        return None, 0
    status = int(raw)
    return (status >> 8) & 0xFF, status & 0x7F


def _colon_exit(text: str) -> tuple[int | None, int]:
    code, _, sig = text.partition(":")
    if not code.isdigit():
        return None, 0
    return int(code), int(sig) if sig.isdigit() else 0


# -- the backend --------------------------------------------------------------------------------


@dataclass
class SlurmBackend(ArrayBackend[SlurmOptions]):
    """Submit jobs to Slurm as arrays, follow them with one ``squeue`` per poll, cancel with one ``scancel``.

    ``options`` is the site's configuration (see ``SlurmOptions``); a job's ``backend_args`` may
    override any of it and jobs with equal ``backend_args`` share an array. ``submit_dir`` holds the
    manifests, array scripts and Slurm's own logs (default: ``.slurm`` next to the jobs' workdirs).
    """

    options: SlurmOptions = field(default_factory=SlurmOptions)
    runner: CommandRunner = field(default_factory=SubprocessRunner)
    files: JobFiles = field(default_factory=LocalFiles)
    submit_dir: Path | None = setting(help=SUBMIT_DIR_HELP)
    # Slurm's MaxArraySize default is 1001 (ids 0..1000)
    max_array_size: int = setting(1000, help="At most this many jobs per sbatch --array.")
    use_arrays: bool = setting(True, help="Submit arrays (false: one sbatch per job).")
    jobcomp_file: Path | None = setting(help="Slurm's jobcomp/filetxt file, for jobs squeue forgot.")
    name: str = "slurm"
    label: ClassVar[str] = "Slurm"

    # -- submit ---------------------------------------------------------------------------------

    def max_per_submission(self) -> int | None:
        return self.max_array_size

    def submit_group(self, specs: Sequence[JobSpec], options: SlurmOptions) -> list[str]:
        if not self.use_arrays:
            return [self._submit_single(spec, options) for spec in specs]
        return super().submit_group(specs, options)

    def submit_array(
        self, specs: Sequence[JobSpec], options: SlurmOptions, manifest: Path, submission_dir: Path
    ) -> list[str]:
        script = submission_dir / "array.sh"
        self.files.write(
            script,
            render_array_script(
                manifest, len(specs), options, job_name=specs[0].name, log_dir=submission_dir
            ),
        )
        result = run_checked(self.runner, ["sbatch", "--parsable", str(script)])
        array_id = parse_sbatch_output(result.stdout)
        return [f"{array_id}_{task}" for task in range(len(specs))]

    def _submit_single(self, spec: JobSpec, options: SlurmOptions) -> str:
        workdir = Path(spec.workdir).absolute()
        script = workdir / "sbatch.sh"
        self.files.write(script, render_single_script(workdir, options, job_name=spec.name, log_dir=workdir))
        result = run_checked(self.runner, ["sbatch", "--parsable", str(script)])
        return parse_sbatch_output(result.stdout)

    # -- poll -----------------------------------------------------------------------------------

    def poll(self, handles: Sequence[JobHandle]) -> dict[str, JobStatus]:
        if not handles:
            return {}
        wanted = [h.job_id for h in handles]
        query_ids = list(dict.fromkeys(j.partition("_")[0] for j in wanted))
        result = self.runner(
            ["squeue", "-h", "-r", "-t", "all", "-O", SQUEUE_FIELDS, "-j", ",".join(query_ids)]
        )
        if result.returncode != 0:
            # squeue fails for a lone id it no longer knows; with several ids it just omits them.
            if "Invalid job id" not in result.stderr:
                raise BackendError(describe_failure(result))
            records: dict[str, SlurmRecord] = {}
        else:
            records = parse_squeue_output(result.stdout)
        missing = [j for j in wanted if j not in records]
        if missing and self.jobcomp_file is not None:
            records.update(parse_jobcomp(self.files.read_text(self.jobcomp_file) or "", missing))
        return {j: slurm_status(records[j]) for j in wanted if j in records}

    # -- cancel ---------------------------------------------------------------------------------

    def cancel_argv(self, job_ids: Iterable[str]) -> list[str]:
        return ["scancel", *compress_task_ids(job_ids)]

    def already_gone(self, result: CommandResult) -> bool:
        return _only_already_gone(result.stderr)


def _only_already_gone(stderr: str) -> bool:
    """scancel complains about jobs that already ended; that is not a failure to cancel."""
    lines = [line for line in stderr.splitlines() if line.strip()]
    gone = ("already completing or completed", "Invalid job id", "Job/step already")
    return all(any(g in line for g in gone) for line in lines)
