"""Running an attempt with the experiment's framework: one ``b2caf-prompt-run`` job on the site's backend.

The attempt's work directory gets the framework's inputs: ``caf_config.json`` (``caf_script``,
``database_chain`` = the global tags, ``testing_payloads`` = upstream outputdbs not yet in a tag,
``backend_args``, ``requested_iov``, ``expert_config``) and ``input_data.json`` (each run's files
linked under a directory of its own). ONE job runs the site's setup commands and ``b2caf-prompt-run
<Backend> caf_config.json input_data.json --heartbeat N [--max-subjobs N | --max-files-per-subjob N]
--overwrite-working-dir``; the framework's CAF then submits the collectors itself. Its progress
(``calibration_results/<calibration>/<iteration>``) is reported while it runs; afterwards each
``caf_outputdb_results/<calibration>/database.txt`` and its payload files are merged into the
attempt's ``outputdb/``. A job that exits 0 without an outputdb is a failure, not an empty success.
"""

from __future__ import annotations

import json
import shlex
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from b2cal_assets.backends.base import BatchBackend, JobSpec, JobState, describe_exit
from b2cal_assets.backends.manager import JobManager, Progress, RetryPolicy, SubmitPolicy
from b2cal_assets.backends.wrapper import EXIT_CODE_FILE, log_tail, read_exit_code
from b2cal_assets.caf.localdb import StoredPayload
from b2cal_assets.caf.payload_io import md5sum
from b2cal_assets.caf.runner import CalibrationFailed, CalibrationJob, CalibrationOutcome, SubjobRecord
from b2cal_assets.domain.iov import IoV
from b2cal_assets.domain.outputdb import (
    DATABASE_TXT,
    PayloadEntry,
    format_database_txt,
    parse_database_txt,
    payload_filename,
)
from b2cal_assets.domain.prompt_inputs import CafConfig, caf_config_document, input_data_document
from b2cal_assets.domain.site_runner import FRAMEWORK_BACKENDS, FrameworkSettings

__all__ = ["FRAMEWORK_BACKENDS", "FrameworkRunner", "framework_argv", "run_framework_job"]

WORKING_DIR = "calibration_results"
OUTPUTDB_RESULTS = "caf_outputdb_results"
FRAMEWORK_JOB = "b2caf-prompt-run"  # the one job's name in the attempt's job records
JOB_STATE = "framework_job.json"  # the one job's handle: a resumed run re-attaches to it


@dataclass(frozen=True)
class FrameworkRunner:
    """How a site runs the framework: its backend name, setup commands, the tool, the heartbeat."""

    backend: str = "Local"
    setup_commands: tuple[str, ...] = ()
    command: str = "b2caf-prompt-run"
    heartbeat_s: int = 60
    globaltags_root: Path | None = None  # outputdbs below it are global tags (by folder name)

    def __post_init__(self) -> None:
        if self.backend not in FRAMEWORK_BACKENDS:
            raise ValueError(
                f"framework backend {self.backend!r} is not one of b2caf-prompt-run's {', '.join(FRAMEWORK_BACKENDS)}"
            )
        if self.heartbeat_s < 1:
            raise ValueError(f"heartbeat must be at least 1 s, got {self.heartbeat_s}")

    @classmethod
    def of_site(cls, settings: FrameworkSettings, globaltags_root: Path) -> FrameworkRunner:
        """The runner of a site with ``runner: framework`` (``domain/site_runner.py``)."""
        return cls(settings.backend, settings.setup, heartbeat_s=settings.heartbeat_s, globaltags_root=globaltags_root)


def _stage_inputs(job: CalibrationJob, root: Path) -> dict[str, list[tuple[str, tuple[int, int]]]]:
    """Each run's files linked under ``root/<data name>/e<exp>_r<run>/`` (the framework globs them)."""
    layout: dict[str, list[tuple[str, tuple[int, int]]]] = {}
    for name, files in sorted(job.input_data.items()):
        runs: dict[tuple[int, int], Path] = {}
        for index, (path, iov) in enumerate(sorted(files.items(), key=lambda item: (tuple(item[1]), item[0]))):
            if "://" in path:
                raise CalibrationFailed(f"the framework runner needs local input files; {path} is a URL")
            exp_run = (int(iov[0]), int(iov[1]))
            folder = runs.setdefault(exp_run, root / name / f"e{exp_run[0]:04d}_r{exp_run[1]:05d}")
            folder.mkdir(parents=True, exist_ok=True)
            link = folder / f"{index:05d}_{Path(path).name}"
            if not link.exists():
                link.symlink_to(Path(path).resolve())
        layout[name] = [(str(folder), exp_run) for exp_run, folder in sorted(runs.items())]
    return layout


def _chain(job: CalibrationJob, runner: FrameworkRunner) -> tuple[list[str], list[str]]:
    tags, testing = [], []
    for entry in job.database_chain:
        folder = Path(entry).resolve()
        if runner.globaltags_root is not None and folder.parent == Path(runner.globaltags_root).resolve():
            tags.append(folder.name)
        else:
            testing.append(str(folder / DATABASE_TXT))
    return tags, testing


def framework_argv(job: CalibrationJob, runner: FrameworkRunner) -> list[str]:
    """``b2caf-prompt-run`` with the options of the job, after the site's setup commands."""
    tool = [runner.command, runner.backend, "caf_config.json", "input_data.json", "--heartbeat", str(runner.heartbeat_s)]
    if job.max_collector_jobs is not None:
        tool += ["--max-subjobs", str(job.max_collector_jobs)]
    elif job.max_files_per_collector_job is not None:
        tool += ["--max-files-per-subjob", str(job.max_files_per_collector_job)]
    tool.append("--overwrite-working-dir")
    # a setup command that fails stops the job: the tool of some other release must not run instead
    script = " && ".join([*runner.setup_commands, "exec " + " ".join(shlex.quote(a) for a in tool)])
    return ["bash", "-c", script]


def _progress_of(run_dir: Path) -> str:
    """The framework's progress: the iterations started per calibration in ``calibration_results/``."""
    results = run_dir / WORKING_DIR
    if not results.is_dir():
        return ""
    parts = []
    for calibration in sorted(p for p in results.iterdir() if p.is_dir() and p.name != "outputdb"):
        iterations = [int(p.name) for p in calibration.iterdir() if p.is_dir() and p.name.isdigit()]
        if iterations:
            parts.append(f"{calibration.name}: iteration {max(iterations)}")
    return ", ".join(parts)


def _collect(run_dir: Path, outputdb: Path) -> tuple[list[StoredPayload], dict[str, list[StoredPayload]]]:
    results = run_dir / OUTPUTDB_RESULTS
    databases = sorted(results.glob(f"*/{DATABASE_TXT}")) if results.is_dir() else []
    if not databases:
        raise CalibrationFailed(
            f"b2caf-prompt-run exited 0 but left no {OUTPUTDB_RESULTS}/<calibration>/{DATABASE_TXT} in {run_dir}"
        )
    if outputdb.exists():
        shutil.rmtree(outputdb)
    outputdb.mkdir(parents=True)
    all_payloads: list[StoredPayload] = []
    by_calibration: dict[str, list[StoredPayload]] = {}
    taken: dict[tuple[str, int], str] = {}
    for database in databases:
        calibration = database.parent.name
        try:
            entries = parse_database_txt(database.read_text())
        except ValueError as exc:
            raise CalibrationFailed(f"{database}: {exc}") from None
        stored = []
        for entry in entries:
            source = database.parent / payload_filename(entry.name, entry.revision)
            if not source.is_file():
                raise CalibrationFailed(f"{database} lists {entry.name} rev {entry.revision}, but {source.name} is missing")
            if (key := (entry.name, entry.revision)) in taken:
                raise CalibrationFailed(
                    f"{entry.name} rev {entry.revision} comes from both {taken[key]} and {calibration}"
                )
            taken[key] = calibration
            target = outputdb / source.name
            shutil.copy2(source, target)
            stored.append(StoredPayload(entry.name, entry.revision, IoV(*entry.iov), target, md5sum(target)))
        by_calibration[calibration] = stored
        all_payloads.extend(stored)
    (outputdb / DATABASE_TXT).write_text(
        format_database_txt(PayloadEntry(p.name, p.revision, p.iov) for p in all_payloads)
    )
    return all_payloads, by_calibration


def _live_job_saved(state_file: Path) -> bool:
    try:
        jobs = json.loads(state_file.read_text()).get("jobs", {})
    except (OSError, ValueError, AttributeError):
        return False
    return any(isinstance(j, dict) and j.get("job_id") for j in jobs.values())


def run_framework_job(
    job: CalibrationJob,
    backend: BatchBackend,
    runner: FrameworkRunner,
    *,
    submit_policy: SubmitPolicy | None = None,
    progress: Callable[[dict[str, Any]], None] | None = None,
    should_cancel: Callable[[], bool] | None = None,
) -> CalibrationOutcome:
    """Run ``job`` as one ``b2caf-prompt-run`` job on ``backend``; raises ``CalibrationFailed`` with the log tail."""
    workdir = Path(job.workdir).resolve()
    run_dir = workdir / "framework"
    run_dir.mkdir(parents=True, exist_ok=True)
    tags, testing = _chain(job, runner)
    config = CafConfig(
        caf_script=Path(job.script_file).name,
        database_chain=tuple(tags),
        requested_iov=IoV(*job.requested_iov),
        backend_args=dict(job.backend_args),
        expert_config=dict(job.expert_config),
        testing_payloads=tuple(testing),
    )
    (run_dir / "caf_config.json").write_text(json.dumps(caf_config_document(config), indent=2))
    layout = _stage_inputs(job, run_dir / "input_data")
    (run_dir / "input_data.json").write_text(json.dumps(input_data_document(layout), indent=2))
    env = {**job.env}
    if job.calibrations_dir is not None:
        env.setdefault("B2CAL_CALIBRATIONS_DIR", str(Path(job.calibrations_dir).resolve()))
    spec = JobSpec(
        name=f"{job.calibration_script_name}.framework",
        argv=tuple(framework_argv(job, runner)),
        workdir=run_dir,
        env=env,
        backend_args=dict(job.backend_args),
    )
    last = [""]

    def report(jobs: Progress) -> None:
        state = _progress_of(run_dir)
        if progress is not None and state != last[0]:
            last[0] = state
            progress({"phase": "framework", "calibration": job.calibration_script_name, "iteration": None,
                      "message": f"the framework's CAF: {state}", "jobs": jobs})

    state_file = run_dir / JOB_STATE
    if read_exit_code(run_dir) != 0 and not _live_job_saved(state_file):
        # a fresh job: an outputdb left by an earlier one must not pass for its output (nor stop the tool)
        shutil.rmtree(run_dir / OUTPUTDB_RESULTS, ignore_errors=True)
    # a run resumed after an interruption re-attaches to the job, or takes the output of a job that ended 0
    manager = JobManager(backend, submit_policy, RetryPolicy(max_retries=0), state_file=state_file)
    (result,) = manager.run([spec], on_progress=report, should_cancel=should_cancel)
    ran = [
        SubjobRecord(
            Path(job.script_file).stem,
            0,
            FRAMEWORK_JOB,
            result.state.value,
            result.exit_code,
            run_dir,
            started_at=result.started_at,
            finished_at=result.finished_at,
        )
    ]
    if result.state != JobState.DONE or result.exit_code != 0:
        raise CalibrationFailed(
            f"{job.calibration_script_name}: b2caf-prompt-run ended {result.state.value} with "
            f"{describe_exit(result.exit_code, result.reason)}\n{log_tail(run_dir)}",
            calibration=job.calibration_script_name,
            subjob=spec.name,
            exit_code=result.exit_code,
            log_tail=log_tail(run_dir),
            subjobs=ran,
        )
    try:
        payloads, by_calibration = _collect(run_dir, workdir / "outputdb")
    except CalibrationFailed as exc:
        (run_dir / EXIT_CODE_FILE).unlink(missing_ok=True)  # a restart runs the job again
        exc.subjobs = ran
        raise
    iterations = {}
    for calibration in by_calibration:
        folder = run_dir / WORKING_DIR / calibration
        numbers = [int(p.name) for p in folder.iterdir() if p.is_dir() and p.name.isdigit()] if folder.is_dir() else []
        iterations[calibration] = max(numbers) + 1 if numbers else 1
    return CalibrationOutcome(workdir / "outputdb", payloads, iterations, ran, by_calibration)

