"""Running an expert's validation script over an attempt's payloads, the framework's way.

The script runs as a program (``caf.validation_job``): the framework's argv contract, plots from its
working directory and the job directory. With the site's ``ValidationJobs`` it runs as ONE batch job
at the processing's site (``caf.validation_batch``) and its results are copied to
``<attempt>/validation_run/`` in the payload store; without, in this process, in that directory.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from b2cal_assets import home
from b2cal_assets.backends.base import BackendError
from b2cal_assets.caf.scripts import CalibrationScript
from b2cal_assets.caf.validation_batch import ValidationJobFailed, ValidationJobs
from b2cal_assets.caf.validation_job import ValidationRun, run_validation_job
from b2cal_assets.db.repo import attempts
from b2cal_assets.db.repo import jobs as job_rows
from b2cal_assets.loop.service import LoopService

VALIDATION_WORKDIR = "validation_run"
VERDICT_FILE = "b2cal_verdict.json"  # the check's verdict, kept beside the plots for the calibration page

_log = logging.getLogger(__name__)


@dataclass
class ValidationOutcome:
    passed: bool
    summary: str
    plots: list[Path] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)


def run_validation_script(
    service: LoopService,
    processing: str,
    calibration: str,
    script: CalibrationScript,
    expert_config: dict[str, Any] | None = None,
    jobs: ValidationJobs | None = None,
) -> ValidationOutcome:
    """The expert's verdict on the current payloads; a failing script is a failed check, not a crash.

    With ``jobs`` the script runs as a batch job at the site; a site that cannot be reached raises the
    backend's ``BackendError`` (no verdict: the check is asked again), a job that leaves no results is
    a failed check with the job's log tail."""
    payloads = service.current_payloads(processing, calibration)
    if not payloads:
        return ValidationOutcome(False, "no payloads to validate")
    job_path = Path(payloads[0].file).parent.parent  # the attempt's directory holding outputdb/
    if script.validation is None:
        return ValidationOutcome(True, f"{calibration} has no validation script; nothing to check")
    try:
        run: ValidationRun
        if jobs is not None:
            run = jobs.run(
                script.validation,
                job_path=job_path,
                requested_iov=service.processing_iov(processing),
                expert_config=expert_config or {},
                workdir=home.validation_work_dir(processing, calibration, _attempt_of(job_path)),
                results_dir=job_path / VALIDATION_WORKDIR,
                record=_job_recorder(service, processing, calibration, _attempt_of(job_path), jobs.backend.name),
            )
        else:
            run = run_validation_job(
                script.validation,
                job_path=job_path,
                input_data_path=job_path / "input_data.json",
                requested_iov=service.processing_iov(processing),
                expert_config=expert_config or {},
                workdir=job_path / VALIDATION_WORKDIR,
            )
    except ValidationJobFailed as exc:
        return ValidationOutcome(False, str(exc))
    except BackendError:
        raise  # the site, not the script: no verdict
    except Exception as exc:  # the expert's script (or its settings) failing is the check's verdict
        return ValidationOutcome(False, f"the validation script failed: {type(exc).__name__}: {exc}")
    metrics = run.result.get("metrics", {})
    _keep_verdict(run.workdir, run.passed, run.summary)
    return ValidationOutcome(
        passed=run.passed,
        summary=run.summary,
        plots=[p for p in run.plots if p.suffix.lower() == ".png"],
        metrics=dict(metrics) if isinstance(metrics, dict) else {},
    )


def _job_recorder(
    service: LoopService, processing: str, calibration: str, attempt: int, backend: str
) -> Callable[[dict[str, Any]], None]:
    """The validation job as a job row of the attempt whose payloads it validates (``b2cal status
    --jobs``), like its collector subjobs; bookkeeping only, so a failure to record is logged, not raised."""

    def record(row: dict[str, Any]) -> None:
        try:
            with service.session() as s:
                attempt_id = attempts.get_attempt_number(s, processing, calibration, attempt).id
                job_rows.record_jobs(s, attempt_id, backend, [row])
        except Exception as exc:
            _log.warning("could not record the validation job of %s in %s: %s", calibration, processing, exc)

    return record


def _attempt_of(job_path: Path) -> int:
    """The attempt number of a payload store directory ``.../attempt_<n>`` (0 if it is named otherwise)."""
    number = job_path.name.rpartition("_")[2]
    return int(number) if number.isdigit() else 0


def _keep_verdict(workdir: Path, passed: bool, summary: str) -> None:
    """The verdict beside the plots: the page shows both without asking Dagster's event log."""
    with contextlib.suppress(OSError):  # the check's own result still carries the verdict
        (workdir / VERDICT_FILE).write_text(json.dumps({"passed": passed, "summary": summary}))
