"""Validation as ONE batch job at the processing's site, the framework's way (``b2val-prompt-run``).

The job runs in a directory of its own with the framework's ``validation_config.json`` there:
``python -m b2cal_assets.caf.val_prompt_run Local validation_config.json <input_data> --overwrite-working-dir
--calibrations-dir D`` for the project's own runner, or, at a site with ``runner: framework``, the
site's setup commands and ``b2val-prompt-run <Backend> validation_config.json <input_data>
--overwrite-working-dir``. Afterwards it packs ``validation_results/`` into ONE file,
``validation_results.tar.gz``, which a remote site's backend fetches back with the job's logs (it
fetches the files at the top of a job's directory). The results are then copied atomically to the
payload store (``<attempt>/validation_run/``), where the checks, the calibration page and the ticket
find the plots. A job that leaves no results is a ``ValidationJobFailed`` with the job's log tail; a
site that cannot be reached is the backend's ``BackendError``, named by the site.

The job manager keeps its state in ``jobs.json`` in the job's directory: a check run that was killed
while its job ran at the site leaves it there, and the next run over the same validation adopts that
job (still running or finished) instead of submitting another. ``record`` hears the job's row for the
calibration database (``b2cal status --jobs``) when it is submitted and when it ends.
"""

from __future__ import annotations

import json
import shlex
import shutil
import tarfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from b2cal_assets.archives import extract_data
from b2cal_assets.backends.base import BackendError, BatchBackend, JobSpec, JobState
from b2cal_assets.backends.manager import JobManager, JobResult, JobsCancelled, RetryPolicy, SubmitPolicy
from b2cal_assets.backends.wrapper import log_tail
from b2cal_assets.caf.scripts import ValidationScript
from b2cal_assets.caf.shim import validations_dir_of
from b2cal_assets.caf.val_prompt_run import WORKING_DIR
from b2cal_assets.caf.validation_job import LOG_FILE, PLOT_SUFFIXES, RESULT_FILE, ValidationRun
from b2cal_assets.domain.expert_config import merge_expert_config
from b2cal_assets.domain.iov import IoV
from b2cal_assets.domain.site_runner import RunnerKind
from b2cal_assets.files import atomic_copytree

__all__ = [
    "CONFIG_FILE",
    "JOBS_STATE_FILE",
    "RESULTS_TAR",
    "ValidationJobFailed",
    "ValidationJobs",
    "validation_job_spec",
]

CONFIG_FILE = "validation_config.json"
RESULTS_TAR = "validation_results.tar.gz"
JOBS_STATE_FILE = "jobs.json"  # the job manager's state: a killed check run's job is adopted, not resubmitted
FRAMEWORK_TOOL = "b2val-prompt-run"


class ValidationJobFailed(RuntimeError):
    """The validation job ended without results (it crashed, the setup failed, the script was not found)."""

    def __init__(self, message: str, log_tail: str = "") -> None:
        super().__init__(f"{message}\n{log_tail}" if log_tail else message)
        self.log_tail = log_tail


@dataclass(frozen=True)
class ValidationJobs:
    """How a site runs validation jobs: its backend and, with ``runner: framework``, the setup commands
    and the framework's backend name inside the job."""

    backend: BatchBackend
    site: str = ""
    runner: RunnerKind = RunnerKind.B2CAL
    framework_setup: tuple[str, ...] = ()
    framework_backend: str = "Local"
    backend_args: Mapping[str, object] = field(default_factory=dict)
    submit_policy: SubmitPolicy | None = None
    should_cancel: Callable[[], bool] | None = None
    log: Callable[[str], None] | None = None  # hears the job's command line (the run log)

    def run(
        self,
        validation: ValidationScript,
        *,
        job_path: Path,
        requested_iov: IoV | tuple[int, int, int, int],
        expert_config: Mapping[str, Any] | None,
        workdir: Path,
        results_dir: Path,
        record: Callable[[dict[str, Any]], None] | None = None,
    ) -> ValidationRun:
        """Run ``validation`` over the finished job ``job_path`` as one job in ``workdir``; its
        ``validation_results/`` end up in ``results_dir`` (replaced as a whole). ``record`` hears the
        job's row (name, state, exit code, tries, work directory, the site's job id)."""
        workdir = Path(workdir).absolute()
        state_file = workdir / JOBS_STATE_FILE
        interrupted = _config_of(workdir) if state_file.is_file() else None
        if interrupted is None:
            _fresh(workdir)  # each check runs the validation afresh
        spec = self._spec(validation, job_path, requested_iov, expert_config, workdir)
        if interrupted is not None and _config_of(workdir) != interrupted:
            _fresh(workdir)  # the killed run's job was of other settings: not that one's results
            spec = self._spec(validation, job_path, requested_iov, expert_config, workdir)
        if self.log is not None:
            adopted = " (the job of an interrupted run, adopted)" if interrupted is not None else ""
            self.log(
                f"{validation.name}: the validation runs as one {self.backend.name} job{self._at()}{adopted}: "
                f"{spec.argv[-1]}"
            )
        manager = JobManager(self.backend, self.submit_policy, RetryPolicy(max_retries=0), state_file=state_file)
        hear = record or (lambda _row: None)
        hear(_row(JobResult(spec, None, JobState.PENDING, None, 0)))
        try:
            (result,) = manager.run([spec], should_cancel=self.should_cancel, on_done=lambda r: hear(_row(r)))
        except JobsCancelled as exc:
            hear({"name": spec.name, "state": JobState.CANCELLED.value, "workdir": str(workdir)})
            if isinstance(exc.__cause__, BackendError):
                raise exc.__cause__ from None  # the site's own words: unreachable, disk full, ...
            raise
        if result.state != JobState.DONE:
            hear(_row(result))
        try:
            return self._results(validation, result, workdir, Path(results_dir))
        finally:
            state_file.unlink(missing_ok=True)  # this job's results are used: the next check runs afresh

    def _spec(
        self,
        validation: ValidationScript,
        job_path: Path,
        requested_iov: IoV | tuple[int, int, int, int],
        expert_config: Mapping[str, Any] | None,
        workdir: Path,
    ) -> JobSpec:
        return validation_job_spec(
            validation,
            backend=self.backend,
            job_path=job_path,
            requested_iov=requested_iov,
            expert_config=expert_config,
            workdir=workdir,
            runner=self.runner,
            framework_setup=self.framework_setup,
            framework_backend=self.framework_backend,
            backend_args=self.backend_args,
        )

    def _results(
        self, validation: ValidationScript, result: JobResult, workdir: Path, results_dir: Path
    ) -> ValidationRun:
        """The job's tarball unpacked into ``results_dir``; ``ValidationJobFailed`` when it left none."""
        tarball = workdir / RESULTS_TAR
        if not tarball.is_file():
            ended = f"ended {result.state.value} with exit code {result.exit_code}"
            if result.reason and result.state != JobState.DONE:
                ended += f" ({result.reason})"
            raise ValidationJobFailed(
                f"the validation job of {validation.name}{self._at()} {ended} and left no {WORKING_DIR}/",
                log_tail(workdir),
            )
        unpacked = workdir / "fetched"
        try:
            with tarfile.open(tarball) as archive:
                extract_data(archive, unpacked)
        except (tarfile.TarError, OSError) as exc:
            raise ValidationJobFailed(f"{tarball} cannot be unpacked: {exc}", log_tail(workdir)) from None
        source = unpacked / WORKING_DIR
        if not source.is_dir():
            raise ValidationJobFailed(f"{tarball} holds no {WORKING_DIR}/", log_tail(workdir))
        atomic_copytree(source, results_dir)
        return _run_of(result.exit_code if result.exit_code is not None else 1, Path(results_dir))

    def _at(self) -> str:
        return f" at site {self.site}" if self.site else ""


def validation_job_spec(
    validation: ValidationScript,
    *,
    backend: BatchBackend,
    job_path: Path,
    requested_iov: IoV | tuple[int, int, int, int],
    expert_config: Mapping[str, Any] | None,
    workdir: Path,
    runner: RunnerKind = RunnerKind.B2CAL,
    framework_setup: tuple[str, ...] = (),
    framework_backend: str = "Local",
    backend_args: Mapping[str, object] | None = None,
) -> JobSpec:
    """The one job (its ``validation_config.json`` written into ``workdir``); paths as the job sees them."""
    at = backend.job_path
    job_path = Path(job_path).absolute()
    input_data = at(job_path / "input_data.json")
    config = {
        "validation_script": validation.file.name,
        "job_path": at(job_path),
        "input_data_path": input_data,
        "download_files": list(validation.settings.download_files),
        "backend_args": dict(backend_args or {}),
        "requested_iov": list(IoV(*requested_iov)),
        # checked here: a wrong key is the submission's fault, said before a job is submitted
        "expert_config": merge_expert_config(validation.settings.expert_config, expert_config),
    }
    (Path(workdir) / CONFIG_FILE).write_text(json.dumps(config, indent=2))
    calibrations_dir = Path(validation.namespace.calibrations_dir).absolute()
    validations_dir = validations_dir_of(calibrations_dir)
    env = {"MPLBACKEND": "Agg"}
    if runner == RunnerKind.FRAMEWORK:
        # the framework finds the script in its release; the tests' stand-in in $B2CAL_CALIBRATIONS_DIR
        env["B2CAL_CALIBRATIONS_DIR"] = at(calibrations_dir)
        tool = [FRAMEWORK_TOOL, framework_backend, CONFIG_FILE, input_data, "--overwrite-working-dir"]
        # a setup command that fails stops the job: the tool of some other release must not run instead
        command = " && ".join([*framework_setup, shlex.join(tool)])
    else:
        command = shlex.join(
            [
                backend.job_python(), "-m", "b2cal_assets.caf.val_prompt_run", "Local", CONFIG_FILE, input_data,
                "--overwrite-working-dir", "--calibrations-dir", at(calibrations_dir),
            ]
        )
    # ONE file to fetch back: a remote site's backend fetches the top of the job's directory
    packing = (
        f"rm -f {RESULTS_TAR}; ( {command} ); code=$?; "
        f"if [ -d {WORKING_DIR} ]; then tar -czf {RESULTS_TAR} {WORKING_DIR} || rm -f {RESULTS_TAR}; fi; "
        "exit $code"
    )
    inputs = [job_path, calibrations_dir]
    if not validations_dir.is_relative_to(calibrations_dir) and validations_dir.is_dir():
        inputs.append(validations_dir)  # the framework's layout: prompt/validations/ beside calibrations/
    return JobSpec(
        name=f"{validation.name}.validation",
        argv=("bash", "-c", packing),
        workdir=Path(workdir),
        env=env,
        backend_args=dict(backend_args or {}),
        inputs=tuple(inputs),
    )


def _fresh(workdir: Path) -> None:
    if workdir.exists():
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True)


def _config_of(workdir: Path) -> str | None:
    try:
        return (workdir / CONFIG_FILE).read_text()
    except OSError:
        return None


def _row(result: JobResult) -> dict[str, Any]:
    """The job as the calibration database records it (``db.repo.jobs.record_jobs``)."""
    row: dict[str, Any] = {
        "name": result.spec.name,
        "state": result.state.value,
        "exit_code": result.exit_code,
        "tries": result.tries,
        "workdir": str(result.spec.workdir),
    }
    if result.handle is not None:
        row["backend_job_id"] = result.handle.job_id
    return row


def _run_of(exit_code: int, folder: Path) -> ValidationRun:
    """The run as the results in the payload store tell it: verdict file, log, plots, copied files."""
    result: dict[str, Any] = {}
    try:
        loaded = json.loads((folder / RESULT_FILE).read_text())
        result = loaded if isinstance(loaded, dict) else {}
    except FileNotFoundError:
        pass
    except (OSError, ValueError) as exc:
        result = {"passed": False, "summary": f"{RESULT_FILE} is not valid JSON: {exc}"}
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    downloads = folder / "download_files"
    plots = [p for p in files if p.suffix.lower() in PLOT_SUFFIXES and not p.is_relative_to(downloads)]
    downloaded = [p for p in files if p.is_relative_to(downloads)]
    return ValidationRun(exit_code, folder, folder / LOG_FILE, plots, downloaded, result)
