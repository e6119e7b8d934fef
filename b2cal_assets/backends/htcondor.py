"""HTCondor: many jobs in one cluster (``queue workdir from <manifest>``), one ``condor_q`` per poll.

Jobs that have left the queue are looked up with one ``condor_history`` for all of them. Held jobs
are reported as HELD with their ``HoldReason``. Job ids are HTCondor's ``<cluster>.<proc>``.
"""

from __future__ import annotations

import json
import re
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
    run_checked,
    safe_job_name,
    safe_path,
)
from b2cal_assets.backends.options import BatchOptions, option
from b2cal_assets.backends.wrapper import WRAPPER_FILE

__all__ = [
    "CONDOR_STATES",
    "HTCondorBackend",
    "HTCondorOptions",
    "condor_status",
    "parse_condor_json",
    "parse_condor_submit_terse",
    "render_submit_description",
]

# JobStatus numbers from the HTCondor manual (job ClassAd attributes).
CONDOR_STATES: Mapping[int, JobState] = {
    1: JobState.PENDING,  # Idle
    2: JobState.RUNNING,  # Running
    3: JobState.CANCELLED,  # Removed
    4: JobState.DONE,  # Completed (DONE or FAILED by its exit code)
    5: JobState.HELD,  # Held
    6: JobState.RUNNING,  # Transferring Output
    7: JobState.HELD,  # Suspended
}

QUERY_ATTRIBUTES = "ClusterId,ProcId,JobStatus,ExitCode,ExitBySignal,ExitSignal,HoldReason,RemoveReason"


_SIZE = r"[0-9]{1,9}(\.[0-9]{1,3})? ?([KMGTkmgt]i?[Bb]?)?"


@dataclass(frozen=True)
class HTCondorOptions(BatchOptions):
    """One cluster's submit options: the site's configuration, overridden per job by ``backend_args``."""

    universe: str = option(pattern=r"[a-z]{1,16}", help="the job universe", default="vanilla")
    request_memory: str | None = option(
        "request_memory = {}", pattern=_SIZE, help='e.g. "2 GB" or "2048" (MB)'
    )
    request_cpus: int | None = option("request_cpus = {}", pattern="int", help="request_cpus")
    request_disk: str | None = option(
        "request_disk = {}", pattern=r"[0-9]{1,12}(\.[0-9]{1,3})? ?([KMGTkmgt]i?[Bb]?)?", help="request_disk"
    )
    max_idle: int | None = option("max_idle = {}", pattern="int", help="submit-side throttle (max_idle)")
    max_materialize: int | None = option(
        "max_materialize = {}", pattern="int", help="late materialisation: at most N jobs in the queue"
    )
    accounting_group: str | None = option(
        "accounting_group = {}", pattern=NAME_PATTERN, help="accounting_group"
    )


# -- pure functions -----------------------------------------------------------------------------


def render_submit_description(
    manifest: Path, options: HTCondorOptions, *, batch_name: str, log_dir: Path
) -> str:
    """One submit description queueing one job per manifest line; each runs its workdir's ``run.sh``."""
    log_dir_text = safe_path(log_dir, "log directory")
    lines = [
        f"universe = {options.universe}",
        "executable = /bin/bash",
        f"arguments = $(workdir)/{WRAPPER_FILE}",
        "initialdir = $(workdir)",
        "transfer_executable = false",
        "should_transfer_files = IF_NEEDED",
        f"output = {log_dir_text}/condor-$(ClusterId).$(ProcId).out",
        f"error = {log_dir_text}/condor-$(ClusterId).$(ProcId).err",
        f"log = {log_dir_text}/condor.log",
        f"batch_name = {safe_job_name(batch_name)}",
    ]
    lines.extend(options.directives())
    lines.extend(options.extra_lines)
    lines.append(f"queue workdir from {safe_path(manifest, 'manifest')}")
    return "\n".join(lines) + "\n"


def parse_condor_submit_terse(text: str) -> list[str]:
    """Job ids from ``condor_submit -terse`` (``123.0 - 123.4``, one line per cluster)."""
    ids: list[str] = []
    for line in text.splitlines():
        m = re.fullmatch(r"\s*(\d+)\.(\d+)\s*-\s*(\d+)\.(\d+)\s*", line)
        if not m:
            continue
        first_cluster, first, last_cluster, last = (int(g) for g in m.groups())
        if first_cluster != last_cluster:
            raise BackendError(f"condor_submit printed a range over two clusters: {line.strip()!r}")
        ids.extend(f"{first_cluster}.{proc}" for proc in range(first, last + 1))
    if not ids:
        raise BackendError(f"condor_submit -terse printed no job ids: {text.strip()!r}")
    return ids


def parse_condor_json(text: str) -> dict[str, dict[str, object]]:
    """Job ads from ``condor_q -json`` / ``condor_history -json`` keyed ``<cluster>.<proc>``.

    Both print nothing at all (not ``[]``) when no job matches.
    """
    if not text.strip():
        return {}
    try:
        ads = json.loads(text)
    except ValueError as exc:
        raise BackendError(f"cannot read HTCondor's JSON output ({exc}): {text[:200]!r}") from None
    if not isinstance(ads, list):
        raise BackendError(f"HTCondor's JSON output is not a list of job ads: {text[:200]!r}")
    return {f"{ad['ClusterId']}.{ad['ProcId']}": ad for ad in ads if "ClusterId" in ad and "ProcId" in ad}


def _whole(value: object) -> int:
    """A job ad's number (JSON gives ints; a string or float from an old schedd is taken too)."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise TypeError(f"not a number: {value!r}")
    return int(value)


def condor_status(job_id: str, ad: Mapping[str, object]) -> JobStatus:
    """A job ad as a ``JobStatus``; an unknown ``JobStatus`` number raises ``BackendError``."""
    native = ad.get("JobStatus")
    try:
        state = CONDOR_STATES[_whole(native)]
    except (KeyError, TypeError, ValueError):
        raise BackendError(
            f"HTCondor reported JobStatus {native!r} for job {job_id}, which b2cal does not know; "
            "add it to CONDOR_STATES in b2cal_assets/backends/htcondor.py"
        ) from None
    if state == JobState.HELD:
        reason = ad.get("HoldReason") or ("suspended" if native == 7 else "held")
        return JobStatus(JobState.HELD, None, str(reason))
    if state == JobState.CANCELLED:
        return JobStatus(JobState.CANCELLED, None, str(ad.get("RemoveReason") or "removed"))
    if state != JobState.DONE:
        return JobStatus(state)
    if ad.get("ExitBySignal"):
        sig = _whole(ad.get("ExitSignal") or 0)
        return JobStatus(JobState.FAILED, 128 + sig, f"killed by signal {sig}")
    code = _whole(ad.get("ExitCode") or 0)
    if code == 0:
        return JobStatus(JobState.DONE, 0)
    return JobStatus(JobState.FAILED, code, f"exit code {code}")


# -- the backend --------------------------------------------------------------------------------


@dataclass
class HTCondorBackend(ArrayBackend[HTCondorOptions]):
    """Submit jobs to HTCondor as one cluster per group, poll with ``condor_q`` then ``condor_history``."""

    options: HTCondorOptions = field(default_factory=HTCondorOptions)
    runner: CommandRunner = field(default_factory=SubprocessRunner)
    files: JobFiles = field(default_factory=LocalFiles)
    submit_dir: Path | None = setting(help=SUBMIT_DIR_HELP)
    name: str = "htcondor"
    label: ClassVar[str] = "HTCondor"

    def check_job(self, spec: JobSpec) -> None:
        _check_queue_path(spec)

    def submit_array(
        self, specs: Sequence[JobSpec], options: HTCondorOptions, manifest: Path, submission_dir: Path
    ) -> list[str]:
        description = submission_dir / "job.sub"
        self.files.write(
            description,
            render_submit_description(manifest, options, batch_name=specs[0].name, log_dir=submission_dir),
        )
        result = run_checked(self.runner, ["condor_submit", "-terse", str(description)])
        ids = parse_condor_submit_terse(result.stdout)
        if len(ids) != len(specs):
            raise BackendError(
                f"condor_submit queued {len(ids)} jobs for {len(specs)} work directories ({description})"
            )
        return ids

    def poll(self, handles: Sequence[JobHandle]) -> dict[str, JobStatus]:
        if not handles:
            return {}
        wanted = [h.job_id for h in handles]
        clusters = list(dict.fromkeys(j.partition(".")[0] for j in wanted))
        result = run_checked(self.runner, ["condor_q", "-json", "-attributes", QUERY_ATTRIBUTES, *clusters])
        ads = parse_condor_json(result.stdout)
        missing = [j for j in wanted if j not in ads]
        if missing:
            missing_clusters = list(dict.fromkeys(j.partition(".")[0] for j in missing))
            # No -match N: a cluster's other procs (finished earlier) are in the history too, and
            # -match would stop at them before reaching the ones asked for.
            history = self.runner(
                ["condor_history", "-json", "-attributes", QUERY_ATTRIBUTES, *missing_clusters]
            )
            if history.returncode != 0:
                raise BackendError(describe_failure(history))
            ads.update(parse_condor_json(history.stdout))
        return {j: condor_status(j, ads[j]) for j in wanted if j in ads}

    def cancel_argv(self, job_ids: Iterable[str]) -> list[str]:
        return ["condor_rm", *job_ids]

    def already_gone(self, result: CommandResult) -> bool:
        return _only_already_gone(result.stderr + result.stdout)


def _check_queue_path(spec: JobSpec) -> None:
    """``queue ... from`` splits items on spaces and commas, so a workdir must not contain them."""
    text = str(Path(spec.workdir).absolute())
    if re.search(r"[\s,]", text):
        raise BackendError(
            f"job {spec.name}: HTCondor cannot queue work directory {text!r} (it contains a space or comma); "
            "choose a work area without spaces or commas"
        )


def _only_already_gone(output: str) -> bool:
    lines = [line for line in output.splitlines() if line.strip()]
    if not lines:
        return False
    ok = ("not found", "already", "marked for removal", "Couldn't find")
    return all(any(g in line for g in ok) for line in lines)
