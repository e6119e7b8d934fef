"""cDST production as batch jobs at the processing's site, through the job manager.

One job per run and data tag, or per chunk of a run's raw files (``files_per_job``), each running
``python -m b2cal_assets.caf.cdst_job`` with the signed-off upstream payloads as its conditions. The
manager chunks the submissions, keeps the job limit, retries a failed job after the site's delay and
tolerates failed status queries, as for collector subjobs. A job's cDST files are handed to
``on_output`` (the caller registers them) in the cycle the job is seen done, not at the end. Under
``workdir``::

    <tag>/e<exp>_r<run>/<i>/   one job: spec.json, run.sh, stdout, stderr, exit_code, cdst_outputs.json
                               and cdst/ (the files, left at the site)
    jobs.json                  the job manager's state: a restarted step re-attaches to live jobs

A job whose outputs file lists only registered cDSTs is not run again: a restarted step resumes.
"""

from __future__ import annotations

import importlib.util
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from b2cal_assets.backends.base import BatchBackend, JobSpec, JobState
from b2cal_assets.backends.manager import JobManager, JobResult, RetryPolicy, SubmitPolicy
from b2cal_assets.backends.wrapper import log_tail
from b2cal_assets.caf.cdst_job import (
    CDST_OUT_DIR,
    CDST_OUTPUTS_FILE,
    CdstJobSpec,
    CdstOutput,
    load_producer,
    read_outputs,
)
from b2cal_assets.files import atomic_write_text

__all__ = [
    "CdstFailed",
    "CdstOutcome",
    "CdstProduction",
    "CdstRun",
    "check_producer",
    "planned_jobs",
    "producer_root",
    "run_cdst_jobs",
]

SPEC_FILE = "spec.json"
JOBS_STATE_FILE = "jobs.json"
STEP_NAME = "cdst"  # how its jobs are named in the calibration database (``b2cal status --jobs``)


@dataclass(frozen=True)
class CdstRun:
    """The raw files of one run and data tag, as the site's jobs open them."""

    data_tag: str
    exp: int
    run: int
    files: tuple[str, ...]


@dataclass(frozen=True)
class CdstProduction:
    """The cDST step of one processing: what to reconstruct, with which producer and conditions."""

    producer: str
    runs: Sequence[CdstRun]
    conditions_chain: Sequence[Path]
    workdir: Path
    files_per_job: int | None = None  # None or 0: a run's files in one job
    env: Mapping[str, str] = field(default_factory=dict)
    backend_args: Mapping[str, object] = field(default_factory=dict)
    registered: frozenset[str] = frozenset()  # cDST paths already catalogued


@dataclass(frozen=True)
class _Planned:
    name: str
    workdir: Path
    part: CdstRun


@dataclass
class CdstOutcome:
    outputs: list[CdstOutput]
    skipped: int  # jobs whose cDSTs were registered before
    jobs: list[dict[str, Any]]  # for ``record_subjobs``


class CdstFailed(RuntimeError):
    """A cDST job failed for good; the message names it, its exit code and its log tail."""

    def __init__(
        self, message: str, *, job: str, exit_code: int | None, log_tail: str, jobs: list[dict[str, Any]]
    ) -> None:
        super().__init__(message)
        self.job = job
        self.exit_code = exit_code
        self.log_tail = log_tail
        self.jobs = jobs


def planned_jobs(production: CdstProduction) -> list[_Planned]:
    """One job per run and data tag, or per ``files_per_job`` of its files; never across runs."""
    size = production.files_per_job or 0
    planned = []
    for part in sorted(production.runs, key=lambda r: (r.data_tag, r.exp, r.run)):
        files = sorted(part.files)
        chunks = [files[i : i + size] for i in range(0, len(files), size)] if size > 0 else [files]
        for i, chunk in enumerate(chunks):
            planned.append(
                _Planned(
                    name=f"{STEP_NAME}.{part.data_tag}.e{part.exp}.r{part.run}.{i}",
                    workdir=production.workdir / part.data_tag / f"e{part.exp:04d}_r{part.run:05d}" / str(i),
                    part=CdstRun(part.data_tag, part.exp, part.run, tuple(chunk)),
                )
            )
    return planned


def producer_root(reference: str) -> Path | None:
    """The directory of the producer's top-level package (or module), which its jobs get on their
    ``PYTHONPATH`` and a remote site a copy of; ``None`` for b2cal's own producers (every job has b2cal)
    and for one not importable here or installed (the site must have it)."""
    top = reference.partition(":")[0].split(".")[0]
    if top == "b2cal_assets":
        return None
    try:
        spec = importlib.util.find_spec(top)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.origin or spec.origin in ("built-in", "frozen"):
        return None
    origin = Path(spec.origin)
    root = origin.parent if spec.submodule_search_locations else origin
    if {"site-packages", "dist-packages"} & set(root.parts):
        return None
    return root


def check_producer(reference: str) -> None:
    """Refuse, before any job is submitted, a producer reference that cannot work: not ``module:function``,
    or a module importable here without that function. One not importable here may be the site's own."""
    module_name = reference.partition(":")[0]
    if not module_name or not all(part.isidentifier() for part in module_name.split(".")):
        raise ValueError(
            f"B2CAL_CDST_PRODUCER={reference!r} is not module:function (e.g. my_detector.cdst:produce_cdst)"
        )
    try:
        found = importlib.util.find_spec(module_name) is not None
    except (ImportError, ValueError):
        found = False
    if found:
        try:
            producer = load_producer(reference)
        except (ImportError, AttributeError) as exc:
            raise ValueError(f"B2CAL_CDST_PRODUCER={reference!r} cannot be loaded: {exc}") from None
        if not callable(producer):
            raise ValueError(f"B2CAL_CDST_PRODUCER={reference!r} is not a function")


def run_cdst_jobs(
    production: CdstProduction,
    backend: BatchBackend,
    *,
    on_output: Callable[[CdstOutput], None],
    submit_policy: SubmitPolicy | None = None,
    retry_policy: RetryPolicy | None = None,
    progress: Callable[[str], None] | None = None,
    should_cancel: Callable[[], bool] | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> CdstOutcome:
    """Run the step's jobs; ``on_output`` hears each cDST file as its job is done. Raises ``CdstFailed``."""
    say = progress or (lambda _message: None)
    check_producer(production.producer)
    todo, skipped = [], 0
    for job in planned_jobs(production):
        if _registered(job.workdir, production.registered):
            skipped += 1
        else:
            todo.append(job)
    if skipped:
        say(f"{skipped} cDST job(s) skipped: their files are registered")
    specs = [_job_spec(production, backend, job) for job in todo]
    outputs: list[CdstOutput] = []
    broken: list[tuple[JobResult, str]] = []

    def done(result: JobResult) -> None:
        try:
            made = read_outputs(Path(result.spec.workdir) / CDST_OUTPUTS_FILE)
        except ValueError as exc:
            broken.append((result, str(exc)))
            return
        for output in made:
            on_output(output)
            outputs.append(output)
        say(f"{result.spec.name} done: {len(made)} cDST file(s)")

    manager = JobManager(
        backend,
        submit=submit_policy,
        retry=retry_policy,
        clock=clock,
        sleep=sleep,
        state_file=production.workdir / JOBS_STATE_FILE,
    )
    say(f"{len(specs)} cDST job(s) on {backend.name}")
    results = manager.run(
        specs,
        on_progress=lambda p: say(f"cDST jobs: {p}"),
        should_cancel=should_cancel,
        on_warning=say,
        on_done=done,
    )
    jobs = [_record(r) for r in results]
    failed = [(r, r.reason or "no reason given") for r in results if r.state != JobState.DONE]
    for problem in (failed, broken):
        if problem:
            r, reason = problem[0]
            tail = log_tail(r.spec.workdir)
            raise CdstFailed(
                f"cDST job {r.spec.name} failed with exit code {r.exit_code} ({reason}) after {r.tries} "
                f"try(ies); {len(failed) + len(broken)} of {len(results)} cDST job(s) failed, "
                f"{len(outputs)} cDST file(s) registered. Logs in {r.spec.workdir}\n{tail}",
                job=r.spec.name,
                exit_code=r.exit_code,
                log_tail=tail,
                jobs=jobs,
            )
    return CdstOutcome(outputs, skipped, jobs)


def _registered(workdir: Path, registered: frozenset[str]) -> bool:
    try:
        made = read_outputs(workdir / CDST_OUTPUTS_FILE)
    except ValueError:
        return False
    return bool(made) and all(o.path in registered for o in made)


def _job_spec(production: CdstProduction, backend: BatchBackend, job: _Planned) -> JobSpec:
    """The job's spec file written, and its ``JobSpec`` with the paths as the job sees them."""
    at = backend.job_path
    job.workdir.mkdir(parents=True, exist_ok=True)
    spec_path = job.workdir / SPEC_FILE
    chain = list(production.conditions_chain)
    spec = CdstJobSpec(
        producer=production.producer,
        data_tag=job.part.data_tag,
        exp=job.part.exp,
        run=job.part.run,
        files=list(job.part.files),
        conditions_chain=[Path(at(p)) for p in chain],
        out_dir=Path(at(job.workdir / CDST_OUT_DIR)),
        outputs=Path(at(job.workdir / CDST_OUTPUTS_FILE)),
    )
    atomic_write_text(spec_path, spec.to_json())
    env = dict(production.env)
    inputs: list[Path] = [*chain, spec_path]
    root = producer_root(production.producer)
    if root is not None:
        inputs.append(root)
        paths = [at(root.parent)]
        if at(root.parent) == str(root.parent.absolute()):  # jobs on this machine: keep its own path
            paths.append(os.environ.get("PYTHONPATH", ""))
        env["PYTHONPATH"] = ":".join(p for p in (*paths, env.get("PYTHONPATH", "")) if p)
    return JobSpec(
        name=job.name,
        argv=(backend.job_python(), "-m", "b2cal_assets.caf.cdst_job", at(spec_path)),
        workdir=job.workdir,
        env=env,
        backend_args=dict(production.backend_args),
        inputs=tuple(inputs),
    )


def _record(r: JobResult) -> dict[str, Any]:
    return {
        "calibration": STEP_NAME,
        "iteration": 0,
        "name": r.spec.name,
        "state": r.state.value,
        "exit_code": r.exit_code,
        "tries": r.tries,
        "workdir": str(r.spec.workdir),
    }
