"""LSF: many jobs per ``bsub`` as a job array (``-J "name[1-N]"``), one ``bjobs`` per poll.

Array element N runs the ``run.sh`` in line N of the manifest (``LSB_JOBINDEX`` is 1-based).
Job ids are LSF's ``<job id>[<index>]``.
"""

from __future__ import annotations

import json
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
    "BJOBS_FIELDS",
    "LSF_STATES",
    "LSFBackend",
    "LSFOptions",
    "bkill_targets",
    "lsf_status",
    "parse_bjobs_json",
    "parse_bsub_output",
    "render_array_script",
]

BJOBS_FIELDS = "jobid jobindex stat exit_code exit_reason pend_reason"

LSF_STATES: Mapping[str, JobState] = {
    "PEND": JobState.PENDING,
    "WAIT": JobState.PENDING,  # chunk job waiting
    "PROV": JobState.PENDING,  # host being provisioned
    "RUN": JobState.RUNNING,
    "PSUSP": JobState.HELD,  # suspended by its owner or an admin while pending
    "USUSP": JobState.HELD,
    "SSUSP": JobState.HELD,  # suspended by the system
    "DONE": JobState.DONE,
    "EXIT": JobState.FAILED,
    "UNKWN": JobState.RUNNING,  # execution host lost contact; LSF still owns the job
    "ZOMBI": JobState.FAILED,
}

# exit_reason texts LSF uses for jobs killed on request.
_KILLED_ON_REQUEST = ("TERM_OWNER", "TERM_ADMIN", "killed by owner", "killed by LSF administrator")


@dataclass(frozen=True)
class LSFOptions(BatchOptions):
    """One array's ``bsub`` options: the site's configuration, overridden per job by ``backend_args``."""

    queue: str | None = option("-q {}", pattern=NAME_PATTERN, help="-q")
    memory: str | None = option(
        "-M {}",
        pattern=r"[0-9]{1,9}(\.[0-9]{1,3})? ?([KMGTkmgt][Bb]?)?",
        help='-M, in the site\'s LSF_UNIT_FOR_LIMITS, e.g. "2000" or "2GB"',
    )
    walltime: str | None = option("-W {}", pattern=r"[0-9]{1,6}(:[0-9]{1,2})?", help="-W [hour:]minute")
    slots: int | None = option("-n {}", pattern="int", help="-n")
    project: str | None = option("-P {}", pattern=NAME_PATTERN, help="-P")
    resources: str | None = option(
        '-R "{}"', pattern=r"[A-Za-z0-9_.,:=\[\]()<>!&|~ -]{1,512}", help="-R resource requirement"
    )
    array_limit: int | None = option(pattern="int", help="at most N elements run at once (%N)")


# -- pure functions -----------------------------------------------------------------------------


def render_array_script(
    manifest: Path, n_tasks: int, options: LSFOptions, *, job_name: str, log_dir: Path
) -> str:
    """The script fed to ``bsub`` on stdin: element N runs the ``run.sh`` in line N of ``manifest``."""
    if n_tasks < 1:
        raise ValueError("an array needs at least one element")
    limit = f"%{options.array_limit}" if options.array_limit else ""
    directives = [
        f'-J "{safe_job_name(job_name)}[1-{n_tasks}]{limit}"',
        f"-o {safe_path(log_dir, 'log directory')}/lsf-%J_%I.out",
        f"-e {safe_path(log_dir, 'log directory')}/lsf-%J_%I.err",
    ]
    directives.extend(options.directives())
    manifest_q = shlex.quote(str(manifest))
    return "\n".join(
        [
            "#!/usr/bin/env bash",
            *(f"#BSUB {d}" for d in directives),
            *options.extra_lines,
            f'workdir=$(sed -n "${{LSB_JOBINDEX}}p" {manifest_q})',
            'if [ -z "$workdir" ]; then',
            f'    echo "b2cal: no job for array element $LSB_JOBINDEX in "{manifest_q} >&2',
            "    exit 1",
            "fi",
            f'cd "$workdir" && exec bash ./{WRAPPER_FILE}',
            "",
        ]
    )


def parse_bsub_output(text: str) -> str:
    """The job id from ``Job <123> is submitted to queue <normal>.``"""
    m = re.search(r"Job <(\d+)> is submitted", text)
    if not m:
        raise BackendError(f"bsub printed no job id: {text.strip()!r}")
    return m.group(1)


def parse_bjobs_json(text: str) -> dict[str, dict[str, str]]:
    """Records of ``bjobs -a -o '<fields>' -json`` keyed ``<id>[<index>]`` (or ``<id>``).

    Records with an ``ERROR`` (``Job <123> is not found``) are left out: the job is forgotten.
    The job id is ``123[4]`` when LSB_BJOBS_DISPLAY_ENH is set; otherwise the index is its own field.
    """
    if not text.strip():
        return {}
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise BackendError(f"cannot read bjobs' JSON output ({exc}): {text[:200]!r}") from None
    records: dict[str, dict[str, str]] = {}
    for rec in data.get("RECORDS", []):
        if rec.get("ERROR") or not rec.get("JOBID"):
            continue
        job_id = str(rec["JOBID"])
        index = str(rec.get("JOBINDEX") or "").strip()
        if "[" not in job_id and index not in ("", "0", "-"):
            job_id = f"{job_id}[{index}]"
        records[job_id] = {k: str(v) for k, v in rec.items()}
    return records


def lsf_status(job_id: str, record: Mapping[str, str]) -> JobStatus:
    """A bjobs record as a ``JobStatus``; an unknown ``STAT`` raises ``BackendError``."""
    stat = record.get("STAT", "")
    try:
        state = LSF_STATES[stat]
    except KeyError:
        raise BackendError(
            f"LSF reported state {stat!r} for job {job_id}, which b2cal does not know; "
            "add it to LSF_STATES in b2cal_assets/backends/lsf.py"
        ) from None
    if state == JobState.HELD:
        return JobStatus(JobState.HELD, None, record.get("PEND_REASON") or stat)
    if state == JobState.DONE:
        return JobStatus(JobState.DONE, 0)
    if state != JobState.FAILED:
        return JobStatus(state)
    exit_text = (record.get("EXIT_CODE") or "").strip()
    code = int(exit_text) if exit_text.isdigit() else None
    reason = (record.get("EXIT_REASON") or "").strip()
    if any(k in reason for k in _KILLED_ON_REQUEST):
        return JobStatus(JobState.CANCELLED, code, reason)
    return JobStatus(JobState.FAILED, code, reason or (f"exit code {code}" if code is not None else stat))


def bkill_targets(job_ids: Iterable[str]) -> list[str]:
    """Job ids for one ``bkill``: ``123[1] 123[2] 123[5]`` -> ``"123[1-2,5]"``."""
    arrays: dict[str, list[int]] = {}
    singles: list[str] = []
    for job_id in job_ids:
        m = re.fullmatch(r"(\d+)\[(\d+)\]", job_id)
        if m:
            arrays.setdefault(m.group(1), []).append(int(m.group(2)))
        else:
            singles.append(job_id)
    out = []
    for base, indices in arrays.items():
        out.append(f"{base}[{index_ranges(indices)}]")
    return out + list(dict.fromkeys(singles))


# -- the backend --------------------------------------------------------------------------------


@dataclass
class LSFBackend(ArrayBackend[LSFOptions]):
    """Submit jobs to LSF as job arrays, poll with one ``bjobs``, cancel with one ``bkill``."""

    options: LSFOptions = field(default_factory=LSFOptions)
    runner: CommandRunner = field(default_factory=SubprocessRunner)
    files: JobFiles = field(default_factory=LocalFiles)
    submit_dir: Path | None = setting(help=SUBMIT_DIR_HELP)
    # LSF's MAX_JOB_ARRAY_SIZE default
    max_array_size: int = setting(1000, help="At most this many jobs per bsub job array.")
    name: str = "lsf"
    label: ClassVar[str] = "LSF"

    def max_per_submission(self) -> int | None:
        return self.max_array_size

    def submit_array(
        self, specs: Sequence[JobSpec], options: LSFOptions, manifest: Path, submission_dir: Path
    ) -> list[str]:
        script = render_array_script(
            manifest, len(specs), options, job_name=specs[0].name, log_dir=submission_dir
        )
        self.files.write(submission_dir / "array.sh", script)
        result = run_checked(self.runner, ["bsub"], stdin=script)
        array_id = parse_bsub_output(result.stdout + result.stderr)
        return [f"{array_id}[{offset + 1}]" for offset in range(len(specs))]

    def poll(self, handles: Sequence[JobHandle]) -> dict[str, JobStatus]:
        if not handles:
            return {}
        wanted = [h.job_id for h in handles]
        arrays = list(dict.fromkeys(j.partition("[")[0] for j in wanted))
        result = self.runner(["bjobs", "-a", "-o", BJOBS_FIELDS, "-json", *arrays])
        # bjobs exits 255 when one of the ids is unknown, yet still prints the others' records.
        output = result.stdout + result.stderr
        if result.returncode != 0 and '"RECORDS"' not in result.stdout and "is not found" not in output:
            raise BackendError(describe_failure(result))
        records = parse_bjobs_json(result.stdout)
        return {j: lsf_status(j, records[j]) for j in wanted if j in records}

    def cancel_argv(self, job_ids: Iterable[str]) -> list[str]:
        return ["bkill", *bkill_targets(job_ids)]

    def already_gone(self, result: CommandResult) -> bool:
        lines = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
        gone = ("already finished", "No matching job found", "is not found", "is being terminated")
        return bool(lines) and all(any(g in line for g in gone) for line in lines)
