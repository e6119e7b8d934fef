"""Running an expert's validation script over an attempt's payloads, the framework's way.

The script runs as a program in ``<attempt>/validation_run/`` (``caf.validation_job``): the
framework's argv contract, plots from its working directory and the job directory.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from b2cal_assets.caf.scripts import CalibrationScript
from b2cal_assets.caf.validation_job import run_validation_job
from b2cal_assets.loop.service import LoopService

VALIDATION_WORKDIR = "validation_run"
VERDICT_FILE = "b2cal_verdict.json"  # the check's verdict, kept beside the plots for the calibration page


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
) -> ValidationOutcome:
    """The expert's verdict on the current payloads; a failing script is a failed check, not a crash."""
    payloads = service.current_payloads(processing, calibration)
    if not payloads:
        return ValidationOutcome(False, "no payloads to validate")
    job_path = Path(payloads[0].file).parent.parent  # the attempt's directory holding outputdb/
    if script.validation is None:
        return ValidationOutcome(True, f"{calibration} has no validation script; nothing to check")
    try:
        run = run_validation_job(
            script.validation,
            job_path=job_path,
            input_data_path=job_path / "input_data.json",
            requested_iov=service.processing_iov(processing),
            expert_config=expert_config or {},
            workdir=job_path / VALIDATION_WORKDIR,
        )
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


def _keep_verdict(workdir: Path, passed: bool, summary: str) -> None:
    """The verdict beside the plots: the page shows both without asking Dagster's event log."""
    with contextlib.suppress(OSError):  # the check's own result still carries the verdict
        (workdir / VERDICT_FILE).write_text(json.dumps({"passed": passed, "summary": summary}))
