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
from b2cal_assets.backends.manager import JobManager, JobsCancelled, RetryPolicy, SubmitPolicy
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
    "RESULTS_TAR",
    "ValidationJobFailed",
    "ValidationJobs",
    "validation_job_spec",
]

CONFIG_FILE = "validation_config.json"
RESULTS_TAR = "validation_results.tar.gz"
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
    ) -> ValidationRun:
        """Run ``validation`` over the finished job ``job_path`` as one job in ``workdir``; its
        ``validation_results/`` end up in ``results_dir`` (replaced as a whole)."""
        workdir = Path(workdir).absolute()
        if workdir.exists():
            shutil.rmtree(workdir)  # each check runs the validation afresh
        workdir.mkdir(parents=True)
        spec = validation_job_spec(
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
        if self.log is not None:
            self.log(f"{validation.name}: the validation runs as one {self.backend.name} job{self._at()}: {spec.argv[-1]}")
        manager = JobManager(self.backend, self.submit_policy, RetryPolicy(max_retries=0))
        try:
            (result,) = manager.run([spec], should_cancel=self.should_cancel)
        except JobsCancelled as exc:
            if isinstance(exc.__cause__, BackendError):
                raise exc.__cause__ from None  # the site's own words: unreachable, disk full, ...
            raise
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
